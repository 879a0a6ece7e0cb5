package credentials_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/credentials"
	"github.com/credbroker/credbroker/internal/policy"
	"github.com/credbroker/credbroker/internal/testkit/iameval"
)

// Each grant of an answer carries its expiry when it is time-bounded, and
// the credentials of a ?project= answer are bounded like the item's: the
// session policy STS receives allows the project's grants before the
// expiry and nothing at or after it (judged by the IAM evaluator).
func TestTimeBoundedGrantsAreAnsweredWithTheirExpiryAndBoundInTheSession(t *testing.T) {
	e := newEnv(t)
	pool := newLocalPool(t)
	const user = "5b1e7d0a-2c3f-4a5b-8c9d-0e1f2a3b4c5d"
	expiry := time.Now().Add(8 * time.Hour).UTC().Truncate(time.Second)
	byProject := map[string][]broker.Place{"contract": places("lake/raw:write"), "team": places("pond")}
	res, err := policy.Compiler{}.CompileBounded(byProject, map[string]time.Time{"contract": expiry})
	if err != nil {
		t.Fatal(err)
	}
	e.commit(t, broker.UserPolicy{UserID: user, Version: res.Version, Grants: res.Grants, Sets: res.Sets,
		ByProject: res.ByProject, Expires: res.Expires, UpdatedAt: time.Now().UTC()})

	var mu sync.Mutex
	sent := map[string]string{} // access key id: session policy
	svc := e.service(pool.verifier, func(s *credentials.Service) {
		next := s.Issuer
		s.Issuer = issuerFunc(func(ctx context.Context, req broker.IssueRequest) (broker.Credentials, error) {
			c, err := next.Issue(ctx, req)
			mu.Lock()
			sent[c.AccessKeyID] = req.Policy
			mu.Unlock()
			return c, err
		})
	})
	token := "Bearer " + pool.token(t, user)

	a := get(t, svc, "/auths/resources", token).answer(t)
	got := map[string]time.Time{}
	for _, set := range a.CredentialSets {
		for _, g := range set.Grants {
			got[g.Bucket] = g.ExpiresAt
		}
	}
	if !got["lake"].Equal(expiry) || !got["pond"].IsZero() || len(got) != 2 {
		t.Errorf("answer's expiries %v, want lake until %v and pond unbounded", got, expiry)
	}

	p := get(t, svc, "/auths/resources?project=contract", token).answer(t)
	if len(p.CredentialSets) != 1 || len(p.CredentialSets[0].Grants) != 1 || !p.CredentialSets[0].Grants[0].ExpiresAt.Equal(expiry) {
		t.Fatalf("project answer %+v, want lake until %v", p.CredentialSets, expiry)
	}
	mu.Lock()
	doc := sent[p.CredentialSets[0].AccessKeyID]
	mu.Unlock()
	sess, err := iameval.Parse(doc)
	if err != nil {
		t.Fatalf("session policy %q: %v", doc, err)
	}
	put := func(at time.Time) iameval.Request {
		return iameval.Request{Action: "s3:PutObject", Resource: "arn:aws:s3:::lake/raw/k",
			Context: map[string]string{"aws:CurrentTime": at.Format(time.RFC3339)}}
	}
	if !sess.Allows(put(expiry.Add(-time.Second))) || sess.Allows(put(expiry)) || sess.Allows(put(expiry.Add(time.Hour))) {
		t.Errorf("the project's session policy must allow writing until %v only:\n%s", expiry, doc)
	}
	if !strings.Contains(doc, `"DateLessThan":{"aws:CurrentTime":"`+expiry.Format(time.RFC3339)+`"}`) {
		t.Errorf("session policy without the bound: %s", doc)
	}
}
