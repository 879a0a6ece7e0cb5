package jwtauth_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/jwtauth"
	"github.com/credbroker/credbroker/internal/testkit/jwttest"
)

func Example() {
	// A local server plays the user pool's key set; in production JWKSURL
	// is left empty and derived from Issuer.
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	keySet, _ := json.Marshal(map[string]any{"keys": []any{jwttest.PublicJWK("key-1", &key.PublicKey)}})
	pool := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(keySet) }))
	defer pool.Close()

	const issuer = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example"
	verifier, err := jwtauth.New(jwtauth.Config{
		Issuer:    issuer,
		JWKSURL:   pool.URL + "/us-east-1_Example/.well-known/jwks.json",
		ClientIDs: []string{"web-app"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	// What Cognito would issue to a signed-in user.
	access := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims(
		jwttest.Claims(issuer, "web-app", "alice-sub", time.Now())))
	access.Header["kid"] = "key-1"
	signed, _ := access.SignedString(key)

	token, err := broker.BearerToken("Bearer " + signed)
	if err != nil {
		fmt.Println(err)
		return
	}
	p, err := verifier.Verify(context.Background(), token)
	fmt.Println(p.UserID, p.ClientID, err)

	_, err = verifier.Verify(context.Background(), "not-a-token")
	fmt.Println(broker.KindOf(err), broker.MessageOf(err))

	_, err = broker.BearerToken("")
	fmt.Println(broker.MessageOf(err))
	// Output:
	// alice-sub web-app <nil>
	// unauthenticated malformed token
	// missing bearer token
}
