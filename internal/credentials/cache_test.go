package credentials_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/credentials"
)

// clock is a settable clock for cache freshness.
type clock struct{ now atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.now.Store(t.UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.now.Load()) }
func (c *clock) Advance(d time.Duration) { c.now.Add(int64(d)) }
func creds(id string, exp time.Time) broker.Credentials {
	return broker.Credentials{AccessKeyID: id, SecretAccessKey: "s-" + id, SessionToken: "t-" + id, Expiration: exp}
}

func key(user string, set int) credentials.CacheKey {
	return credentials.CacheKey{UserID: user, PolicyVersion: "v1", Set: set}
}

func TestCacheReusesEntriesWhileMoreThanHalfTheirLifetimeRemains(t *testing.T) {
	t0 := time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		elapsed time.Duration
		hit     bool
	}{
		{"fresh entry is a hit", 0, true},
		{"entry just before half its lifetime is a hit", 449 * time.Second, true},
		{"entry at half its lifetime is a miss", 450 * time.Second, false},
		{"entry past half its lifetime is a miss", 600 * time.Second, false},
		{"expired entry is a miss", time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock(t0)
			c := credentials.NewCache(4, clk.Now)
			c.Put(key("u1", 0), creds("A", t0.Add(900*time.Second)), t0)
			clk.Advance(tt.elapsed)
			got, ok := c.Get(key("u1", 0), time.Time{})
			if ok != tt.hit {
				t.Fatalf("Get() hit = %v, want %v", ok, tt.hit)
			}
			if ok && got.AccessKeyID != "A" {
				t.Errorf("Get() = %+v, want A", got)
			}
			if !ok && c.Len() != 0 {
				t.Errorf("stale entry kept: Len() = %d", c.Len())
			}
		})
	}
}

func TestCacheKeysKeepAnswersApart(t *testing.T) {
	t0 := time.Now()
	c := credentials.NewCache(8, func() time.Time { return t0 })
	base := credentials.CacheKey{UserID: "u1", PolicyVersion: "v1", Project: "", Set: 0}
	c.Put(base, creds("A", t0.Add(time.Hour)), t0)
	others := map[string]credentials.CacheKey{
		"another user":           {UserID: "u2", PolicyVersion: "v1"},
		"a newer policy version": {UserID: "u1", PolicyVersion: "v2"},
		"a project filter":       {UserID: "u1", PolicyVersion: "v1", Project: "p"},
		"another set":            {UserID: "u1", PolicyVersion: "v1", Set: 1},
		"split sets":             {UserID: "u1", PolicyVersion: "v1", Split: true},
	}
	for name, k := range others {
		t.Run(name+" misses", func(t *testing.T) {
			if got, ok := c.Get(k, time.Time{}); ok {
				t.Errorf("Get(%+v) = %+v, want a miss", k, got)
			}
		})
	}
}

// Entries issued before a user's revocation time are never served again,
// whatever their lifetime left.
func TestCacheDropsEntriesIssuedBeforeNotBefore(t *testing.T) {
	t0 := time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC)
	c := credentials.NewCache(4, func() time.Time { return t0.Add(time.Minute) })
	c.Put(key("u1", 0), creds("A", t0.Add(15*time.Minute)), t0)
	if _, ok := c.Get(key("u1", 0), t0); !ok {
		t.Fatal("entry issued at notBefore is a miss")
	}
	if _, ok := c.Get(key("u1", 0), t0.Add(time.Second)); ok {
		t.Fatal("entry issued before notBefore is a hit")
	}
	if _, ok := c.Get(key("u1", 0), time.Time{}); ok || c.Len() != 0 {
		t.Errorf("entry refused for its issue time was kept (Len %d)", c.Len())
	}
}

func TestCacheEvictsTheLeastRecentlyUsed(t *testing.T) {
	t0 := time.Now()
	c := credentials.NewCache(3, func() time.Time { return t0 })
	exp := t0.Add(time.Hour)
	for _, id := range []string{"a", "b", "c"} {
		c.Put(key(id, 0), creds(id, exp), t0)
	}
	c.Get(key("a", 0), time.Time{})          // a is now the most recent: b is the oldest
	c.Put(key("d", 0), creds("d", exp), t0)  // evicts b
	c.Put(key("c", 0), creds("c2", exp), t0) // replaces c, evicts nothing
	c.Put(key("e", 0), creds("e", exp), t0)  // evicts a (c was just used, d after a)

	var present []string
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		if got, ok := c.Get(key(id, 0), time.Time{}); ok {
			present = append(present, got.AccessKeyID)
		}
	}
	if diff := cmp.Diff([]string{"c2", "d", "e"}, present); diff != "" {
		t.Errorf("entries left (-want +got):\n%s", diff)
	}
	if c.Len() != 3 {
		t.Errorf("Len() = %d, want 3", c.Len())
	}
}

func TestDisabledCacheKeepsNothing(t *testing.T) {
	t0 := time.Now()
	tests := []struct {
		name  string
		cache *credentials.Cache
	}{
		{"nil cache keeps nothing", nil},
		{"size 0 keeps nothing", credentials.NewCache(0, nil)},
		{"negative size keeps nothing", credentials.NewCache(-1, nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cache.Put(key("u", 0), creds("A", t0.Add(time.Hour)), t0)
			if _, ok := tt.cache.Get(key("u", 0), time.Time{}); ok || tt.cache.Len() != 0 {
				t.Errorf("disabled cache returned an entry (Len %d)", tt.cache.Len())
			}
		})
	}
	t.Run("expired credentials are not stored", func(t *testing.T) {
		c := credentials.NewCache(4, func() time.Time { return t0 })
		c.Put(key("u", 0), creds("A", t0.Add(-time.Second)), t0)
		if c.Len() != 0 {
			t.Errorf("Len() = %d, want 0", c.Len())
		}
	})
}

func TestCacheIsSafeForConcurrentUse(t *testing.T) {
	t0 := time.Now()
	c := credentials.NewCache(16, func() time.Time { return t0 })
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				k := key(fmt.Sprint("u", (g*7+i)%40), i%3)
				if got, ok := c.Get(k, time.Time{}); ok && got.AccessKeyID != k.UserID {
					t.Errorf("Get(%v) = %s, another key's entry", k, got.AccessKeyID)
				}
				c.Put(k, creds(k.UserID, t0.Add(time.Hour)), t0)
			}
		})
	}
	wg.Wait()
	if n := c.Len(); n > 16 {
		t.Errorf("Len() = %d, over the bound of 16", n)
	}
}

// TestServiceCache checks the cache through the endpoint, against moto's
// STS, whose credentials really expire after the session duration.
func TestServiceCache(t *testing.T) {
	e := newEnv(t)
	pool := newLocalPool(t)
	const user = "8192a3b4-c5d6-4e1f-9023-7e8f90123456"
	e.seed(t, user, map[string][]broker.Place{"p": places("genomics-raw:write"), "q": places("climate-models")})
	bearer := "Bearer " + pool.token(t, user)

	setup := func(t *testing.T, size int) (*credentials.Service, *clock) {
		t.Helper()
		e.resetCounts()
		clk := newClock(time.Now())
		return e.service(pool.verifier, func(s *credentials.Service) { s.Cache = credentials.NewCache(size, clk.Now) }), clk
	}

	// A hit is the token check and one read: no AssumeRole, no PutEvents.
	t.Run("second request within the window is served from the cache", func(t *testing.T) {
		svc, clk := setup(t, 8)
		first := get(t, svc, "/auths/resources", bearer).answer(t)
		var d broker.CredentialsIssuedDetail
		if err := json.Unmarshal(e.events(t, 1)[0], &d); err != nil {
			t.Fatal(err)
		}
		if d.FromCache || !cmp.Equal(d.AccessKeyIDs, []string{first.CredentialSets[0].AccessKeyID}) {
			t.Errorf("mint audited as %+v", d)
		}
		clk.Advance(7 * time.Minute)
		e.resetCounts()
		second := get(t, svc, "/auths/resources", bearer).answer(t)
		if diff := cmp.Diff(first, second); diff != "" {
			t.Errorf("cached answer differs (-first +second):\n%s", diff)
		}
		if g, i, p := e.getPolicy.Load(), e.issue.Load(), e.emits.Load(); g != 1 || i != 0 || p != 0 {
			t.Errorf("cache hit made %d reads, %d AssumeRole and %d PutEvents calls; want 1, 0, 0", g, i, p)
		}
	})

	t.Run("request once less than half the lifetime remains assumes the role again", func(t *testing.T) {
		svc, clk := setup(t, 8)
		first := get(t, svc, "/auths/resources", bearer).answer(t)
		clk.Advance(8 * time.Minute)
		second := get(t, svc, "/auths/resources", bearer).answer(t)
		if n := e.issue.Load(); n != 2 {
			t.Errorf("%d AssumeRole calls, want 2", n)
		}
		if first.CredentialSets[0].AccessKeyID == second.CredentialSets[0].AccessKeyID {
			t.Error("stale credentials served again")
		}
		e.events(t, 2)
	})

	t.Run("project filter has its own entries", func(t *testing.T) {
		svc, _ := setup(t, 8)
		get(t, svc, "/auths/resources", bearer).answer(t)
		narrowed := get(t, svc, "/auths/resources?project=q", bearer).answer(t)
		if n := e.issue.Load(); n != 2 {
			t.Errorf("%d AssumeRole calls, want 2", n)
		}
		if g := narrowed.CredentialSets[0].Grants; len(g) != 1 || g[0].Bucket != "climate-models" {
			t.Errorf("narrowed answer grants %+v, want climate-models only", g)
		}
		e.events(t, 2)
	})

	t.Run("disabled cache assumes the role every time", func(t *testing.T) {
		svc, _ := setup(t, 0)
		get(t, svc, "/auths/resources", bearer).answer(t)
		get(t, svc, "/auths/resources", bearer).answer(t)
		if n := e.issue.Load(); n != 2 {
			t.Errorf("%d AssumeRole calls, want 2", n)
		}
		e.events(t, 2)
	})

	t.Run("changed policy version never reuses older credentials", func(t *testing.T) {
		svc, _ := setup(t, 8)
		before := get(t, svc, "/auths/resources", bearer).answer(t)
		changed := e.seed(t, user, map[string][]broker.Place{"p": places("genomics-raw")})
		after := get(t, svc, "/auths/resources", bearer).answer(t)
		if n := e.issue.Load(); n != 2 {
			t.Errorf("%d AssumeRole calls, want 2", n)
		}
		if after.PolicyVersion != changed.Version || after.PolicyVersion == before.PolicyVersion {
			t.Errorf("versions before %s after %s, want the new %s", before.PolicyVersion, after.PolicyVersion, changed.Version)
		}
		if after.CredentialSets[0].AccessKeyID == before.CredentialSets[0].AccessKeyID {
			t.Error("credentials of the older version served after the change")
		}
		if diff := cmp.Diff(changed.Grants, after.CredentialSets[0].Grants); diff != "" {
			t.Errorf("grants after the change (-want +got):\n%s", diff)
		}
		e.events(t, 2)
	})
}

func TestConcurrentRequestsShareTheCache(t *testing.T) {
	e := newEnv(t)
	pool := newLocalPool(t)
	users := []string{"f8091a2b-3c4d-4e5f-8061-7a8b9c0d1e2f", "091a2b3c-4d5e-4f60-9172-8b9c0d1e2f30"}
	for _, u := range users {
		e.seed(t, u, map[string][]broker.Place{"p": places("genomics-raw"), "q": places("climate-models:write")})
	}
	tokens := []string{"Bearer " + pool.token(t, users[0]), "Bearer " + pool.token(t, users[1])}
	svc := e.service(pool.verifier, func(s *credentials.Service) {
		s.Cache = credentials.NewCache(2, nil)
		// Why a request failed belongs in the test's output: a 503 alone
		// does not say which dependency was slow.
		s.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 4 {
				target := "/auths/resources"
				if i%2 == 1 {
					target += "?project=q"
				}
				if r := get(t, svc, target, tokens[g%2]); r.status != 200 {
					t.Errorf("status %d: %s", r.status, r.body)
				}
			}
		})
	}
	wg.Wait()
	if n := e.issue.Load(); n < 2 || n > 32 {
		t.Errorf("%d AssumeRole calls for 32 requests", n)
	}
}
