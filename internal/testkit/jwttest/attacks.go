package jwttest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Target describes the verifier that the attacks aim at.
type Target struct {
	// Key is the private half of the key the verifier's JWKS serves as Kid.
	Key *rsa.PrivateKey
	Kid string
	// Claims are those of a token the verifier accepts, e.g. from Claims.
	Claims map[string]any
	// Now is the verifier's clock; default time.Now().
	Now time.Time
	// MaxTokenBytes is the verifier's size limit; default 8192.
	MaxTokenBytes int
}

// Attack is one Authorization header value that a correct verifier rejects.
type Attack struct {
	Name   string
	Header string
	// Presented says whether a bearer token was presented at all; when it
	// was, the 401 challenge carries error="invalid_token" (RFC 6750 3.1).
	Presented bool
}

// attackerKey is a second RSA key, the attacker's, shared by all tests of a
// process because generating one is slow.
var attackerKey = sync.OnceValues(func() (*rsa.PrivateKey, error) {
	return rsa.GenerateKey(rand.Reader, 2048)
})

// Attacks returns header values that the verifier of target must reject.
// Tokens signed with target.Key break exactly one rule, so each case tests
// that rule rather than the signature check.
func Attacks(tb testing.TB, target Target) []Attack {
	tb.Helper()
	attacker, err := attackerKey()
	if err != nil {
		tb.Fatalf("attacker key: %v", err)
	}
	now := target.Now
	if now.IsZero() {
		now = time.Now()
	}
	maxBytes := target.MaxTokenBytes
	if maxBytes == 0 {
		maxBytes = 8192
	}
	key, kid, claims := target.Key, target.Kid, target.Claims
	iss, _ := claims["iss"].(string)
	clientID, _ := claims["client_id"].(string)
	valid := Mint(tb, key, kid, nil, claims)
	parts := strings.Split(valid, ".")
	mint := func(header map[string]any, c map[string]any) string { return Mint(tb, key, kid, header, c) }
	with := func(kv ...any) string { return mint(nil, With(claims, kv...)) }

	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		tb.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hs256 := func(secret []byte) string {
		return mintWith(tb, jwt.SigningMethodHS256, secret, kid, nil, claims)
	}
	// raw builds a token from JSON segments and a signature, for headers
	// the jwt library would not produce.
	raw := func(header map[string]any, sig string) string {
		h, err := json.Marshal(header)
		if err != nil {
			tb.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(h) + "." + parts[1] + "." + sig
	}
	otherPool := iss + "x"
	if i := strings.LastIndex(iss, "/"); i >= 0 {
		otherPool = iss[:i+1] + "us-east-1_AttackerPool"
	}
	idClaims := With(claims, "token_use", "id", "client_id", nil, "aud", clientID, "cognito:username", "victim")
	tampered := With(claims, "sub", "someone-else")
	tamperedJSON, err := json.Marshal(tampered)
	if err != nil {
		tb.Fatal(err)
	}
	pad := strings.Repeat("A", maxBytes)

	tokens := []struct{ name, token string }{
		// Algorithm confusion.
		{"alg none", mintWith(tb, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid, nil, claims)},
		{"alg none with a signature segment", raw(map[string]any{"alg": "none", "kid": kid}, parts[2])},
		{"alg NONE with a signature segment", raw(map[string]any{"alg": "NONE", "kid": kid}, parts[2])},
		{"alg missing", raw(map[string]any{"kid": kid}, parts[2])},
		{"HS256 with the public key PEM as secret", hs256(pubPEM)},
		{"HS256 with the public key DER as secret", hs256(pubDER)},
		{"HS256 with the modulus as secret", hs256(key.N.Bytes())},
		{"RS512 signed by the right key", mintWith(tb, jwt.SigningMethodRS512, key, kid, nil, claims)},
		{"PS256 signed by the right key", mintWith(tb, jwt.SigningMethodPS256, key, kid, nil, claims)},
		// Key selection.
		{"unknown kid", Mint(tb, key, "unknown-kid", nil, claims)},
		{"missing kid", mint(map[string]any{"kid": nil}, claims)},
		{"kid that is not a string", mint(map[string]any{"kid": 42}, claims)},
		{"kid path traversal", Mint(tb, key, "../../../../../../dev/null", nil, claims)},
		{"kid SQL injection", Mint(tb, key, kid+"' OR '1'='1", nil, claims)},
		{"kid with NUL byte", Mint(tb, key, kid+"\x00", nil, claims)},
		{"kid too long", Mint(tb, key, strings.Repeat("k", 129), nil, claims)},
		{"jku header to the attacker's key set", Mint(tb, attacker, kid,
			map[string]any{"jku": "https://attacker.example/jwks.json"}, claims)},
		{"jku header on an otherwise valid token", mint(map[string]any{"jku": "https://attacker.example/jwks.json"}, claims)},
		{"jwk header embedding the attacker's key", Mint(tb, attacker, kid,
			map[string]any{"jwk": PublicJWK(kid, &attacker.PublicKey)}, claims)},
		{"x5u header", mint(map[string]any{"x5u": "https://attacker.example/cert.pem"}, claims)},
		{"x5c header", mint(map[string]any{"x5c": []string{base64.StdEncoding.EncodeToString(pubDER)}}, claims)},
		{"crit header", mint(map[string]any{"crit": []string{"exp"}}, claims)},
		{"typ other than JWT", mint(map[string]any{"typ": "JWE"}, claims)},
		{"signed by another key with the right kid", Mint(tb, attacker, kid, nil, claims)},
		// Signature.
		{"tampered payload", parts[0] + "." + base64.RawURLEncoding.EncodeToString(tamperedJSON) + "." + parts[2]},
		{"empty signature", parts[0] + "." + parts[1] + "."},
		{"truncated signature", parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-4]},
		{"signature of another token", parts[0] + "." + parts[1] + "." + strings.Split(with("jti", "other"), ".")[2]},
		// Claims.
		{"missing exp", with("exp", nil)},
		{"expired", with("iat", now.Add(-3*time.Hour).Unix(), "exp", now.Add(-2*time.Hour).Unix())},
		{"nbf in the future", with("nbf", now.Add(time.Hour).Unix())},
		{"iat in the future", with("iat", now.Add(time.Hour).Unix(), "exp", now.Add(2*time.Hour).Unix())},
		{"missing iat", with("iat", nil)},
		{"wrong issuer", with("iss", "https://attacker.example.com")},
		{"issuer with a trailing slash", with("iss", iss+"/")},
		{"token of another user pool", with("iss", otherPool)},
		{"id token", mint(nil, idClaims)},
		{"missing token_use", with("token_use", nil)},
		{"wrong client_id", with("client_id", "attacker-client")},
		{"missing client_id", with("client_id", nil)},
		{"missing sub", with("sub", nil)},
		{"sub that is not a user id", with("sub", "USER#victim")},
		// Shape.
		{"oversized token", with("pad", pad)},
		{"garbage", "garbage"},
		{"three garbage segments", "abc.def.ghi"},
		{"two segments", parts[0] + "." + parts[1]},
		{"four segments", valid + "." + parts[2]},
		{"padded base64", valid + "=="},
		{"standard base64 alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(valid) + "+/"},
	}
	attacks := make([]Attack, 0, len(tokens)+8)
	for _, t := range tokens {
		attacks = append(attacks, Attack{Name: t.name, Header: "Bearer " + t.token, Presented: true})
	}
	return append(attacks,
		Attack{Name: "missing header", Header: ""},
		Attack{Name: "basic credentials", Header: "Basic dXNlcjpwYXNzd29yZA=="},
		Attack{Name: "token without scheme", Header: valid},
		Attack{Name: "bearer scheme without token", Header: "Bearer"},
		Attack{Name: "bearer scheme with empty token", Header: "Bearer "},
		Attack{Name: "tab after scheme", Header: "Bearer\t" + valid},
		Attack{Name: "two spaces after scheme", Header: "Bearer  " + valid, Presented: true},
		Attack{Name: "two tokens", Header: "Bearer " + valid + " " + valid, Presented: true},
	)
}
