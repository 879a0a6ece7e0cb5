package mototest

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	ciptypes "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"
)

// User creates a confirmed user of pool with a permanent password, as an
// administrator would, and returns its sub (the user id of the membership
// table).
func User(tb testing.TB, idp *cip.Client, pool, name, password string) string {
	tb.Helper()
	ctx := tb.Context()
	if _, err := idp.AdminCreateUser(ctx, &cip.AdminCreateUserInput{
		UserPoolId: aws.String(pool), Username: aws.String(name), MessageAction: ciptypes.MessageActionTypeSuppress,
	}); err != nil {
		tb.Fatal(err)
	}
	if _, err := idp.AdminSetUserPassword(ctx, &cip.AdminSetUserPasswordInput{
		UserPoolId: aws.String(pool), Username: aws.String(name), Password: aws.String(password), Permanent: true,
	}); err != nil {
		tb.Fatal(err)
	}
	u, err := idp.AdminGetUser(ctx, &cip.AdminGetUserInput{UserPoolId: aws.String(pool), Username: aws.String(name)})
	if err != nil {
		tb.Fatal(err)
	}
	for _, a := range u.UserAttributes {
		if aws.ToString(a.Name) == "sub" {
			return aws.ToString(a.Value)
		}
	}
	tb.Fatalf("user %s has no sub", name)
	return ""
}
