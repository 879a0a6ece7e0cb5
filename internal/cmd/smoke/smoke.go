package main

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	ciptypes "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/credbroker/credbroker/client"
	"github.com/credbroker/credbroker/client/cognitoauth"
	"github.com/credbroker/credbroker/internal/backoff"
	"github.com/credbroker/credbroker/internal/stackfile"
)

// target is the stack the check runs against.
type target struct {
	name string // for the report: the stack name, or "local"
	info stackfile.Stack
	// admin makes the operator's calls: Cognito admin, the membership
	// table, the object's and (locally) the buckets' cleanup.
	admin aws.Config
	// s3 is the configuration of the throwaway user's S3 client (its
	// credentials replaced by the broker's): the judge locally, S3 on AWS.
	s3        aws.Config
	pathStyle bool
	bucket    string
	// local: the check creates the bucket and deletes it afterwards, and
	// the judge says which calls it judged.
	createBucket bool
	judge        *judge
	// probe, when set, is a bucket the user is never granted: a call to it
	// must be denied, or the judging is not real.
	probe string
}

// Result is what a run measured.
type Result struct {
	Stack, User, Bucket, Key string
	SignIn                   time.Duration // Cognito sign-in of the throwaway user
	GrantVisible             time.Duration // from the membership write to the first answer with the bucket
	Fetch                    time.Duration // that last fetch
	Put, Get                 time.Duration
	// ProbeDenied: a call outside the grants was denied (local only).
	ProbeDenied bool
	// DeniedAfter: from the membership's removal to the first denied call
	// of the old credentials; Polls calls were made meanwhile.
	DeniedAfter time.Duration
	Polls       int
	// Judged and JudgeDenied are the judge's counts for the user's
	// credentials (local only).
	Judged, JudgeDenied int
	// CleanupErrors lists what could not be removed.
	CleanupErrors []string
}

// run is the smoke check: a throwaway user, signed in; a membership with
// write access to the bucket; credentials fetched with the Go client; an
// object written and read back; the membership removed; the old
// credentials polled until S3 (locally the judge) denies them; cleanup.
func run(ctx context.Context, t *target, o options, progress io.Writer) (res *Result, err error) {
	id := newID()
	res = &Result{Stack: t.name, User: "credbroker-smoke-" + id, Bucket: t.bucket, Key: "credbroker-smoke/" + id + ".txt"}
	project := "credbroker-smoke-" + id
	password := "Sm0ke-" + id + "-Aa1!"
	ddb := dynamodb.NewFromConfig(t.admin)
	idp := cip.NewFromConfig(t.admin)
	admin3 := s3.NewFromConfig(t.admin, func(so *s3.Options) { so.UsePathStyle = t.pathStyle })
	table := aws.String(t.info.MembershipTable)
	pool := aws.String(t.info.UserPoolID)
	var sub string

	// Cleanup runs whatever happened, on its own deadline.
	var undo []func(context.Context) error
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		for i := len(undo) - 1; i >= 0; i-- {
			if e := undo[i](cctx); e != nil {
				res.CleanupErrors = append(res.CleanupErrors, e.Error())
			}
		}
		if err == nil && len(res.CleanupErrors) > 0 {
			err = fmt.Errorf("cleanup: %s", strings.Join(res.CleanupErrors, "; "))
		}
	}()
	step := func(format string, args ...any) { fmt.Fprintf(progress, "smoke: "+format+"\n", args...) }

	if t.createBucket {
		for _, b := range []string{t.bucket, t.probe} {
			if b == "" {
				continue
			}
			if _, err := admin3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
				return res, fmt.Errorf("create bucket %s: %w", b, err)
			}
			undo = append(undo, func(ctx context.Context) error {
				_, err := admin3.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(b)})
				return wrap(err, "delete bucket "+b)
			})
		}
	}

	// The throwaway user.
	if _, err := idp.AdminCreateUser(ctx, &cip.AdminCreateUserInput{UserPoolId: pool, Username: aws.String(res.User), MessageAction: ciptypes.MessageActionTypeSuppress}); err != nil {
		return res, fmt.Errorf("create user %s: %w", res.User, err)
	}
	undo = append(undo, func(ctx context.Context) error {
		_, err := idp.AdminDeleteUser(ctx, &cip.AdminDeleteUserInput{UserPoolId: pool, Username: aws.String(res.User)})
		return wrap(err, "delete user "+res.User)
	})
	if _, err := idp.AdminSetUserPassword(ctx, &cip.AdminSetUserPasswordInput{UserPoolId: pool, Username: aws.String(res.User), Password: aws.String(password), Permanent: true}); err != nil {
		return res, fmt.Errorf("set the password of %s: %w", res.User, err)
	}
	got, err := idp.AdminGetUser(ctx, &cip.AdminGetUserInput{UserPoolId: pool, Username: aws.String(res.User)})
	if err != nil {
		return res, fmt.Errorf("read user %s: %w", res.User, err)
	}
	for _, a := range got.UserAttributes {
		if aws.ToString(a.Name) == "sub" {
			sub = aws.ToString(a.Value)
		}
	}
	if sub == "" {
		return res, fmt.Errorf("user %s has no sub", res.User)
	}
	step("user %s (%s) created", res.User, sub)

	// Sign in as the user.
	signIn := cip.NewFromConfig(t.admin, func(co *cip.Options) { co.Credentials = aws.AnonymousCredentials{} })
	tokens, err := cognitoauth.New(cognitoauth.Config{Client: signIn, UserPoolID: t.info.UserPoolID, ClientID: t.info.UserPoolClientID})
	if err != nil {
		return res, err
	}
	start := time.Now()
	if err := tokens.SignIn(ctx, res.User, password); err != nil {
		return res, fmt.Errorf("sign in: %w", err)
	}
	res.SignIn = time.Since(start)

	// The membership: write access to the bucket through a project of
	// its own.
	membership := key("USER#"+sub, "PROJECT#"+project)
	place := key("PROJECT#"+project, "BUCKET#"+t.bucket)
	for _, k := range []map[string]types.AttributeValue{place, membership} {
		undo = append(undo, func(ctx context.Context) error {
			_, err := ddb.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: table, Key: k})
			return wrap(err, "delete membership record "+itemName(k))
		})
	}
	if _, err := ddb.PutItem(ctx, &dynamodb.PutItemInput{TableName: table, Item: place}); err != nil {
		return res, fmt.Errorf("write the project's bucket: %w", err)
	}
	row := key("USER#"+sub, "PROJECT#"+project)
	row["role"] = &types.AttributeValueMemberS{Value: "write"}
	written := time.Now()
	if _, err := ddb.PutItem(ctx, &dynamodb.PutItemInput{TableName: table, Item: row}); err != nil {
		return res, fmt.Errorf("write the membership: %w", err)
	}
	step("membership written: %s may write s3://%s/", res.User, t.bucket)

	// Fetch credentials with the Go client until the grant shows.
	broker, err := client.New(t.info.APIURL, tokens, func(co *client.Options) { co.UserAgent = "credbroker-smoke" })
	if err != nil {
		return res, err
	}
	want := client.Target{Bucket: t.bucket, Key: res.Key, Access: client.Write}
	var creds aws.Credentials
	for {
		start := time.Now()
		a, ferr := broker.Refresh(ctx, "")
		res.Fetch = time.Since(start)
		if ferr == nil {
			set, serr := a.SetFor(want)
			if serr == nil {
				creds = set.Credentials()
				break
			}
			ferr = serr
		}
		if time.Since(written) > o.GrantTimeout {
			return res, fmt.Errorf("no credentials for %s within %v of the membership write: %w", want, o.GrantTimeout, ferr)
		}
		if err := backoff.Sleep(ctx, 250*time.Millisecond); err != nil {
			return res, err
		}
	}
	res.GrantVisible = time.Since(written)
	step("credentials %s fetched", creds.AccessKeyID)
	if t.judge != nil && !t.judge.knows(creds.AccessKeyID) {
		return res, fmt.Errorf("the judge never saw %s minted: its S3 calls would go unjudged", creds.AccessKeyID)
	}

	// The old credentials, fixed: nothing refreshes them.
	user3 := s3.NewFromConfig(t.s3, func(so *s3.Options) {
		so.Credentials = aws.NewCredentialsCache(staticCreds{creds})
		so.UsePathStyle = t.pathStyle
		so.RetryMaxAttempts = 1
	})
	body := []byte("credbroker smoke check " + id + "\n")
	start = time.Now()
	if _, err := user3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(t.bucket), Key: aws.String(res.Key), Body: bytes.NewReader(body)}); err != nil {
		return res, fmt.Errorf("put s3://%s/%s: %w", t.bucket, res.Key, err)
	}
	res.Put = time.Since(start)
	undo = append(undo, func(ctx context.Context) error {
		_, err := admin3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(t.bucket), Key: aws.String(res.Key)})
		return wrap(err, "delete object s3://"+t.bucket+"/"+res.Key)
	})
	start = time.Now()
	back, err := getObject(ctx, user3, t.bucket, res.Key)
	res.Get = time.Since(start)
	if err != nil {
		return res, fmt.Errorf("get s3://%s/%s: %w", t.bucket, res.Key, err)
	}
	if !bytes.Equal(back, body) {
		return res, fmt.Errorf("get s3://%s/%s: read %q, wrote %q", t.bucket, res.Key, back, body)
	}
	step("object written and read back")

	if t.probe != "" {
		_, err := getObject(ctx, user3, t.probe, res.Key)
		if !isAccessDenied(err) {
			return res, fmt.Errorf("a read of s3://%s/ (never granted) was not denied (%v): the judging is not real", t.probe, err)
		}
		res.ProbeDenied = true
	}

	// Remove the membership and wait for the old credentials' denial.
	if _, err := ddb.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: table, Key: membership}); err != nil {
		return res, fmt.Errorf("remove the membership: %w", err)
	}
	removed := time.Now()
	step("membership removed; polling the old credentials (up to %v)", o.DenyTimeout)
	var last error
	for {
		_, err := getObject(ctx, user3, t.bucket, res.Key)
		res.Polls++
		if isAccessDenied(err) {
			res.DeniedAfter = time.Since(removed)
			break
		}
		if err != nil {
			last = err // a transient error is no answer; keep polling
		}
		if time.Since(removed) > o.DenyTimeout {
			return res, fmt.Errorf("the old credentials were still not denied %v after the membership's removal (%d calls; last error %v)", o.DenyTimeout, res.Polls, last)
		}
		if err := backoff.Sleep(ctx, o.PollEvery); err != nil {
			return res, err
		}
	}
	if t.judge != nil {
		res.Judged, res.JudgeDenied = t.judge.stats(creds.AccessKeyID)
	}
	return res, nil
}

func getObject(ctx context.Context, c *s3.Client, bucket, key string) ([]byte, error) {
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}

func isAccessDenied(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "AccessDenied"
}

// staticCreds hands out one set of credentials for ever.
type staticCreds struct{ c aws.Credentials }

func (s staticCreds) Retrieve(context.Context) (aws.Credentials, error) { return s.c, nil }

func key(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: pk}, "sk": &types.AttributeValueMemberS{Value: sk}}
}

func itemName(k map[string]types.AttributeValue) string {
	pk, _ := k["pk"].(*types.AttributeValueMemberS)
	sk, _ := k["sk"].(*types.AttributeValueMemberS)
	if pk == nil || sk == nil {
		return "?"
	}
	return pk.Value + " " + sk.Value
}

func wrap(err error, what string) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

func newID() string {
	var b [4]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// writeText prints the figures, one a line.
func (r *Result) writeText(w io.Writer) {
	secs := func(d time.Duration) string { return fmt.Sprintf("%.3f s", d.Seconds()) }
	fmt.Fprintf(w, "stack           %s\n", r.Stack)
	fmt.Fprintf(w, "user            %s\n", r.User)
	fmt.Fprintf(w, "object          s3://%s/%s\n", r.Bucket, r.Key)
	fmt.Fprintf(w, "sign-in         %s\n", secs(r.SignIn))
	fmt.Fprintf(w, "grant visible   %s after the membership write\n", secs(r.GrantVisible))
	fmt.Fprintf(w, "fetch           %s\n", secs(r.Fetch))
	fmt.Fprintf(w, "put             %s\n", secs(r.Put))
	fmt.Fprintf(w, "get             %s\n", secs(r.Get))
	if r.Judged > 0 {
		fmt.Fprintf(w, "judged          %d S3 calls of the user by the IAM evaluator, %d denied; a read outside the grants denied: %v\n", r.Judged, r.JudgeDenied, r.ProbeDenied)
	}
	fmt.Fprintf(w, "denied after    %s (%d calls of the old credentials after the membership's removal)\n", secs(r.DeniedAfter), r.Polls)
	if len(r.CleanupErrors) == 0 {
		fmt.Fprintln(w, "cleanup         done")
	} else {
		fmt.Fprintf(w, "cleanup         FAILED: %s\n", strings.Join(r.CleanupErrors, "; "))
	}
}
