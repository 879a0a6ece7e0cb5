//go:build integration

package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	ciptypes "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/credbroker/credbroker/internal/testkit/mototest"
)

// `make smoke` without STACK_NAME, end to end on a local stack of its own
// (on the test run's moto): the object is written and read back through
// the judge, a read outside the grants is denied, the old credentials end
// denied after the membership's removal, and nothing the check made is
// left behind.
func TestSmokeOnTheLocalStack(t *testing.T) {
	ctx := context.Background()
	var progress strings.Builder
	o, err := parse([]string{"-moto", mototest.Endpoint(t)}, func(string) string { return "" }, &progress)
	if err != nil {
		t.Fatal(err)
	}
	tgt, stop, err := open(ctx, o, &progress)
	if err != nil {
		t.Fatal(err)
	}
	failed := true
	defer func() { stop(failed) }()

	res, err := run(ctx, tgt, o, &progress)
	if err != nil {
		t.Fatalf("the smoke check failed: %v\n%s", err, progress.String())
	}
	if len(res.CleanupErrors) > 0 {
		t.Errorf("cleanup: %v", res.CleanupErrors)
	}
	if !res.ProbeDenied {
		t.Error("a read outside the grants was not denied")
	}
	// put, get, the probe and every poll were judged; the probe and the
	// last poll denied.
	if res.Judged != 3+res.Polls || res.JudgeDenied != 2 {
		t.Errorf("the judge judged %d calls and denied %d; want %d and 2", res.Judged, res.JudgeDenied, 3+res.Polls)
	}
	var out strings.Builder
	res.writeText(&out)
	for _, line := range []string{"sign-in ", "fetch ", "put ", "get ", "denied after ", "cleanup         done"} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("the figures lack %q:\n%s", line, out.String())
		}
	}

	// Nothing is left: the user, the membership records, the buckets.
	admin := tgt.admin
	_, err = cip.NewFromConfig(admin).AdminGetUser(ctx, &cip.AdminGetUserInput{UserPoolId: aws.String(tgt.info.UserPoolID), Username: aws.String(res.User)})
	var gone *ciptypes.UserNotFoundException
	if !errors.As(err, &gone) {
		t.Errorf("the throwaway user: %v, want UserNotFoundException", err)
	}
	items, err := dynamodb.NewFromConfig(admin).Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(tgt.info.MembershipTable)})
	if err != nil {
		t.Fatal(err)
	}
	if len(items.Items) != 0 {
		t.Errorf("%d membership records left: %v", len(items.Items), items.Items)
	}
	buckets, err := s3.NewFromConfig(admin, func(so *s3.Options) { so.UsePathStyle = true }).ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range buckets.Buckets {
		if name := aws.ToString(b.Name); name == tgt.bucket || name == tgt.probe {
			t.Errorf("bucket %s left behind", name)
		}
	}
	failed = t.Failed()
}
