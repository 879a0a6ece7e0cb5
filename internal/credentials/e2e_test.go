//go:build integration

package credentials_test

import (
	stdcmp "cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/credentials"
	"github.com/credbroker/credbroker/internal/jwtauth"
	"github.com/credbroker/credbroker/internal/policy"
	"github.com/credbroker/credbroker/internal/testkit/auditschema"
	"github.com/credbroker/credbroker/internal/testkit/jwttest"
)

// TestEndToEndWithMotoCognito signs a user in with moto's Cognito and uses
// the real access token against the endpoint, whose every dependency is a
// real adapter on moto.
func TestEndToEndWithMotoCognito(t *testing.T) {
	e := newEnv(t)
	pool := jwttest.NewCognitoPool(t, e.tier.cfg)
	const password = "Correct-Horse-9-battery"
	sub := pool.CreateUser(t, "alice", password)
	access, _ := pool.SignIn(t, "alice", password)
	verifier, err := jwtauth.New(jwtauth.Config{Issuer: pool.Issuer, JWKSURL: pool.JWKSURL, ClientIDs: []string{pool.ClientID}, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	item := e.seed(t, sub, map[string][]broker.Place{
		"genomics": places("genomics-raw/runs/2024:write", "shared-reference"),
		"climate":  places("climate-models", "shared-reference"),
	})
	svc := e.service(verifier)
	bearer := "Bearer " + access

	t.Run("the user gets one set scoped to exactly the compiled policy", func(t *testing.T) {
		e.resetCounts()
		before := time.Now()
		r := get(t, svc, "/auths/resources", bearer)
		a := r.answer(t)

		for name, want := range map[string]string{
			"Content-Type": "application/json", "Cache-Control": "no-store", "Pragma": "no-cache",
		} {
			if got := r.header.Get(name); got != want {
				t.Errorf("header %s = %q, want %q", name, got, want)
			}
		}
		if len(a.CredentialSets) != 1 {
			t.Fatalf("%d credential sets, want 1", len(a.CredentialSets))
		}
		set := a.CredentialSets[0]
		setExp, err := time.Parse(time.RFC3339, set.Expiration)
		if err != nil {
			t.Fatal(err)
		}
		// Issued the session duration before it expires, in whole seconds.
		issued := setExp.Add(-credentials.DefaultSessionDuration).Format(time.RFC3339)
		wantAnswer := credentials.Answer{UserID: sub, PolicyVersion: item.Version, Expiration: set.Expiration,
			CredentialSets: []credentials.CredentialSet{{AccessKeyID: set.AccessKeyID, SecretAccessKey: set.SecretAccessKey,
				SessionToken: set.SessionToken, Expiration: set.Expiration, Issued: issued, Grants: item.Grants}}}
		if diff := cmp.Diff(wantAnswer, a); diff != "" {
			t.Errorf("answer (-want +got):\n%s", diff)
		}
		if set.AccessKeyID == "" || set.SecretAccessKey == "" || set.SessionToken == "" {
			t.Errorf("incomplete credentials: %+v", set)
		}
		exp, err := time.Parse(time.RFC3339, a.Expiration)
		if err != nil {
			t.Fatalf("expiration %q is not RFC 3339: %v", a.Expiration, err)
		}
		if lo, hi := before.Add(14*time.Minute), time.Now().Add(16*time.Minute); exp.Before(lo) || exp.After(hi) {
			t.Errorf("expiration %v, want the default 15 minutes from now", exp)
		}

		sent := assumedRoles(t)[set.AccessKeyID]
		if sent.Policy != item.Sets[0].Policy {
			t.Errorf("session policy STS received:\n%s\nwant the compiled set policy:\n%s", sent.Policy, item.Sets[0].Policy)
		}
		if want := credentials.SessionName(sub); sent.SessionName != want || sent.RoleARN != e.tier.roleARN {
			t.Errorf("AssumeRole session %q on %q, want %q on %q", sent.SessionName, sent.RoleARN, want, e.tier.roleARN)
		}
		if g, i := e.getPolicy.Load(), e.issue.Load(); g != 1 || i != 1 {
			t.Errorf("%d GetPolicy and %d AssumeRole calls, want 1 and 1", g, i)
		}

		events := e.tier.bus.Receive(t, 1)
		if events[0].DetailType != broker.DetailCredentialsIssued || events[0].Source != broker.SourceCredentials {
			t.Fatalf("event %s from %s, want CredentialsIssued from %s", events[0].DetailType, events[0].Source, broker.SourceCredentials)
		}
		if err := auditschema.Validate(events[0].DetailType, events[0].Detail); err != nil {
			t.Error(err)
		}
		var d broker.CredentialsIssuedDetail
		if err := json.Unmarshal(events[0].Detail, &d); err != nil {
			t.Fatal(err)
		}
		wantDetail := broker.CredentialsIssuedDetail{
			SchemaVersion: "1", RequestID: d.RequestID, UserID: sub, PolicyVersion: item.Version,
			AccessKeyIDs: []string{set.AccessKeyID}, Buckets: []string{"climate-models", "genomics-raw", "shared-reference"},
			Grants: placesOf(item.Grants), Expiration: exp, ClientID: pool.ClientID, TokenID: d.TokenID,
			SourceIP: "198.51.100.7", UserAgent: "credbroker-test/1.0",
		}
		if diff := cmp.Diff(wantDetail, d); diff != "" {
			t.Errorf("CredentialsIssued detail (-want +got):\n%s", diff)
		}
		if d.RequestID == "" || d.TokenID == "" {
			t.Errorf("detail without request id or token id: %+v", d)
		}
	})

	t.Run("project filter answers with that project's grants only", func(t *testing.T) {
		e.resetCounts()
		a := get(t, svc, "/auths/resources?project=climate", bearer).answer(t)
		want, err := policy.Compiler{}.Compile(map[string][]broker.Place{"climate": item.ByProject["climate"]})
		if err != nil {
			t.Fatal(err)
		}
		if len(a.CredentialSets) != 1 {
			t.Fatalf("%d sets, want 1", len(a.CredentialSets))
		}
		if diff := cmp.Diff(want.Grants, a.CredentialSets[0].Grants); diff != "" {
			t.Errorf("grants (-want +got):\n%s", diff)
		}
		if a.PolicyVersion != item.Version {
			t.Errorf("policy version %q, want the item's %q", a.PolicyVersion, item.Version)
		}
		if got := assumedRoles(t)[a.CredentialSets[0].AccessKeyID].Policy; got != want.Sets[0].Policy {
			t.Errorf("session policy STS received:\n%s\nwant the project's compiled policy:\n%s", got, want.Sets[0].Policy)
		}
		if g := e.getPolicy.Load(); g != 1 {
			t.Errorf("%d GetPolicy calls, want 1", g)
		}
		ev := e.tier.bus.Receive(t, 1)[0]
		var d broker.CredentialsIssuedDetail
		if err := json.Unmarshal(ev.Detail, &d); err != nil {
			t.Fatal(err)
		}
		if d.Project != "climate" || !slices.Equal(d.Buckets, []string{"climate-models", "shared-reference"}) {
			t.Errorf("detail project %q buckets %v, want climate with its two buckets", d.Project, d.Buckets)
		}
	})

	t.Run("project the user is not in is 403 without an STS call", func(t *testing.T) {
		e.resetCounts()
		r := get(t, svc, "/auths/resources?project=astronomy", bearer)
		if r.status != 403 || r.errorBody(t).Error != "no_access" {
			t.Fatalf("status %d body %s, want 403 no_access", r.status, r.body)
		}
		if n := e.issue.Load(); n != 0 {
			t.Errorf("%d AssumeRole calls, want 0", n)
		}
		ev := e.tier.bus.Receive(t, 1)[0]
		if err := auditschema.Validate(ev.DetailType, ev.Detail); err != nil {
			t.Error(err)
		}
		var d broker.CredentialsDeniedDetail
		if err := json.Unmarshal(ev.Detail, &d); err != nil {
			t.Fatal(err)
		}
		want := broker.CredentialsDeniedDetail{SchemaVersion: "1", RequestID: d.RequestID, Reason: "no_access", Status: 403,
			UserID: sub, Project: "astronomy", Message: `no access to project "astronomy"`, SourceIP: "198.51.100.7", UserAgent: "credbroker-test/1.0"}
		if ev.DetailType != broker.DetailCredentialsDenied {
			t.Errorf("detail type %s, want CredentialsDenied", ev.DetailType)
		}
		if diff := cmp.Diff(want, d); diff != "" {
			t.Errorf("CredentialsDenied detail (-want +got):\n%s", diff)
		}
	})
}

func placesOf(grants []broker.Grant) []broker.Place {
	out := make([]broker.Place, len(grants))
	for i, g := range grants {
		out[i] = g.Place()
	}
	return out
}

// TestUserWithManySetsGetsOneAssumeRolePerSet gives a user more buckets than
// one session policy can hold.
func TestUserWithManySetsGetsOneAssumeRolePerSet(t *testing.T) {
	e := newEnv(t)
	pool := newLocalPool(t)
	const user = "7d2e3f40-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
	byProject := map[string][]broker.Place{}
	for i := range 60 {
		project := fmt.Sprintf("project-%02d", i%6)
		byProject[project] = append(byProject[project], places(fmt.Sprintf("research-data-bucket-%03d/team/:write", i))...)
	}
	item := e.seed(t, user, byProject)
	if len(item.Sets) < 2 {
		t.Fatalf("precondition: %d sets, want at least 2", len(item.Sets))
	}
	svc := e.service(pool.verifier)

	a := get(t, svc, "/auths/resources", "Bearer "+pool.token(t, user)).answer(t)
	if len(a.CredentialSets) != len(item.Sets) {
		t.Fatalf("%d credential sets, want %d", len(a.CredentialSets), len(item.Sets))
	}
	if n := e.issue.Load(); n != int64(len(item.Sets)) {
		t.Errorf("%d AssumeRole calls, want one per set (%d)", n, len(item.Sets))
	}
	sent := assumedRoles(t)
	var all []broker.Grant
	keys := map[string]bool{}
	earliest := ""
	for i, set := range a.CredentialSets {
		if keys[set.AccessKeyID] {
			t.Errorf("set %d reuses access key %s", i, set.AccessKeyID)
		}
		keys[set.AccessKeyID] = true
		if got := sent[set.AccessKeyID].Policy; got != item.Sets[i].Policy {
			t.Errorf("set %d: STS received another policy than the set's", i)
		}
		var want []broker.Grant
		for _, gi := range item.Sets[i].Grants {
			want = append(want, item.Grants[gi])
		}
		if diff := cmp.Diff(want, set.Grants); diff != "" {
			t.Errorf("set %d grants (-want +got):\n%s", i, diff)
		}
		all = append(all, set.Grants...)
		if earliest == "" || set.Expiration < earliest {
			earliest = set.Expiration
		}
	}
	slices.SortFunc(all, cmpGrant)
	if diff := cmp.Diff(item.Grants, all); diff != "" {
		t.Errorf("grants over all sets are not each grant exactly once (-want +got):\n%s", diff)
	}
	if a.Expiration != earliest {
		t.Errorf("expiration %s, want the earliest set expiration %s", a.Expiration, earliest)
	}
	ev := e.tier.bus.Receive(t, 1)[0]
	var d broker.CredentialsIssuedDetail
	if err := json.Unmarshal(ev.Detail, &d); err != nil {
		t.Fatal(err)
	}
	if len(d.AccessKeyIDs) != len(item.Sets) || len(d.Buckets) != 60 {
		t.Errorf("detail has %d access keys and %d buckets, want %d and 60", len(d.AccessKeyIDs), len(d.Buckets), len(item.Sets))
	}
}

func cmpGrant(a, b broker.Grant) int {
	return stdcmp.Or(strings.Compare(a.Bucket, b.Bucket), strings.Compare(a.Prefix, b.Prefix), strings.Compare(string(a.Access), string(b.Access)))
}

func TestNoItemOrEmptyGrantsIsNoAccessWithoutSTS(t *testing.T) {
	e := newEnv(t)
	pool := newLocalPool(t)
	const tombstoned = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"
	e.seed(t, tombstoned, map[string][]broker.Place{"p": places("some-bucket")})
	empty, err := policy.Compiler{}.Compile(nil)
	if err != nil {
		t.Fatal(err)
	}
	e.commit(t, broker.UserPolicy{UserID: tombstoned, Version: empty.Version, UpdatedAt: time.Now()})
	svc := e.service(pool.verifier)

	tests := []struct {
		name string
		user string
	}{
		{"user without a policy item gets 403", "9f8e7d6c-5b4a-4392-8170-6e5d4c3b2a19"},
		{"user whose item is a tombstone gets 403", tombstoned},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.resetCounts()
			r := get(t, svc, "/auths/resources", "Bearer "+pool.token(t, tt.user))
			if r.status != 403 || r.errorBody(t).Error != "no_access" {
				t.Fatalf("status %d body %s, want 403 no_access", r.status, r.body)
			}
			noSecrets(t, r)
			if g, i := e.getPolicy.Load(), e.issue.Load(); g != 1 || i != 0 {
				t.Errorf("%d GetPolicy and %d AssumeRole calls, want 1 and 0", g, i)
			}
		})
	}
	// Both denials reach the bus.
	for _, ev := range e.tier.bus.Receive(t, 2) {
		if ev.DetailType != broker.DetailCredentialsDenied {
			t.Errorf("event %s, want CredentialsDenied", ev.DetailType)
		}
	}
}
