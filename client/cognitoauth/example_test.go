package cognitoauth_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"

	"github.com/credbroker/credbroker/client/cognitoauth"
)

// Sign in once and keep the tokens in a file only the user can read; a
// later process gets a current access token from the file, refreshed with
// the refresh token when it is about to expire.
func Example() {
	ctx := context.Background()
	idp := cip.New(cip.Options{Region: "eu-west-1", Credentials: aws.AnonymousCredentials{}})
	dir, _ := os.UserConfigDir()
	src, err := cognitoauth.New(cognitoauth.Config{
		Client: idp, UserPoolID: "eu-west-1_AbCdEf123", ClientID: "4lkd3...",
		Store: cognitoauth.FileStore{Path: filepath.Join(dir, "credbroker", "tokens.json")},
		// FlowAuto (the default) proves the password with SRP, and sends
		// it only if the app client does not allow SRP.
	})
	if err != nil {
		log.Fatal(err)
	}
	err = src.SignIn(ctx, "alice", os.Getenv("CREDBROKER_PASSWORD"))
	switch {
	case errors.Is(err, cognitoauth.ErrNotAuthorized):
		log.Fatal("wrong username or password")
	case errors.Is(err, cognitoauth.ErrNewPasswordRequired):
		log.Fatal("set a new password first")
	case err != nil:
		log.Fatal(err)
	}

	// Later, in another process:
	token, err := src.Token(ctx)
	if errors.Is(err, cognitoauth.ErrSignInRequired) {
		log.Fatal("sign in again")
	}
	fmt.Println(len(token) > 0)
}
