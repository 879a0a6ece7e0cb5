//go:build integration

package jwtauth_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/jwtauth"
	"github.com/credbroker/credbroker/internal/testkit/jwttest"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
)

// TestMotoCognitoTokens verifies real RS256 tokens from moto's Cognito.
// moto signs every pool with one key (kid "dummy"), so a token of another
// pool has a valid signature and only the issuer check rejects it.
func TestMotoCognitoTokens(t *testing.T) {
	cfg := mototest.Config(t)
	pool := jwttest.NewCognitoPool(t, cfg)
	other := jwttest.NewCognitoPool(t, cfg)
	const password = "Correct-Horse-9-battery"
	sub := pool.CreateUser(t, "alice", password)
	access, id := pool.SignIn(t, "alice", password)
	other.CreateUser(t, "alice", password)
	otherAccess, _ := other.SignIn(t, "alice", password)

	v, err := jwtauth.New(jwtauth.Config{Issuer: pool.Issuer, JWKSURL: pool.JWKSURL, ClientIDs: []string{pool.ClientID}})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("access token is accepted with the user's sub", func(t *testing.T) {
		p, err := v.Verify(t.Context(), access)
		if err != nil {
			t.Fatal(err)
		}
		got := broker.Principal{UserID: p.UserID, ClientID: p.ClientID, Username: p.Username}
		want := broker.Principal{UserID: sub, ClientID: pool.ClientID, Username: "alice"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("principal (-want +got):\n%s", diff)
		}
		if p.TokenID == "" || p.Expires.IsZero() {
			t.Errorf("principal without jti or exp: %+v", p)
		}
	})
	tests := []struct {
		name  string
		token string
		want  string
	}{
		{"id token is rejected", id, "not an access token"},
		{"access token of another pool signed with the same key is rejected", otherAccess, "wrong issuer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Verify(t.Context(), tt.token)
			wantKind(t, err, broker.Unauthenticated)
			if got := broker.MessageOf(err); got != tt.want {
				t.Errorf("message %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("access token is rejected by a verifier of another client", func(t *testing.T) {
		v, err := jwtauth.New(jwtauth.Config{Issuer: pool.Issuer, JWKSURL: pool.JWKSURL, ClientIDs: []string{other.ClientID}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = v.Verify(t.Context(), access)
		wantKind(t, err, broker.Unauthenticated)
	})
}
