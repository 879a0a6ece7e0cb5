package credentials_test

import (
	"strings"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/testkit/jwttest"
)

// TestJWTAttacksGetNoCredentialsAndCauseNoCalls runs every attack of
// jwttest against the credentials. The victim has a policy item, so an attack
// that got through would be answered 200 and counted.
func TestJWTAttacksGetNoCredentialsAndCauseNoCalls(t *testing.T) {
	e := newEnv(t)
	pool := newLocalPool(t)
	const victim = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
	e.seed(t, victim, map[string][]broker.Place{"genomics": places("genomics-raw:write")})
	svc := e.service(pool.verifier)

	// The harness must be able to answer 200, or the attacks prove nothing.
	get(t, svc, "/auths/resources", "Bearer "+pool.token(t, victim)).answer(t)
	e.events(t, 1)

	attacks := jwttest.Attacks(t, jwttest.Target{Key: pool.key, Kid: jwttest.Kid, Claims: pool.claims(victim), Now: time.Now()})
	if len(attacks) < 15 {
		t.Fatalf("only %d attacks", len(attacks))
	}
	for _, a := range attacks {
		t.Run(a.Name+" is rejected", func(t *testing.T) {
			e.resetCounts()
			r := get(t, svc, "/auths/resources", a.Header)
			if r.status != 401 {
				t.Fatalf("status %d, want 401; body %s", r.status, r.body)
			}
			if got := r.errorBody(t).Error; got != "invalid_token" {
				t.Errorf("error %q, want invalid_token", got)
			}
			noSecrets(t, r)
			challenge := r.header.Get("WWW-Authenticate")
			if !strings.HasPrefix(challenge, `Bearer realm="credbroker"`) {
				t.Errorf("WWW-Authenticate %q lacks the Bearer challenge", challenge)
			}
			if has := strings.Contains(challenge, `error="invalid_token"`); has != a.Presented {
				t.Errorf("WWW-Authenticate %q: error attribute present %v, want %v (token presented %v)", challenge, has, a.Presented, a.Presented)
			}
			if g, i := e.getPolicy.Load(), e.issue.Load(); g != 0 || i != 0 {
				t.Errorf("%d GetPolicy and %d AssumeRole calls, want none", g, i)
			}
		})
	}
}
