package jwtauth_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/jwtauth"
	"github.com/credbroker/credbroker/internal/testkit/jwttest"
)

func wantFetches(t testing.TB, s *jwttest.JWKSServer, want int) {
	t.Helper()
	if got := s.Fetches(); got != want {
		t.Fatalf("JWKS fetched %d times, want %d", got, want)
	}
}

func TestJWKSIsFetchedOnceAcrossManyVerifications(t *testing.T) {
	f := newFixture(t)
	wantFetches(t, f.jwks, 0)
	token := f.mint(t)
	for range 50 {
		if _, err := f.v.Verify(t.Context(), token); err != nil {
			t.Fatal(err)
		}
		f.clock.Add(time.Minute) // a known kid does not refresh within the keys' maximum age
	}
	wantFetches(t, f.jwks, 1)
}

func TestUnknownKidRefreshesAtMostOncePerInterval(t *testing.T) {
	f := newFixture(t, func(c *jwtauth.Config) { c.RefreshInterval = 10 * time.Minute })
	rotated := jwttest.Mint(t, f.key, "rotated", nil, f.claims)
	verify := func(token string) error {
		t.Helper()
		_, err := f.v.Verify(t.Context(), token)
		return err
	}
	if err := verify(f.mint(t)); err != nil {
		t.Fatal(err)
	}
	wantFetches(t, f.jwks, 1)

	// The pool rotates its key; within the interval the new kid stays unknown.
	f.jwks.SetBody(jwttest.JWKS(t, jwttest.PublicJWK(jwttest.Kid, &f.key.PublicKey), jwttest.PublicJWK("rotated", &f.key.PublicKey)))
	for range 5 {
		wantKind(t, verify(rotated), broker.Unauthenticated)
	}
	wantFetches(t, f.jwks, 1)
	f.clock.Add(10*time.Minute - time.Nanosecond)
	wantKind(t, verify(rotated), broker.Unauthenticated)
	wantFetches(t, f.jwks, 1)

	// Once the interval has passed, one refresh finds it.
	f.clock.Add(time.Nanosecond)
	if err := verify(rotated); err != nil {
		t.Fatalf("rotated key after the interval: %v", err)
	}
	wantFetches(t, f.jwks, 2)

	// A kid that is still unknown after the refresh waits for the next interval.
	unknown := jwttest.Mint(t, f.key, "unknown", nil, f.claims)
	wantKind(t, verify(unknown), broker.Unauthenticated)
	wantFetches(t, f.jwks, 2)
	f.clock.Add(10 * time.Minute)
	wantKind(t, verify(unknown), broker.Unauthenticated)
	wantFetches(t, f.jwks, 3)
}

func TestRefreshDropsKeysRemovedFromTheSet(t *testing.T) {
	f := newFixture(t)
	token := f.mint(t)
	if _, err := f.v.Verify(t.Context(), token); err != nil {
		t.Fatal(err)
	}
	f.jwks.SetBody(jwttest.JWKS(t, jwttest.PublicJWK("replacement", &f.key.PublicKey)))
	f.clock.Add(time.Hour)
	if _, err := f.v.Verify(t.Context(), jwttest.Mint(t, f.key, "replacement", nil, f.claims)); err != nil {
		t.Fatal(err)
	}
	_, err := f.v.Verify(t.Context(), token)
	wantKind(t, err, broker.Unauthenticated)
}

// verifyConcurrently runs n verifications of token at once while the JWKS
// server holds the first fetch, and returns their errors.
func verifyConcurrently(t *testing.T, f *fixture, token string, n int) []error {
	t.Helper()
	seen := f.jwks.Hold()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = f.v.Verify(t.Context(), token) })
	}
	<-seen // one fetch is in flight; the others join it or find it done
	f.jwks.Release()
	wg.Wait()
	return errs
}

func TestConcurrentVerificationsOnAColdCacheFetchOnce(t *testing.T) {
	f := newFixture(t)
	for i, err := range verifyConcurrently(t, f, f.mint(t), 32) {
		if err != nil {
			t.Errorf("verification %d: %v", i, err)
		}
	}
	wantFetches(t, f.jwks, 1)
}

func TestConcurrentVerificationsWithAnUnknownKidFetchOnce(t *testing.T) {
	f := newFixture(t)
	if _, err := f.v.Verify(t.Context(), f.mint(t)); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(time.Hour)
	for _, err := range verifyConcurrently(t, f, jwttest.Mint(t, f.key, "unknown", nil, f.claims), 32) {
		wantKind(t, err, broker.Unauthenticated)
	}
	wantFetches(t, f.jwks, 2)
}

func TestCallerGivingUpDoesNotCancelTheSharedFetch(t *testing.T) {
	f := newFixture(t)
	seen := f.jwks.Hold()
	ctx, cancel := context.WithCancel(t.Context())
	token := f.mint(t)
	done := make(chan error)
	go func() {
		_, err := f.v.Verify(ctx, token)
		done <- err
	}()
	<-seen
	cancel()
	wantKind(t, <-done, broker.Transient)
	f.jwks.Release()
	// The fetch the first caller started completes and fills the cache, or
	// this caller joins it: either way one fetch serves both.
	if _, err := f.v.Verify(t.Context(), token); err != nil {
		t.Fatal(err)
	}
	wantFetches(t, f.jwks, 1)
}

func TestJWKSDownAtFirstUseIsTransient(t *testing.T) {
	f := newFixture(t)
	f.jwks.SetFailing(true)
	token := f.mint(t)
	for range 3 {
		_, err := f.v.Verify(t.Context(), token)
		wantKind(t, err, broker.Transient)
		if msg := broker.MessageOf(err); msg != "signing keys unavailable" {
			t.Errorf("message %q", msg)
		}
	}
	// With nothing cached there is nothing to rate-limit: each call retries,
	// so the verifier recovers as soon as the key set does.
	wantFetches(t, f.jwks, 3)
	f.jwks.SetFailing(false)
	if _, err := f.v.Verify(t.Context(), token); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

func TestJWKSDownLaterKeepsTheCachedKeys(t *testing.T) {
	f := newFixture(t)
	token := f.mint(t)
	if _, err := f.v.Verify(t.Context(), token); err != nil {
		t.Fatal(err)
	}
	f.jwks.SetFailing(true)
	f.clock.Add(2 * time.Minute)
	// An unknown kid causes a refresh, which fails: the verifier cannot tell
	// whether the kid is new, so it cannot decide.
	unknown := jwttest.Mint(t, f.key, "unknown", nil, f.claims)
	_, err := f.v.Verify(t.Context(), unknown)
	wantKind(t, err, broker.Transient)
	wantFetches(t, f.jwks, 2)
	// The failed refresh counts against the interval too, and until a fetch
	// succeeds an unknown kid stays undecidable: 503, never 401.
	_, err = f.v.Verify(t.Context(), unknown)
	wantKind(t, err, broker.Transient)
	wantFetches(t, f.jwks, 2)
	if _, err := f.v.Verify(t.Context(), token); err != nil {
		t.Fatalf("cached key after a failed refresh: %v", err)
	}
	wantFetches(t, f.jwks, 2)
	// Once the key set answers again, the unknown kid is judged: 401.
	f.jwks.SetFailing(false)
	f.clock.Add(2 * time.Minute)
	_, err = f.v.Verify(t.Context(), unknown)
	wantKind(t, err, broker.Unauthenticated)
	wantFetches(t, f.jwks, 3)
	_, err = f.v.Verify(t.Context(), unknown)
	wantKind(t, err, broker.Unauthenticated)
	wantFetches(t, f.jwks, 3)
}

// Keys are trusted for their maximum age only. A key the pool stopped
// publishing (a compromised key rotated out) stops verifying once that age
// has passed, however busy the instance; and keys past their age are not a
// fallback while the key set cannot be fetched.
func TestCachedKeysExpireAfterTheirMaxAge(t *testing.T) {
	f := newFixture(t, func(c *jwtauth.Config) { c.MaxKeyAge = 15 * time.Minute })
	token := f.mint(t)
	if _, err := f.v.Verify(t.Context(), token); err != nil {
		t.Fatal(err)
	}
	other := key(t)
	f.jwks.SetBody(jwttest.JWKS(t, jwttest.PublicJWK("replacement", &other.PublicKey)))
	f.clock.Add(15*time.Minute - time.Second)
	if _, err := f.v.Verify(t.Context(), token); err != nil {
		t.Fatalf("within the maximum age: %v", err)
	}
	wantFetches(t, f.jwks, 1)

	f.clock.Add(time.Second)
	_, err := f.v.Verify(t.Context(), token)
	wantKind(t, err, broker.Unauthenticated)
	wantFetches(t, f.jwks, 2)

	// The same key, published again, expires again; with the key set down
	// once it has, tokens get a 503 rather than a stale verdict.
	f.jwks.SetBody(jwttest.JWKS(t, jwttest.PublicJWK(jwttest.Kid, &f.key.PublicKey)))
	f.clock.Add(time.Minute)
	if _, err := f.v.Verify(t.Context(), token); err != nil {
		t.Fatalf("key published again: %v", err)
	}
	f.jwks.SetFailing(true)
	f.clock.Add(15 * time.Minute)
	_, err = f.v.Verify(t.Context(), token)
	wantKind(t, err, broker.Transient)
}

func TestBadJWKSResponsesAreTransient(t *testing.T) {
	k := key(t)
	good := jwttest.PublicJWK(jwttest.Kid, &k.PublicKey)
	oversized := jwttest.JWKS(t, good)
	oversized = append(oversized[:len(oversized)-1], []byte(`,"pad":"`+strings.Repeat("x", jwtauth.MaxJWKSBytes)+`"}`)...)
	tests := []struct {
		name   string
		status int
		body   string
	}{
		{"oversized key set is transient", 200, string(oversized)},
		{"invalid JSON is transient", 200, `{"keys": [`},
		{"HTML page is transient", 200, `<html>sign in</html>`},
		{"empty object is transient", 200, `{}`},
		{"keys that are not a list are transient", 200, `{"keys": {"kid": "x"}}`},
		{"key set without a usable key is transient", 200, `{"keys": [{"kty": "EC", "kid": "test-key-1"}]}`},
		{"server error is transient", 500, string(jwttest.JWKS(t, good))},
		{"not found is transient", 404, string(jwttest.JWKS(t, good))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			}))
			t.Cleanup(srv.Close)
			f := newFixture(t, func(c *jwtauth.Config) { c.JWKSURL, c.HTTPClient = srv.URL, srv.Client() })
			_, err := f.v.Verify(t.Context(), f.mint(t))
			wantKind(t, err, broker.Transient)
		})
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	f := newFixture(t)
	redirect := httptest.NewServer(http.RedirectHandler(f.jwks.URL, http.StatusFound))
	t.Cleanup(redirect.Close)
	v, err := jwtauth.New(jwtauth.Config{Issuer: issuer, ClientIDs: []string{clientID}, JWKSURL: redirect.URL,
		Now: f.clock.Now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(t.Context(), f.mint(t))
	wantKind(t, err, broker.Transient)
	wantFetches(t, f.jwks, 0)
}

func TestOnlyRS256SigningKeysOfAtLeast2048BitsAreUsed(t *testing.T) {
	k := key(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	jwk := func(kid string, pub *rsa.PublicKey, kv ...any) map[string]any {
		m := jwttest.PublicJWK(kid, pub)
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	set := jwttest.JWKS(t,
		jwk("ec", &k.PublicKey, "kty", "EC"),
		jwk("oct", &k.PublicKey, "kty", "oct", "k", "c2VjcmV0"),
		jwk("enc", &k.PublicKey, "use", "enc"),
		jwk("rs512", &k.PublicKey, "alg", "RS512"),
		jwk("small", &small.PublicKey),
		jwk("even-exponent", &k.PublicKey, "e", "AQAA"),
		jwk("bad-modulus", &k.PublicKey, "n", "not base64!"),
		jwk("wrong-types", &k.PublicKey, "n", 12345),
		jwk("", &k.PublicKey),
		jwk("bare", &k.PublicKey, "use", nil, "alg", nil),
		jwk(jwttest.Kid, &k.PublicKey),
	)
	f := newFixture(t)
	f.jwks.SetBody(set)
	tests := []struct {
		kid    string
		signer *rsa.PrivateKey
		accept bool
	}{
		{"ec", k, false},
		{"oct", k, false},
		{"enc", k, false},
		{"rs512", k, false},
		{"small", small, false},
		{"even-exponent", k, false},
		{"bad-modulus", k, false},
		{"wrong-types", k, false},
		{"bare", k, true},
		{jwttest.Kid, k, true},
	}
	for _, tt := range tests {
		name := "key " + tt.kid + " is ignored"
		if tt.accept {
			name = "key " + tt.kid + " is used"
		}
		t.Run(name, func(t *testing.T) {
			_, err := f.v.Verify(t.Context(), jwttest.Mint(t, tt.signer, tt.kid, nil, f.claims))
			if tt.accept && err != nil {
				t.Fatal(err)
			}
			if !tt.accept {
				wantKind(t, err, broker.Unauthenticated)
			}
		})
	}
	wantFetches(t, f.jwks, 1)
}
