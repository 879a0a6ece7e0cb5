package jwttest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"

	"github.com/credbroker/credbroker/internal/testkit/mototest"
)

// CognitoPool is a user pool with one app client that allows password
// sign-in, made for one test and deleted when it ends.
type CognitoPool struct {
	ID       string
	ClientID string
	// Issuer is the iss of the pool's tokens.
	Issuer string
	// JWKSURL is where the pool's signing keys are: under the SDK's base
	// endpoint when one is set (moto), else under the issuer.
	JWKSURL string

	client *cip.Client
}

// NewCognitoPool creates a user pool and an app client allowing
// USER_PASSWORD_AUTH, ADMIN_USER_PASSWORD_AUTH and REFRESH_TOKEN_AUTH.
func NewCognitoPool(tb testing.TB, cfg aws.Config) *CognitoPool {
	tb.Helper()
	ctx := tb.Context()
	client := cip.NewFromConfig(cfg)
	pool, err := client.CreateUserPool(ctx, &cip.CreateUserPoolInput{PoolName: aws.String(mototest.Name(tb, "credbroker"))})
	if err != nil {
		tb.Fatalf("create user pool: %v", err)
	}
	id := aws.ToString(pool.UserPool.Id)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := client.DeleteUserPool(ctx, &cip.DeleteUserPoolInput{UserPoolId: aws.String(id)}); err != nil {
			tb.Errorf("delete user pool %s: %v", id, err)
		}
	})
	app, err := client.CreateUserPoolClient(ctx, &cip.CreateUserPoolClientInput{
		UserPoolId: aws.String(id),
		ClientName: aws.String("credbroker-test"),
		ExplicitAuthFlows: []types.ExplicitAuthFlowsType{
			types.ExplicitAuthFlowsTypeAllowUserPasswordAuth,
			types.ExplicitAuthFlowsTypeAllowAdminUserPasswordAuth,
			types.ExplicitAuthFlowsTypeAllowRefreshTokenAuth,
		},
	})
	if err != nil {
		tb.Fatalf("create user pool client: %v", err)
	}
	issuer := "https://cognito-idp." + cfg.Region + ".amazonaws.com/" + id
	base := issuer
	if cfg.BaseEndpoint != nil {
		base = strings.TrimRight(*cfg.BaseEndpoint, "/") + "/" + id
	}
	return &CognitoPool{
		ID:       id,
		ClientID: aws.ToString(app.UserPoolClient.ClientId),
		Issuer:   issuer,
		JWKSURL:  base + "/.well-known/jwks.json",
		client:   client,
	}
}

// CreateUser creates a confirmed user with a permanent password and returns
// its sub.
func (p *CognitoPool) CreateUser(tb testing.TB, username, password string) (sub string) {
	tb.Helper()
	ctx := tb.Context()
	out, err := p.client.AdminCreateUser(ctx, &cip.AdminCreateUserInput{
		UserPoolId:        aws.String(p.ID),
		Username:          aws.String(username),
		MessageAction:     types.MessageActionTypeSuppress,
		TemporaryPassword: aws.String(password),
	})
	if err != nil {
		tb.Fatalf("create user %s: %v", username, err)
	}
	if _, err := p.client.AdminSetUserPassword(ctx, &cip.AdminSetUserPasswordInput{
		UserPoolId: aws.String(p.ID),
		Username:   aws.String(username),
		Password:   aws.String(password),
		Permanent:  true,
	}); err != nil {
		tb.Fatalf("set password of %s: %v", username, err)
	}
	for _, a := range out.User.Attributes {
		if aws.ToString(a.Name) == "sub" {
			return aws.ToString(a.Value)
		}
	}
	tb.Fatalf("user %s has no sub attribute", username)
	return ""
}

// SignIn signs the user in with USER_PASSWORD_AUTH and returns the tokens.
func (p *CognitoPool) SignIn(tb testing.TB, username, password string) (accessToken, idToken string) {
	tb.Helper()
	out, err := p.client.InitiateAuth(tb.Context(), &cip.InitiateAuthInput{
		ClientId:       aws.String(p.ClientID),
		AuthFlow:       types.AuthFlowTypeUserPasswordAuth,
		AuthParameters: map[string]string{"USERNAME": username, "PASSWORD": password},
	})
	if err != nil {
		tb.Fatalf("sign in %s: %v", username, err)
	}
	if out.AuthenticationResult == nil {
		tb.Fatalf("sign in %s: challenge %s instead of tokens", username, out.ChallengeName)
	}
	return aws.ToString(out.AuthenticationResult.AccessToken), aws.ToString(out.AuthenticationResult.IdToken)
}
