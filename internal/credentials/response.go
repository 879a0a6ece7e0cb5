package credentials

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/jwtauth"
)

// Answer is the 200 body (CONTRACT.md section 3).
type Answer struct {
	UserID         string          `json:"userId"`
	PolicyVersion  string          `json:"policyVersion"`
	Expiration     string          `json:"expiration"`
	CredentialSets []CredentialSet `json:"credentialSets"`
}

// CredentialSet is one set of credentials and the grants it reaches.
type CredentialSet struct {
	AccessKeyID     string         `json:"accessKeyId"`
	SecretAccessKey string         `json:"secretAccessKey"`
	SessionToken    string         `json:"sessionToken"`
	Expiration      string         `json:"expiration"`
	Grants          []broker.Grant `json:"grants"`
}

// ErrorBody is the body of every error answer.
type ErrorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// rfc3339 formats in whole seconds, cut rather than rounded so that an
// expiration is never later than the real one.
func rfc3339(t time.Time) string { return t.UTC().Truncate(time.Second).Format(time.RFC3339) }

// buildAnswer renders the 200 body and the CredentialsIssued detail.
func buildAnswer(p broker.Principal, version, project string, grants []broker.Grant, sets []broker.PolicySet,
	issued []issuedSet, rq requestMeta) ([]byte, broker.CredentialsIssuedDetail, error) {
	a := Answer{UserID: p.UserID, PolicyVersion: version, CredentialSets: make([]CredentialSet, len(sets))}
	d := broker.CredentialsIssuedDetail{
		SchemaVersion: broker.AuditSchemaVersion,
		RequestID:     rq.id,
		UserID:        p.UserID,
		PolicyVersion: version,
		AccessKeyIDs:  make([]string, len(sets)),
		Grants:        make([]broker.Place, 0, len(grants)),
		Project:       project,
		FromCache:     true,
		ClientID:      p.ClientID,
		TokenID:       p.TokenID,
		SourceIP:      rq.sourceIP,
		UserAgent:     rq.userAgent,
	}
	var earliest time.Time
	for i, set := range sets {
		c := issued[i].creds
		cs := CredentialSet{
			AccessKeyID:     c.AccessKeyID,
			SecretAccessKey: c.SecretAccessKey,
			SessionToken:    c.SessionToken,
			Expiration:      rfc3339(c.Expiration),
			Grants:          make([]broker.Grant, len(set.Grants)),
		}
		for j, gi := range set.Grants {
			g := grants[gi]
			if g.Projects == nil {
				g.Projects = []string{}
			}
			cs.Grants[j] = g
			d.Grants = append(d.Grants, g.Place())
			d.Buckets = append(d.Buckets, g.Bucket)
		}
		a.CredentialSets[i] = cs
		d.AccessKeyIDs[i] = c.AccessKeyID
		d.FromCache = d.FromCache && issued[i].fromCache
		if earliest.IsZero() || c.Expiration.Before(earliest) {
			earliest = c.Expiration
		}
	}
	slices.Sort(d.Buckets)
	d.Buckets = slices.Compact(d.Buckets)
	// The answer's RFC 3339 has whole seconds; the audit record says the same.
	d.Expiration = earliest.UTC().Truncate(time.Second)
	a.Expiration = rfc3339(d.Expiration)
	body, err := json.Marshal(a)
	if err != nil {
		return nil, d, broker.Wrap(broker.Internal, "encode answer", err)
	}
	return body, d, nil
}

// baseHeaders go on every answer: credentials must not be stored by any
// cache between the endpoint and the caller.
func baseHeaders() map[string]string {
	return map[string]string{
		"Content-Type":           "application/json",
		"Cache-Control":          "no-store",
		"Pragma":                 "no-cache",
		"X-Content-Type-Options": "nosniff",
	}
}

// response renders the outcome as the HTTP answer.
func (o *outcome) response() events.APIGatewayV2HTTPResponse {
	h := baseHeaders()
	if o.err == nil {
		return events.APIGatewayV2HTTPResponse{StatusCode: 200, Headers: h, Body: string(o.body)}
	}
	status, code := statusOf(broker.KindOf(o.err))
	msg := safeMessage(o.err)
	switch status {
	case 401:
		h["WWW-Authenticate"] = challenge(o.presented, msg)
	case 503:
		h["Retry-After"] = strconv.Itoa(RetryAfterSeconds)
	}
	body, _ := json.Marshal(ErrorBody{Error: code, Message: msg})
	return events.APIGatewayV2HTTPResponse{StatusCode: status, Headers: h, Body: string(body)}
}

func isNoToken(err error) bool { return errors.Is(err, jwtauth.ErrNoToken) }
