// Package rolesession stands in for IAM's view of the sessions the
// credential endpoint mints, where moto enforces no IAM: it reads each
// session's user, cutoff tag and issue time from the AssumeRole calls a
// proxy sees, and judges the session against the base role's revocation
// policy (docs/security.md "Revocation") with iameval. The load generator and the
// client recovery test share it; the smoke check (internal/cmd/smoke)
// judges S3 calls with it, the base role read with ReadRole.
package rolesession

import (
	"bytes"
	"encoding/xml"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/testkit/iameval"
)

// Session is what IAM knows of a role session.
type Session struct {
	User    string // aws:SourceIdentity
	Policy  string // the session policy
	UserTag string // the user's tag (broker.UserTagKey), "" for none
	Tag     string // the cutoff tag (broker.CutoffTagKey), "" for none
	Issued  time.Time
}

// FromAssumeRole reads a successful AssumeRole from its request form and
// its answer; ok is false when the answer holds no credentials.
func FromAssumeRole(form url.Values, answer []byte) (accessKeyID string, s Session, ok bool) {
	var x struct {
		AccessKeyID string    `xml:"AssumeRoleResult>Credentials>AccessKeyId"`
		Expiration  time.Time `xml:"AssumeRoleResult>Credentials>Expiration"`
	}
	if xml.Unmarshal(answer, &x) != nil || x.AccessKeyID == "" {
		return "", Session{}, false
	}
	s = Session{User: form.Get("SourceIdentity"), Policy: form.Get("Policy")}
	for i := 1; form.Has("Tags.member." + strconv.Itoa(i) + ".Key"); i++ {
		value := form.Get("Tags.member." + strconv.Itoa(i) + ".Value")
		switch form.Get("Tags.member." + strconv.Itoa(i) + ".Key") {
		case broker.UserTagKey:
			s.UserTag = value
		case broker.CutoffTagKey:
			s.Tag = value
		}
	}
	duration, err := strconv.Atoi(form.Get("DurationSeconds"))
	if err != nil {
		duration = 3600 // STS's default
	}
	s.Issued = x.Expiration.Add(-time.Duration(duration) * time.Second)
	return x.AccessKeyID, s, true
}

// RevocationPolicy is what a session is judged by: every action allowed,
// less what the base role's revocation pages ("" for an empty one) deny.
func RevocationPolicy(pages ...string) (iameval.Policy, error) {
	pol := iameval.Policy{Statements: []iameval.Statement{{Effect: "Allow", Actions: []string{"*"}, Resources: []string{"*"}}}}
	for _, doc := range pages {
		if doc == "" {
			continue
		}
		deny, err := iameval.Parse(doc)
		if err != nil {
			return iameval.Policy{}, err
		}
		pol.Statements = append(pol.Statements, deny.Statements...)
	}
	return pol, nil
}

// AllowedBy reports whether pol (a RevocationPolicy) lets the session make
// a call: the deny covers every action, so one stands for all. IAM
// compares issue times to the second.
func (s Session) AllowedBy(pol iameval.Policy) bool {
	return pol.Allows(iameval.Request{Action: "s3:GetObject", Resource: "arn:aws:s3:::any/key", Context: s.Context()})
}

// Context is the session's condition keys as IAM sees them: its source
// identity, its issue time (to the second) and its principal tags.
func (s Session) Context() map[string]string {
	ctx := map[string]string{"aws:SourceIdentity": s.User, "aws:TokenIssueTime": s.Issued.UTC().Truncate(time.Second).Format(time.RFC3339)}
	if s.UserTag != "" {
		ctx["aws:PrincipalTag/"+broker.UserTagKey] = s.UserTag
	}
	if s.Tag != "" {
		ctx["aws:PrincipalTag/"+broker.CutoffTagKey] = s.Tag
	}
	return ctx
}

// FromResponse reads a successful AssumeRole from its request form and the
// response a proxy forwards (whose body it leaves for the caller to read);
// ok is false when the response holds no credentials.
func FromResponse(form url.Values, resp *http.Response) (accessKeyID string, s Session, ok bool, err error) {
	if resp.StatusCode != http.StatusOK || form.Get("Action") != "AssumeRole" {
		return "", Session{}, false, nil
	}
	out, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(out))
	if err != nil {
		return "", Session{}, false, err
	}
	accessKeyID, s, ok = FromAssumeRole(form, out)
	return accessKeyID, s, ok, nil
}

// SignedBy reads the service and access key id of a SigV4 Authorization
// header ("AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/sts/aws4_request, ...");
// both are "" when it is not one.
func SignedBy(auth string) (service, accessKeyID string) {
	_, cred, ok := strings.Cut(auth, "Credential=")
	if !ok {
		return "", ""
	}
	cred, _, _ = strings.Cut(cred, ",")
	parts := strings.Split(cred, "/")
	if len(parts) != 5 {
		return "", ""
	}
	return parts[3], parts[0]
}
