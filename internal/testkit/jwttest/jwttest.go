// Package jwttest mints tokens, serves key sets and lists attack tokens for
// tests of jwtauth and of the handlers that use it.
package jwttest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Kid is the key id that tokens minted by these helpers carry by default.
const Kid = "test-key-1"

// NewKey returns a fresh 2048-bit RSA key.
func NewKey(tb testing.TB) *rsa.PrivateKey {
	tb.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// Claims returns the claims of a valid Cognito access token of issuer and
// clientID for sub, issued at now and expiring an hour later.
func Claims(issuer, clientID, sub string, now time.Time) map[string]any {
	return map[string]any{
		"iss":       issuer,
		"sub":       sub,
		"client_id": clientID,
		"token_use": "access",
		"scope":     "aws.cognito.signin.user.admin",
		"username":  "user-" + sub,
		"jti":       "jti-" + sub,
		"auth_time": now.Unix(),
		"iat":       now.Unix(),
		"exp":       now.Add(time.Hour).Unix(),
	}
}

// With returns a copy of claims with the given entries set; a nil value
// removes the entry.
func With(claims map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(claims)+len(kv)/2)
	for k, v := range claims {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(out, k)
		} else {
			out[k] = kv[i+1]
		}
	}
	return out
}

// Mint returns an RS256 token over claims signed by key, with header kid
// and the entries of header added (a nil value removes an entry, e.g.
// "kid" or "typ").
func Mint(tb testing.TB, key *rsa.PrivateKey, kid string, header map[string]any, claims map[string]any) string {
	tb.Helper()
	return mintWith(tb, jwt.SigningMethodRS256, key, kid, header, claims)
}

func mintWith(tb testing.TB, method jwt.SigningMethod, key any, kid string, header, claims map[string]any) string {
	tb.Helper()
	t := jwt.NewWithClaims(method, jwt.MapClaims(claims))
	delete(t.Header, "typ") // Cognito access tokens carry none
	if kid != "" {
		t.Header["kid"] = kid
	}
	for k, v := range header {
		if v == nil {
			delete(t.Header, k)
		} else {
			t.Header[k] = v
		}
	}
	s, err := t.SignedString(key)
	if err != nil {
		tb.Fatalf("mint token: %v", err)
	}
	return s
}

// PublicJWK returns pub as an RS256 signing JWK with the given kid.
func PublicJWK(kid string, pub *rsa.PublicKey) map[string]any {
	return map[string]any{
		"kty": "RSA",
		"use": "sig",
		"alg": "RS256",
		"kid": kid,
		"n":   base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e":   base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}
}

// JWKS returns the key set JSON {"keys": [...]} of keys.
func JWKS(tb testing.TB, keys ...map[string]any) []byte {
	tb.Helper()
	if keys == nil {
		keys = []map[string]any{}
	}
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		tb.Fatalf("marshal jwks: %v", err)
	}
	return b
}

// JWKSServer is an httptest server of a key set that counts its fetches and
// can be made to fail or to hold requests.
type JWKSServer struct {
	URL string

	srv     *httptest.Server
	fetches atomic.Int64
	failing atomic.Bool

	mu   sync.Mutex
	body []byte
	hold chan struct{} // closed to release held requests; nil when not holding
	seen chan struct{} // receives one value per held request
}

// NewJWKSServer serves body as the key set until the test ends.
func NewJWKSServer(tb testing.TB, body []byte) *JWKSServer {
	tb.Helper()
	s := &JWKSServer{body: body}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL + "/.well-known/jwks.json"
	tb.Cleanup(func() {
		s.Release()
		s.srv.Close()
	})
	return s
}

func (s *JWKSServer) serve(w http.ResponseWriter, r *http.Request) {
	s.fetches.Add(1)
	s.mu.Lock()
	hold, seen, body := s.hold, s.seen, s.body
	s.mu.Unlock()
	if hold != nil {
		seen <- struct{}{}
		<-hold
	}
	if s.failing.Load() {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

// Fetches returns how many requests the server has received.
func (s *JWKSServer) Fetches() int { return int(s.fetches.Load()) }

// SetFailing makes the server answer 503 (true) or the key set (false).
func (s *JWKSServer) SetFailing(fail bool) { s.failing.Store(fail) }

// SetBody replaces the key set served.
func (s *JWKSServer) SetBody(body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body = body
}

// Hold makes every later request wait until Release; each held request
// first sends on the returned channel, so a test can wait for a fetch to
// be in flight without sleeping.
func (s *JWKSServer) Hold() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hold = make(chan struct{})
	s.seen = make(chan struct{}, 1024)
	return s.seen
}

// Release lets held requests and later ones through.
func (s *JWKSServer) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hold != nil {
		close(s.hold)
		s.hold = nil
	}
}

// Client returns an HTTP client for the server.
func (s *JWKSServer) Client() *http.Client { return s.srv.Client() }
