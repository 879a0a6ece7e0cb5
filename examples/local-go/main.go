// Command local-go is the README's Go example made to run against the local
// stack (`make run`): it signs a user in, gets credentials for one bucket
// through the credbroker client package, and lists the bucket with them.
//
//	SEED=1 make run    # in another terminal
//	CREDBROKER_PASSWORD='Demo-Passw0rd!' go run ./examples/local-go --bucket demo-curated --prefix team-a/
//
// Against the local stack three things differ from a deployed one, all in
// listBucket: every AWS call goes to moto's endpoint (the stack file's
// awsEndpoint), S3 uses path-style URLs (moto serves buckets as paths, not
// host names), and sign-in uses the password flow (moto runs SRP without
// checking the proof, so there SRP would accept any password). The stack
// file names everything else. It imports only the public packages, so it
// can be copied out of this module as it is.
//
// Exit status: 0 listed; 2 usage (flags, no password, no stack file, a
// refused sign-in); 3 failure (no access, the stack unreachable, S3's
// refusal).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/credbroker/credbroker/client"
	"github.com/credbroker/credbroker/client/cognitoauth"
)

// Stack is what this program reads of the local stack's stack file.
type Stack struct {
	Region           string `json:"region"`
	AWSEndpoint      string `json:"awsEndpoint"`
	APIURL           string `json:"apiUrl"`
	UserPoolID       string `json:"userPoolId"`
	UserPoolClientID string `json:"userPoolClientId"`
}

// listBucket signs username in, fetches credentials for the bucket (or
// its folder prefix) and writes the keys under it to out.
func listBucket(ctx context.Context, out io.Writer, st Stack, username, password, bucket, prefix string) error {
	cfg := aws.Config{Region: st.Region, BaseEndpoint: aws.String(st.AWSEndpoint), // moto, for Cognito and S3
		Credentials: aws.AnonymousCredentials{}} // signing in needs no AWS credentials
	tokens, err := cognitoauth.New(cognitoauth.Config{Client: cip.NewFromConfig(cfg),
		UserPoolID: st.UserPoolID, ClientID: st.UserPoolClientID,
		Flow: cognitoauth.FlowPassword}) // moto does not check SRP proofs
	if err != nil {
		return err
	}
	if err := tokens.SignIn(ctx, username, password); err != nil {
		return err
	}

	broker, err := client.New(st.APIURL, tokens) // http is accepted for loopback only
	if err != nil {
		return err
	}
	creds := broker.ObjectCredentialsProvider(bucket, prefix, client.Read)
	s3c := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.Credentials = creds
		o.APIOptions = append(o.APIOptions, creds.RetryOnAccessDenied)
		o.UsePathStyle = true // moto serves buckets as paths
	})
	pages := s3.NewListObjectsV2Paginator(s3c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, o := range page.Contents {
			fmt.Fprintf(out, "s3://%s/%s\t%d bytes\n", bucket, aws.ToString(o.Key), aws.ToInt64(o.Size))
		}
	}
	return nil
}

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run is main: it returns the exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("local-go", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stackFile := fs.String("stack", ".local/stack.json", "the local stack's stack file, which `make run` writes")
	username := fs.String("username", "demo", "the user who signs in; the password comes from CREDBROKER_PASSWORD")
	bucket := fs.String("bucket", "demo-raw", "the bucket to list")
	prefix := fs.String("prefix", "", "list only under this folder of the bucket (e.g. team-a/)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(status int, format string, a ...any) int {
		fmt.Fprintf(stderr, "local-go: "+format+"\n", a...)
		return status
	}
	if fs.NArg() > 0 {
		return fail(2, "unexpected argument %q: every option is a flag (-h lists them)", fs.Arg(0))
	}
	password := getenv("CREDBROKER_PASSWORD")
	if password == "" {
		return fail(2, "set CREDBROKER_PASSWORD to %s's password (the seeded demo user's is Demo-Passw0rd!)", *username)
	}
	st, err := readStack(*stackFile)
	if err != nil {
		return fail(2, "%v", err)
	}
	err = listBucket(ctx, stdout, st, *username, password, *bucket, *prefix)
	var apiErr smithy.APIError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, cognitoauth.ErrNotAuthorized):
		return fail(2, "%v: check the username and CREDBROKER_PASSWORD; each `make run` starts a new user pool, and `SEED=1` adds demo / Demo-Passw0rd!", err)
	case errors.Is(err, client.ErrNoAccess):
		return fail(3, "%v\nSee the user's grants with `credbroker admin explain --stack %s --username %s`.", err, *stackFile, *username)
	case errors.As(err, &apiErr) && apiErr.ErrorCode() == "NoSuchBucket":
		return fail(3, "bucket %s does not exist at %s: create it (`aws --endpoint-url %s s3 mb s3://%s`), or start the stack with `SEED=1 make run`, which creates the examples' buckets",
			*bucket, st.AWSEndpoint, st.AWSEndpoint, *bucket)
	default:
		return fail(3, "%v\nIs the local stack of %s running (`SEED=1 make run`)?", err, *stackFile)
	}
}

// readStack reads the stack file and checks the fields this program uses.
func readStack(path string) (Stack, error) {
	var st Stack
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, fmt.Errorf("%s does not exist: start the local stack with `SEED=1 make run` first, or name its stack file with -stack", path)
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("%s is not a stack file: %v", path, err)
	}
	for _, f := range []struct{ name, value string }{{"region", st.Region}, {"awsEndpoint", st.AWSEndpoint},
		{"apiUrl", st.APIURL}, {"userPoolId", st.UserPoolID}, {"userPoolClientId", st.UserPoolClientID}} {
		if f.value == "" {
			return st, fmt.Errorf("%s is not a local stack's stack file: it has no %s", path, f.name)
		}
	}
	return st, nil
}
