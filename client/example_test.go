package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/credbroker/credbroker/client"
	"github.com/credbroker/credbroker/client/cognitoauth"
)

// Sign in with Cognito, then read an object with credentials that reach
// exactly the user's grants.
func Example() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("eu-west-1"),
		config.WithCredentialsProvider(aws.AnonymousCredentials{})) // sign-in needs no AWS credentials
	if err != nil {
		log.Fatal(err)
	}
	tokens, err := cognitoauth.New(cognitoauth.Config{
		Client:     cip.NewFromConfig(cfg),
		UserPoolID: "eu-west-1_AbCdEf123", ClientID: "4lkd3...",
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := tokens.SignIn(ctx, "alice", os.Getenv("CREDBROKER_PASSWORD")); err != nil {
		log.Fatal(err)
	}
	broker, err := client.New("https://abc123.execute-api.eu-west-1.amazonaws.com", tokens)
	if err != nil {
		log.Fatal(err)
	}
	creds := broker.CredentialsProvider("genomics-raw")
	s3c := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.Credentials = creds
		o.APIOptions = append(o.APIOptions, creds.RetryOnAccessDenied)
	})
	out, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("genomics-raw"), Key: aws.String("runs/2026/summary.csv")})
	if errors.Is(err, client.ErrNoAccess) {
		log.Fatal(err) // "credbroker: no access to s3://genomics-raw/ (read): ..."
	}
	if err != nil {
		log.Fatal(err)
	}
	defer out.Body.Close()
}

// A user whose grants need several credential sets (more buckets than one
// session policy holds) uses one provider per bucket, or per key: each
// routes to the set whose grants cover it, and all share one cached
// answer.
func Example_multipleCredentialSets() {
	ctx := context.Background()
	var tokens client.TokenSource = client.StaticToken(os.Getenv("ACCESS_TOKEN"))
	broker, err := client.New("https://abc123.execute-api.eu-west-1.amazonaws.com", tokens)
	if err != nil {
		log.Fatal(err)
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	s3For := func(p *client.Provider) *s3.Client {
		return s3.NewFromConfig(cfg, func(o *s3.Options) {
			o.Credentials = p
			o.APIOptions = append(o.APIOptions, p.RetryOnAccessDenied)
		})
	}
	raw := s3For(broker.CredentialsProvider("genomics-raw"))
	// Writing under a folder: the set holding the write grant on it.
	results := s3For(broker.ObjectCredentialsProvider("shared-exports", "genomics/results/", client.Write))

	if _, err := raw.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("genomics-raw")}); err != nil {
		log.Fatal(err)
	}
	if _, err := results.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String("shared-exports"), Key: aws.String("genomics/results/run-42.csv"), Body: strings.NewReader("..."),
	}); err != nil {
		log.Fatal(err)
	}
}

// Routing is a pure function of the answer: which set serves which target.
func ExampleAnswer_SetFor() {
	exp := time.Date(2030, 1, 1, 12, 15, 0, 0, time.UTC)
	answer := &client.Answer{
		UserID: "3f8e2a5c", PolicyVersion: "v1.abc", Expiration: exp,
		CredentialSets: []client.CredentialSet{
			{AccessKeyID: "ASIAONE", SecretAccessKey: "...", SessionToken: "...", Expiration: exp, Grants: []client.Grant{
				{Bucket: "genomics-raw", Prefix: "runs/2026/", Access: client.Write, Projects: []string{"genomics"}},
			}},
			{AccessKeyID: "ASIATWO", SecretAccessKey: "...", SessionToken: "...", Expiration: exp, Grants: []client.Grant{
				{Bucket: "shared-exports", Access: client.Read, Projects: []string{"genomics", "imaging"}},
			}},
		},
	}
	for _, t := range []client.Target{
		{Bucket: "genomics-raw", Key: "runs/2026/a.bam", Access: client.Write},
		{Bucket: "shared-exports"},
		{Bucket: "shared-exports", Key: "x.csv", Access: client.Write},
	} {
		set, err := answer.SetFor(t)
		if err != nil {
			fmt.Println(t, "->", err)
			continue
		}
		fmt.Println(t, "->", set.AccessKeyID)
	}
	// Output:
	// s3://genomics-raw/runs/2026/a.bam (write) -> ASIAONE
	// s3://shared-exports/ (read) -> ASIATWO
	// s3://shared-exports/x.csv (write) -> credbroker: no access to s3://shared-exports/x.csv (write): the user can reach in this bucket: the whole bucket (read)
}

// A command run once per AWS CLI call (credential_process) keeps answers
// in a file between runs, so that most calls answer without a request.
func ExampleFileCache() {
	ctx := context.Background()
	dir, _ := os.UserCacheDir()
	broker, err := client.New("https://abc123.execute-api.eu-west-1.amazonaws.com",
		client.StaticToken(os.Getenv("ACCESS_TOKEN")),
		func(o *client.Options) {
			// One file per user and endpoint: it holds credentials.
			o.Cache = client.FileCache{Path: filepath.Join(dir, "credbroker", "alice@prod.json")}
		})
	if err != nil {
		log.Fatal(err)
	}
	creds, err := broker.Credentials(ctx, client.Target{Bucket: "genomics-raw"})
	if err != nil {
		log.Fatal(err)
	}
	_ = json.NewEncoder(os.Stdout).Encode(map[string]any{
		"Version": 1, "AccessKeyId": creds.AccessKeyID, "SecretAccessKey": creds.SecretAccessKey,
		"SessionToken": creds.SessionToken, "Expiration": creds.Expires.UTC().Format(time.RFC3339),
	})
}
