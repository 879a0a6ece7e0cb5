//go:build integration

package cognitoauth_test

import (
	"cmp"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"

	"github.com/credbroker/credbroker/client/cognitoauth"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
)

// pool is a user pool in moto with an app client that allows what the
// credbroker template's local client allows, and SRP.
type pool struct {
	idp      *cip.Client
	id       string
	clientID string
}

func newPool(t *testing.T) *pool {
	t.Helper()
	idp := cip.NewFromConfig(mototest.Config(t))
	p, err := idp.CreateUserPool(t.Context(), &cip.CreateUserPoolInput{PoolName: aws.String(mototest.Name(t, "cognitoauth"))})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(p.UserPool.Id)
	t.Cleanup(func() {
		_, _ = idp.DeleteUserPool(context.Background(), &cip.DeleteUserPoolInput{UserPoolId: aws.String(id)})
	})
	c, err := idp.CreateUserPoolClient(t.Context(), &cip.CreateUserPoolClientInput{
		UserPoolId: aws.String(id), ClientName: aws.String("cli"),
		ExplicitAuthFlows: []types.ExplicitAuthFlowsType{
			types.ExplicitAuthFlowsTypeAllowAdminUserPasswordAuth, types.ExplicitAuthFlowsTypeAllowUserPasswordAuth,
			types.ExplicitAuthFlowsTypeAllowUserSrpAuth, types.ExplicitAuthFlowsTypeAllowRefreshTokenAuth,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &pool{idp: idp, id: id, clientID: aws.ToString(c.UserPoolClient.ClientId)}
}

// user creates a user; permanent sets its password as the user's own,
// otherwise it stays a temporary one (FORCE_CHANGE_PASSWORD).
func (p *pool) user(t *testing.T, name, password string, permanent bool) {
	t.Helper()
	in := &cip.AdminCreateUserInput{UserPoolId: aws.String(p.id), Username: aws.String(name), MessageAction: types.MessageActionTypeSuppress}
	if !permanent {
		in.TemporaryPassword = aws.String(password)
	}
	if _, err := p.idp.AdminCreateUser(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	if permanent {
		if _, err := p.idp.AdminSetUserPassword(t.Context(), &cip.AdminSetUserPasswordInput{
			UserPoolId: aws.String(p.id), Username: aws.String(name), Password: aws.String(password), Permanent: true,
		}); err != nil {
			t.Fatal(err)
		}
	}
}

func (p *pool) source(t *testing.T, flow cognitoauth.Flow, store cognitoauth.Store) *cognitoauth.Source {
	t.Helper()
	s, err := cognitoauth.New(cognitoauth.Config{Client: p.idp, UserPoolID: p.id, ClientID: p.clientID, Flow: flow, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// owner asks Cognito whose access token tok is.
func (p *pool) owner(t *testing.T, tok string) string {
	t.Helper()
	out, err := p.idp.GetUser(t.Context(), &cip.GetUserInput{AccessToken: aws.String(tok)})
	if err != nil {
		t.Fatalf("GetUser with the token: %v", err)
	}
	return aws.ToString(out.Username)
}

// moto checks the password of USER_PASSWORD_AUTH but not the SRP proof
// (srp_test.go and cognitoauth_test.go check that); these tests show the
// calls, parameters and token handling against a real Cognito API.
func TestSignInAgainstMoto(t *testing.T) {
	p := newPool(t)
	p.user(t, "erin", "Erin-Passw0rd!", true)
	p.user(t, "frank", "Frank-Temp0rary!", false)

	for _, flow := range []cognitoauth.Flow{cognitoauth.FlowPassword, cognitoauth.FlowSRP, cognitoauth.FlowAuto} {
		t.Run("flow "+cmp.Or(string(flow), "auto"), func(t *testing.T) {
			s := p.source(t, flow, nil)
			if err := s.SignIn(t.Context(), "erin", "Erin-Passw0rd!"); err != nil {
				t.Fatal(err)
			}
			tok, err := s.Token(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if who := p.owner(t, tok); who != "erin" {
				t.Errorf("the token belongs to %q", who)
			}
			held, _ := s.Tokens(t.Context())
			if held.RefreshToken == "" || held.Expiry.Before(time.Now().Add(30*time.Minute)) || held.ClientID != p.clientID {
				t.Errorf("tokens %v: want a refresh token and an hour's expiry", held)
			}
			fresh, err := s.Refresh(t.Context())
			if err != nil {
				t.Fatalf("refresh: %v", err)
			}
			if fresh == tok {
				t.Error("refresh returned the same access token")
			}
			if who := p.owner(t, fresh); who != "erin" {
				t.Errorf("the refreshed token belongs to %q", who)
			}
		})
	}

	t.Run("a wrong password", func(t *testing.T) {
		err := p.source(t, cognitoauth.FlowPassword, nil).SignIn(t.Context(), "erin", "Wrong-Passw0rd!")
		if !errors.Is(err, cognitoauth.ErrNotAuthorized) {
			t.Errorf("SignIn = %v, want ErrNotAuthorized", err)
		}
	})

	for _, flow := range []cognitoauth.Flow{cognitoauth.FlowPassword, cognitoauth.FlowSRP} {
		t.Run("a temporary password with flow "+string(flow), func(t *testing.T) {
			err := p.source(t, flow, nil).SignIn(t.Context(), "frank", "Frank-Temp0rary!")
			var ce *cognitoauth.ChallengeError
			if !errors.Is(err, cognitoauth.ErrNewPasswordRequired) || !errors.As(err, &ce) {
				t.Errorf("SignIn = %v, want the NEW_PASSWORD_REQUIRED challenge", err)
			}
		})
	}

	t.Run("tokens kept in a file serve the next process", func(t *testing.T) {
		store := cognitoauth.FileStore{Path: filepath.Join(t.TempDir(), "tokens.json")}
		if err := p.source(t, cognitoauth.FlowAuto, store).SignIn(t.Context(), "erin", "Erin-Passw0rd!"); err != nil {
			t.Fatal(err)
		}
		next := p.source(t, cognitoauth.FlowAuto, store)
		tok, err := next.Token(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if who := p.owner(t, tok); who != "erin" {
			t.Errorf("the stored token belongs to %q", who)
		}
		if _, err := next.Refresh(t.Context()); err != nil {
			t.Errorf("refresh with the stored refresh token: %v", err)
		}
	})
}
