package rolesession_test

import (
	"net/url"
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
