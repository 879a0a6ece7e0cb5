package credentials_test

import (
	"context"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/credentials"
)

func TestUnreachableKeySetIs503WithoutReads(t *testing.T) {
	e := newEnv(t)
	pool := newLocalPool(t)
	pool.jwks.SetFailing(true)
	const user = "5e6f7081-92a3-4dbe-8fd0-4b5c6d7e8f90"
	e.seed(t, user, map[string][]broker.Place{"p": places("genomics-raw")})
	r := get(t, e.service(pool.verifier), "/auths/resources", "Bearer "+pool.token(t, user))
	wantUnavailable(t, r)
	if r.header.Get("WWW-Authenticate") != "" {
		t.Errorf("503 carries a WWW-Authenticate challenge: the token was never judged")
	}
	if g, i := e.getPolicy.Load(), e.issue.Load(); g != 0 || i != 0 {
		t.Errorf("%d GetPolicy and %d AssumeRole calls, want none", g, i)
	}
}

func TestPanickingDependencyIs503(t *testing.T) {
	pool := newLocalPool(t)
	tests := []struct {
		name string
		edit func(*credentials.Service)
	}{
		{"panic in the policy reader", func(s *credentials.Service) {
			s.Policies = policyReaderFunc(func(context.Context, string) (broker.UserPolicy, error) { panic("reader bug") })
		}},
		{"panic in the issuer of a multi-set answer", func(s *credentials.Service) {
			s.Policies = policyReaderFunc(func(_ context.Context, u string) (broker.UserPolicy, error) {
				return twoSetPolicy(u), nil
			})
			s.Issuer = issuerFunc(func(context.Context, broker.IssueRequest) (broker.Credentials, error) { panic("issuer bug") })
		}},
		// The issuance is recorded inside the shared mint, whose panic
		// singleflight raises again where nothing recovers it.
		{"panic in the auditor recording an issuance", func(s *credentials.Service) {
			s.Policies = policyReaderFunc(func(_ context.Context, u string) (broker.UserPolicy, error) {
				return twoSetPolicy(u), nil
			})
			s.Issuer = issuerFunc(func(_ context.Context, req broker.IssueRequest) (broker.Credentials, error) {
				return broker.Credentials{AccessKeyID: "ASIAPANIC", SecretAccessKey: "s", SessionToken: "t", Expiration: time.Now().Add(req.Duration)}, nil
			})
			s.Auditor = broker.AuditorFunc(func(context.Context, ...broker.AuditEvent) error { panic("auditor bug") })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is recovered", func(t *testing.T) {
			svc := &credentials.Service{Verifier: pool.verifier, Auditor: broker.AuditorFunc(func(context.Context, ...broker.AuditEvent) error { return nil }), Logger: discard()}
			tt.edit(svc)
			wantUnavailable(t, get(t, svc, "/auths/resources", "Bearer "+pool.token(t, "6f708192-a3b4-4ecf-9001-5c6d7e8f9012")))
		})
	}
}

// twoSetPolicy is a hand-made item with two sets, for tests that never
// reach STS.
