package jwtauth_test

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/testkit/fakeclock"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/jwtauth"
	"github.com/credbroker/credbroker/internal/testkit/jwttest"
)

const (
	issuer   = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_TestPool"
	clientID = "test-client"
	sub      = "8f3c2a4e-1b2d-4c5e-9f60-7a8b9c0d1e2f"
)

// testKey is shared by the tests of this package: generating RSA keys is slow.
var testKey = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })

func key(tb testing.TB) *rsa.PrivateKey {
	tb.Helper()
	k, err := testKey()
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

type fixture struct {
	key    *rsa.PrivateKey
	jwks   *jwttest.JWKSServer
	clock  *fakeclock.Clock
	v      *jwtauth.Verifier
	claims map[string]any
}

// newFixture serves testKey as jwttest.Kid and returns a verifier of it.
func newFixture(t testing.TB, configure ...func(*jwtauth.Config)) *fixture {
	t.Helper()
	f := &fixture{key: key(t), clock: fakeclock.New(time.Unix(1_750_000_000, 0))}
	f.jwks = jwttest.NewJWKSServer(t, jwttest.JWKS(t, jwttest.PublicJWK(jwttest.Kid, &f.key.PublicKey)))
	cfg := jwtauth.Config{
		Issuer:     issuer,
		JWKSURL:    f.jwks.URL,
		ClientIDs:  []string{"other-client", clientID},
		HTTPClient: f.jwks.Client(),
		Now:        f.clock.Now,
		Logger:     slog.New(slog.DiscardHandler),
	}
	for _, c := range configure {
		c(&cfg)
	}
	v, err := jwtauth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.v = v
	f.claims = jwttest.Claims(issuer, clientID, sub, f.clock.Now())
	return f
}

func (f *fixture) mint(t testing.TB, kv ...any) string {
	t.Helper()
	return jwttest.Mint(t, f.key, jwttest.Kid, nil, jwttest.With(f.claims, kv...))
}

// wantKind fails the test unless err has kind k.
func wantKind(t testing.TB, err error, k broker.Kind) {
	t.Helper()
	if got := broker.KindOf(err); err == nil || got != k {
		t.Fatalf("error %v has kind %v, want %v", err, got, k)
	}
}

func TestValidTokenIsAcceptedWithItsPrincipal(t *testing.T) {
	f := newFixture(t)
	got, err := f.v.Verify(t.Context(), f.mint(t))
	if err != nil {
		t.Fatal(err)
	}
	want := broker.Principal{
		UserID:   sub,
		ClientID: clientID,
		Username: "user-" + sub,
		TokenID:  "jti-" + sub,
		Expires:  f.clock.Now().Add(time.Hour),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("principal (-want +got):\n%s", diff)
	}
}

// safeMessages are all the messages a rejection may carry: short, fixed,
// free of token or key material.
var safeMessages = map[string]bool{
	"missing bearer token":                       true,
	"authorization header is not a bearer token": true,
	"token too large":                            true,
	"malformed token":                            true,
	"invalid signature":                          true,
	"unsupported token header":                   true,
	"unsupported token type":                     true,
	"token has no key id":                        true,
	"invalid key id":                             true,
	"unknown signing key":                        true,
	"token has no expiry":                        true,
	"token expired":                              true,
	"token not yet valid":                        true,
	"token issued in the future":                 true,
	"token has no issue time":                    true,
	"wrong issuer":                               true,
	"not an access token":                        true,
	"wrong client":                               true,
	"token has no subject":                       true,
	"invalid subject":                            true,
}

func TestEveryAttackIsRejectedAsUnauthenticated(t *testing.T) {
	f := newFixture(t)
	attacks := jwttest.Attacks(t, jwttest.Target{Key: f.key, Kid: jwttest.Kid, Claims: f.claims, Now: f.clock.Now()})
	if len(attacks) < 40 {
		t.Fatalf("only %d attacks", len(attacks))
	}
	for _, a := range attacks {
		t.Run(a.Name+" is rejected", func(t *testing.T) {
			token, err := broker.BearerToken(a.Header)
			if err == nil {
				_, err = f.v.Verify(t.Context(), token)
			}
			wantKind(t, err, broker.Unauthenticated)
			if msg := broker.MessageOf(err); !safeMessages[msg] {
				t.Errorf("message %q is not one of the safe messages", msg)
			}
			if got := !errors.Is(err, broker.ErrNoToken); got != a.Presented {
				t.Errorf("token presented = %v, want %v (err %v)", got, a.Presented, err)
			}
		})
	}
	// No attack may have changed what the verifier trusts.
	if _, err := f.v.Verify(t.Context(), f.mint(t)); err != nil {
		t.Errorf("valid token after the attacks: %v", err)
	}
}

func TestRejectionsSayWhy(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now()
	tests := []struct {
		name  string
		token string
		want  string
	}{
		{"expired token is rejected as expired", f.mint(t, "exp", now.Add(-time.Minute).Unix()), "token expired"},
		{"token of another issuer is rejected as wrong issuer", f.mint(t, "iss", issuer+"x"), "wrong issuer"},
		{"id token is rejected as not an access token", f.mint(t, "token_use", "id"), "not an access token"},
		{"token of another client is rejected as wrong client", f.mint(t, "client_id", "x"), "wrong client"},
		{"token without exp is rejected as having no expiry", f.mint(t, "exp", nil), "token has no expiry"},
		{"token issued in the future is rejected", f.mint(t, "iat", now.Add(time.Minute).Unix()), "token issued in the future"},
		{"token not yet valid is rejected", f.mint(t, "nbf", now.Add(time.Minute).Unix()), "token not yet valid"},
		{"token with a bad sub is rejected as invalid subject", f.mint(t, "sub", "a/b"), "invalid subject"},
		{"token over the size limit is rejected as too large", f.mint(t, "pad", strings.Repeat("x", 9000)), "token too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.v.Verify(t.Context(), tt.token)
			wantKind(t, err, broker.Unauthenticated)
			if got := broker.MessageOf(err); got != tt.want {
				t.Errorf("message %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLeewayAppliesToExpNbfAndIat(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now()
	tests := []struct {
		name   string
		kv     []any
		accept bool
	}{
		{"exp 29s ago is accepted", []any{"exp", now.Add(-29 * time.Second).Unix()}, true},
		{"exp 31s ago is rejected", []any{"exp", now.Add(-31 * time.Second).Unix()}, false},
		{"nbf in 29s is accepted", []any{"nbf", now.Add(29 * time.Second).Unix()}, true},
		{"nbf in 31s is rejected", []any{"nbf", now.Add(31 * time.Second).Unix()}, false},
		{"iat in 29s is accepted", []any{"iat", now.Add(29 * time.Second).Unix()}, true},
		{"iat in 31s is rejected", []any{"iat", now.Add(31 * time.Second).Unix()}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.v.Verify(t.Context(), f.mint(t, tt.kv...))
			if tt.accept && err != nil {
				t.Fatalf("rejected: %v", err)
			}
			if !tt.accept {
				wantKind(t, err, broker.Unauthenticated)
			}
		})
	}
}

func TestNewValidatesConfig(t *testing.T) {
	valid := jwtauth.Config{Issuer: issuer, ClientIDs: []string{clientID}}
	tests := []struct {
		name   string
		modify func(*jwtauth.Config)
	}{
		{"missing issuer is rejected", func(c *jwtauth.Config) { c.Issuer = "" }},
		{"http issuer is rejected", func(c *jwtauth.Config) { c.Issuer = "http://cognito-idp.example.com/p" }},
		{"issuer with a trailing slash is rejected", func(c *jwtauth.Config) { c.Issuer += "/" }},
		{"relative issuer is rejected", func(c *jwtauth.Config) { c.Issuer = "us-east-1_abc" }},
		{"no client ids are rejected", func(c *jwtauth.Config) { c.ClientIDs = nil }},
		{"an empty client id is rejected", func(c *jwtauth.Config) { c.ClientIDs = []string{clientID, ""} }},
		{"http jwks url on a remote host is rejected", func(c *jwtauth.Config) { c.JWKSURL = "http://example.com/jwks.json" }},
		{"jwks url with credentials is rejected", func(c *jwtauth.Config) { c.JWKSURL = "https://u:p@example.com/jwks.json" }},
		{"negative leeway is rejected", func(c *jwtauth.Config) { c.Leeway = -time.Second }},
		{"negative refresh interval is rejected", func(c *jwtauth.Config) { c.RefreshInterval = -time.Second }},
		{"max key age below the refresh interval is rejected", func(c *jwtauth.Config) { c.MaxKeyAge = time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			cfg.ClientIDs = []string{clientID}
			tt.modify(&cfg)
			_, err := jwtauth.New(cfg)
			wantKind(t, err, broker.Internal)
		})
	}
	t.Run("http jwks url on loopback is accepted", func(t *testing.T) {
		cfg := valid
		cfg.JWKSURL = "http://127.0.0.1:4566/us-east-1_abc/.well-known/jwks.json"
		if _, err := jwtauth.New(cfg); err != nil {
			t.Fatal(err)
		}
	})
}

// Plain HTTP is allowed for a local key set only, and "local" is an address,
// never a DNS name that happens to start like one.
func TestJWKSLoopbackRefusesDNSNames(t *testing.T) {
	base := jwtauth.Config{Issuer: "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_abc", ClientIDs: []string{"c"}}
	for url, ok := range map[string]bool{
		"http://127.0.0.1:4566/jwks.json":        true,
		"http://127.1.2.3/jwks.json":             true,
		"http://[::1]:4566/jwks.json":            true,
		"http://localhost:4566/jwks.json":        true,
		"http://127.attacker.example/jwks.json":  false,
		"http://127.0.0.1.nip.io/jwks.json":      false,
		"http://localhost.attacker.example/jwks": false,
		"http://[::ffff:8.8.8.8]/jwks.json":      false,
		"http://10.0.0.1/jwks.json":              false,
		"https://127.attacker.example/jwks.json": true,
	} {
		cfg := base
		cfg.JWKSURL = url
		_, err := jwtauth.New(cfg)
		if ok != (err == nil) {
			t.Errorf("%s: err %v, want accepted %v", url, err, ok)
		}
	}
}

// recordingDoer is a hand-written fake HTTP client: it records request URLs
// and answers with do, so a test can see where the verifier would connect
// without any network.
type recordingDoer struct {
	mu   sync.Mutex
	urls []string
	do   func(*http.Request) (*http.Response, error)
}

func (d *recordingDoer) Do(r *http.Request) (*http.Response, error) {
	d.mu.Lock()
	d.urls = append(d.urls, r.URL.String())
	d.mu.Unlock()
	return d.do(r)
}

func TestNewDoesNoIOAndDerivesTheJWKSURLFromTheIssuer(t *testing.T) {
	doer := &recordingDoer{do: func(*http.Request) (*http.Response, error) { return nil, errors.New("offline") }}
	v, err := jwtauth.New(jwtauth.Config{Issuer: issuer, ClientIDs: []string{clientID}, HTTPClient: doer,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if len(doer.urls) != 0 {
		t.Fatalf("New made requests: %v", doer.urls)
	}
	token := jwttest.Mint(t, key(t), jwttest.Kid, nil, jwttest.Claims(issuer, clientID, sub, time.Now()))
	_, err = v.Verify(t.Context(), token)
	wantKind(t, err, broker.Transient)
	if diff := cmp.Diff([]string{issuer + "/.well-known/jwks.json"}, doer.urls); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func BenchmarkVerify(b *testing.B) {
	f := newFixture(b)
	// Real time, so the token stays valid however long the benchmark runs.
	v, err := jwtauth.New(jwtauth.Config{Issuer: issuer, JWKSURL: f.jwks.URL, ClientIDs: []string{clientID},
		HTTPClient: f.jwks.Client(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	token := jwttest.Mint(b, f.key, jwttest.Kid, nil, jwttest.Claims(issuer, clientID, sub, time.Now()))
	if _, err := v.Verify(b.Context(), token); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(b.Context(), token); err != nil {
			b.Fatal(err)
		}
	}
}
