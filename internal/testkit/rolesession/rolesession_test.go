package rolesession_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/testkit/rolesession"
)

func TestASessionIsReadFromItsAssumeRoleAndJudgedByTheDeny(t *testing.T) {
	form := url.Values{"Action": {"AssumeRole"}, "SourceIdentity": {"alice"}, "Policy": {"{}"}, "DurationSeconds": {"900"},
		"Tags.member.1.Key": {broker.UserTagKey}, "Tags.member.1.Value": {"0a1b2c3d4e"},
		"Tags.member.2.Key": {broker.CutoffTagKey}, "Tags.member.2.Value": {"9c41e0d27a5b"}}
	answer := []byte(`<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIA1</AccessKeyId>` +
		`<Expiration>2026-11-30T12:15:04Z</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>`)
	key, s, ok := rolesession.FromAssumeRole(form, answer)
	want := rolesession.Session{User: "alice", Policy: "{}", UserTag: "0a1b2c3d4e", Tag: "9c41e0d27a5b", Issued: time.Date(2026, 11, 30, 12, 0, 4, 0, time.UTC)}
	if !ok || key != "ASIA1" || s != want {
		t.Fatalf("FromAssumeRole = %s, %+v, %v; want ASIA1, %+v", key, s, ok, want)
	}
	if _, _, ok := rolesession.FromAssumeRole(form, []byte("<Error/>")); ok {
		t.Error("an answer without credentials was read as a session")
	}
	deny := func(cond string) string {
		return `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*","Condition":` + cond + `}]}`
	}
	for _, tc := range []struct {
		name, doc string
		allowed   bool
	}{
		{"no revocation policy: allowed", "", true},
		{"issued before a fallback: denied", deny(`{"DateLessThan":{"aws:TokenIssueTime":"2026-11-30T12:00:05Z"}}`), false},
		{"issued at a fallback's second: allowed", deny(`{"DateLessThan":{"aws:TokenIssueTime":"2026-11-30T12:00:04Z"}}`), true},
		{"the user's entry, another tag spared: denied", deny(`{"StringEquals":{"aws:PrincipalTag/credbroker:user":["0a1b2c3d4e"]},` +
			`"StringNotEquals":{"aws:PrincipalTag/credbroker:cutoff":["000000000000"]}}`), false},
		{"the user's entry, its tag spared: allowed", deny(`{"StringEquals":{"aws:PrincipalTag/credbroker:user":["0a1b2c3d4e"]},` +
			`"StringNotEquals":{"aws:PrincipalTag/credbroker:cutoff":["9c41e0d27a5b"]}}`), true},
		{"untagged sessions denied: this one is tagged", deny(`{"Null":{"aws:PrincipalTag/credbroker:user":"true"}}`), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pol, err := rolesession.RevocationPolicy(tc.doc)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.AllowedBy(pol); got != tc.allowed {
				t.Errorf("AllowedBy = %v, want %v", got, tc.allowed)
			}
		})
	}
}

func TestFromResponseLeavesTheBodyForTheCaller(t *testing.T) {
	answer := `<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIA2</AccessKeyId>` +
		`<Expiration>2026-11-30T13:00:00Z</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>`
	form := url.Values{"Action": {"AssumeRole"}, "SourceIdentity": {"bob"}, "DurationSeconds": {"3600"}}
	resp := &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader(answer))}
	key, s, ok, err := rolesession.FromResponse(form, resp)
	if err != nil || !ok || key != "ASIA2" || s.User != "bob" || !s.Issued.Equal(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)) {
		t.Fatalf("FromResponse = %q, %+v, %v, %v", key, s, ok, err)
	}
	if rest, _ := io.ReadAll(resp.Body); string(rest) != answer {
		t.Fatalf("the body left is %q", rest)
	}
	for _, c := range []struct {
		status int
		action string
	}{{http.StatusForbidden, "AssumeRole"}, {http.StatusOK, "GetCallerIdentity"}} {
		resp := &http.Response{StatusCode: c.status, Body: io.NopCloser(strings.NewReader(answer))}
		if _, _, ok, _ := rolesession.FromResponse(url.Values{"Action": {c.action}}, resp); ok {
			t.Errorf("%d %s read as a session", c.status, c.action)
		}
	}
}

func TestSignedBy(t *testing.T) {
	for auth, want := range map[string][2]string{
		"AWS4-HMAC-SHA256 Credential=ASIA3/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=x": {"s3", "ASIA3"},
		"AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/sts/aws4_request":                                  {"sts", "AKID"},
		"AWS4-HMAC-SHA256 Credential=AKID/20260101/sts, Signature=x":                                            {"", ""},
		"Bearer abc": {"", ""},
	} {
		if service, key := rolesession.SignedBy(auth); service != want[0] || key != want[1] {
			t.Errorf("SignedBy(%q) = %q, %q; want %q, %q", auth, service, key, want[0], want[1])
		}
	}
}
