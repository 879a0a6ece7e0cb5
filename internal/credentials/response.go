package credentials

import (
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/credbroker/credbroker/internal/broker"
)

// Answer is the 200 body (docs/contract.md "Credential endpoint").
type Answer struct {
	UserID         string          `json:"userId"`
	PolicyVersion  string          `json:"policyVersion"`
	Expiration     string          `json:"expiration"`
	CredentialSets []CredentialSet `json:"credentialSets"`
	// RevokedBefore is the user's revocation cutoff (RFC 3339, to the
	// millisecond) that every set was minted under, and tagged with;
	// absent for a user never revoked. Sets minted under an earlier
	// cutoff are denied.
	RevokedBefore string `json:"revokedBefore,omitempty"`
	// AllRevokedBefore is the deny list's fallback, when the endpoint knows
	// of one: every session issued before it (a whole second) is denied,
	// whatever its user or tag.
	AllRevokedBefore string `json:"allRevokedBefore,omitempty"`
}

// CredentialSet is one set of credentials and the grants it reaches.
type CredentialSet struct {
	AccessKeyID     string `json:"accessKeyId"`
	SecretAccessKey string `json:"secretAccessKey"`
	SessionToken    string `json:"sessionToken"`
	Expiration      string `json:"expiration"`
	// Issued is when STS issued the set (its expiration less the session
	// duration, in whole seconds, never later than the real time), for
	// comparing with AllRevokedBefore.
	Issued string         `json:"issued,omitempty"`
	Grants []broker.Grant `json:"grants"`
}

// ErrorBody is the body of every error answer.
type ErrorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// rfc3339 formats in whole seconds, cut rather than rounded so that an
// expiration is never later than the real one.
func rfc3339(t time.Time) string { return t.UTC().Truncate(time.Second).Format(time.RFC3339) }

// millisRFC3339 keeps a cutoff's milliseconds, as the policy item and the
// events do.
const millisRFC3339 = "2006-01-02T15:04:05.000Z07:00"

// buildAnswer renders the 200 body and returns its access key ids.
// The cutoffs and issue times are optional fields (docs/contract.md
// "Credential endpoint"): clients use them to drop sets a revocation denies.
func buildAnswer(p broker.Principal, version string, grants []broker.Grant, sets []broker.PolicySet,
	issued []issuedSet, k answerKey, duration time.Duration) ([]byte, []string, error) {
	a := Answer{UserID: p.UserID, PolicyVersion: version, CredentialSets: make([]CredentialSet, len(sets))}
	if !k.cutoff.IsZero() {
		a.RevokedBefore = k.cutoff.UTC().Format(millisRFC3339)
	}
	if !k.denyBefore.IsZero() {
		a.AllRevokedBefore = rfc3339(k.denyBefore)
	}
	keyIDs := make([]string, len(sets))
	var earliest time.Time
	for i, set := range sets {
		c := issued[i].creds
		cs := CredentialSet{
			AccessKeyID:     c.AccessKeyID,
			SecretAccessKey: c.SecretAccessKey,
			SessionToken:    c.SessionToken,
			Expiration:      rfc3339(c.Expiration),
			Grants:          make([]broker.Grant, len(set.Grants)),
			Issued:          rfc3339(c.Expiration.Add(-duration)),
		}
		for j, gi := range set.Grants {
			g := grants[gi]
			if g.Projects == nil {
				g.Projects = []string{}
			}
			cs.Grants[j] = g
		}
		a.CredentialSets[i] = cs
		keyIDs[i] = c.AccessKeyID
		if earliest.IsZero() || c.Expiration.Before(earliest) {
			earliest = c.Expiration
		}
	}
	a.Expiration = rfc3339(earliest)
	body, err := json.Marshal(a)
	if err != nil {
		return nil, nil, broker.Wrap(broker.Internal, "encode answer", err)
	}
	return body, keyIDs, nil
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
	status, code := statusOf(o.err)
	msg := safeMessage(o.err)
	switch status {
	case 405:
		h["Allow"] = "GET"
	case 401:
		h["WWW-Authenticate"] = challenge(o.presented, msg)
	case 503:
		h["Retry-After"] = strconv.Itoa(retryAfter(o.err))
	}
	body, _ := json.Marshal(ErrorBody{Error: code, Message: msg})
	return events.APIGatewayV2HTTPResponse{StatusCode: status, Headers: h, Body: string(body)}
}

func isNoToken(err error) bool { return errors.Is(err, broker.ErrNoToken) }
