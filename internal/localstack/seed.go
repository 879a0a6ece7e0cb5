package localstack

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/ddbstore"
)

// Demo is what the demo seed created.
type Demo struct {
	Username, Password, UserID string
	// Project is the user's project with write access; it owns Places.
	// ReadOnlyProject is one with read access; it owns ReadOnlyPlaces. A
	// place is "bucket/" or "bucket/folder/".
	Project, ReadOnlyProject string
	Places, ReadOnlyPlaces   []string
	// Contractor is a second user, in no project, for the README's
	// time-bounded example (`admin member put --username contractor
	// --project genomics ...`); project Genomics owns GenomicsPlaces. The
	// contractor's password is Password too.
	Contractor, Genomics string
	GenomicsPlaces       []string
	// Buckets are every bucket the seed created, each with objects in it.
	Buckets []string
}

// demoBuckets are the buckets the seed creates, with their objects: the
// demo user's three, and every other bucket a documented example names, so
// that no example meets NoSuchBucket on the local stack: demo-exports (the
// worked example grants project demo its folder 2026/), genomics-raw (the
// time-bounded example, through project genomics) and shared-exports (the
// clients' examples).
var demoBuckets = []struct {
	name    string
	objects []string
}{
	{"demo-raw", []string{"team-a/hello.txt", "team-b/secret.txt"}},
	{"demo-curated", []string{"team-a/hello.txt", "team-b/secret.txt"}},
	{"demo-archive", []string{"2025/summary.txt"}},
	{"demo-exports", []string{"2026/hello.txt"}},
	{"genomics-raw", []string{"runs/2026/hello.txt"}},
	{"shared-exports", []string{"genomics/results/hello.txt"}},
}

// seed creates a user; a project "demo" the user writes to, with one whole
// bucket and one folder of another; a project "archive" the user may only
// read, with one bucket (so the demo page can show a refusal); a second
// user in no project and a project "genomics" with one folder, for the
// README's time-bounded example; the buckets of demoBuckets in moto's S3
// with objects; and the memberships. With a demo
// page, each bucket also gets the CORS rule the page needs on AWS (web/README.md
// "Demo page"), so that its browser requests meet the same checks here.
func seed(ctx context.Context, cfg aws.Config, info Info) (*Demo, error) {
	d := &Demo{
		Username: "demo", Password: "Demo-Passw0rd!",
		Project: "demo", Places: []string{"demo-raw/", "demo-curated/team-a/"},
		ReadOnlyProject: "archive", ReadOnlyPlaces: []string{"demo-archive/"},
		Contractor: "contractor", Genomics: "genomics", GenomicsPlaces: []string{"genomics-raw/runs/2026/"},
	}
	idp := cip.NewFromConfig(cfg)
	for _, name := range []string{d.Username, d.Contractor} {
		if _, err := idp.AdminCreateUser(ctx, &cip.AdminCreateUserInput{UserPoolId: aws.String(info.UserPoolID), Username: aws.String(name), MessageAction: "SUPPRESS"}); err != nil {
			return nil, err
		}
		if _, err := idp.AdminSetUserPassword(ctx, &cip.AdminSetUserPasswordInput{UserPoolId: aws.String(info.UserPoolID), Username: aws.String(name), Password: aws.String(d.Password), Permanent: true}); err != nil {
			return nil, err
		}
	}
	u, err := idp.AdminGetUser(ctx, &cip.AdminGetUserInput{UserPoolId: aws.String(info.UserPoolID), Username: aws.String(d.Username)})
	if err != nil {
		return nil, err
	}
	for _, a := range u.UserAttributes {
		if aws.ToString(a.Name) == "sub" {
			d.UserID = aws.ToString(a.Value)
		}
	}
	if d.UserID == "" {
		return nil, fmt.Errorf("demo user has no sub")
	}

	s3c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	for _, db := range demoBuckets {
		b := db.name
		d.Buckets = append(d.Buckets, b)
		if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			return nil, err
		}
		for _, key := range db.objects {
			if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String(key), Body: strings.NewReader("hello from " + b + "\n")}); err != nil {
				return nil, err
			}
		}
		if info.WebURL != "" {
			if err := allowOrigin(ctx, s3c, b, info.WebURL); err != nil {
				return nil, fmt.Errorf("CORS on bucket %s: %w", b, err)
			}
		}
	}

	ddb := dynamodb.NewFromConfig(cfg)
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	items := []map[string]types.AttributeValue{
		{"pk": s("PROJECT#" + d.Project), "sk": s("BUCKET#demo-raw")},
		{"pk": s("PROJECT#" + d.Project), "sk": s("BUCKET#demo-curated"), "prefix": s("team-a")},
		{"pk": s("PROJECT#" + d.ReadOnlyProject), "sk": s("BUCKET#demo-archive")},
		{"pk": s("PROJECT#" + d.Genomics), "sk": s("BUCKET#genomics-raw"), "prefix": s("runs/2026")},
		{"pk": s("USER#" + d.UserID), "sk": s("PROJECT#" + d.Project), "role": s("write")},
		{"pk": s("USER#" + d.UserID), "sk": s("PROJECT#" + d.ReadOnlyProject), "role": s("read")},
	}
	for _, it := range items {
		if _, err := ddb.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(info.MembershipTable), Item: it}); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// allowOrigin lets a page on origin list, read and upload in a bucket (the
// rule web/README.md gives for AWS), keeping the origins already allowed:
// buckets are shared by every stack on one moto, and other stacks' pages
// have other origins. They share one rule because moto refuses a preflight
// when any rule does not match its origin; S3 would use the first match.
func allowOrigin(ctx context.Context, s3c *s3.Client, bucket, origin string) error {
	rule := s3types.CORSRule{
		AllowedMethods: []string{"GET", "PUT", "HEAD"},
		AllowedHeaders: []string{"*"},
		ExposeHeaders:  []string{"ETag"},
		MaxAgeSeconds:  aws.Int32(600),
	}
	out, err := s3c.GetBucketCors(ctx, &s3.GetBucketCorsInput{Bucket: aws.String(bucket)})
	var apiErr smithy.APIError
	switch {
	case err == nil && len(out.CORSRules) > 0:
		rule.AllowedOrigins = out.CORSRules[0].AllowedOrigins
	case err == nil, errors.As(err, &apiErr) && apiErr.ErrorCode() == "NoSuchCORSConfiguration":
	default:
		return err
	}
	if slices.Contains(rule.AllowedOrigins, origin) {
		return nil
	}
	rule.AllowedOrigins = append(rule.AllowedOrigins, origin)
	_, err = s3c.PutBucketCors(ctx, &s3.PutBucketCorsInput{Bucket: aws.String(bucket),
		CORSConfiguration: &s3types.CORSConfiguration{CORSRules: []s3types.CORSRule{rule}}})
	return err
}

// projected waits until the policy table serves the demo user every
// seeded grant. Start writes stack.json after it, so that once the file
// exists (what `make run`'s users, and tests of the documented commands,
// wait for) the examples run as written instead of meeting a 403 for the
// half second the projection takes.
func (d *Demo) projected(ctx context.Context, store *ddbstore.Store, limit time.Duration) error {
	want := map[string]int{d.Project: len(d.Places), d.ReadOnlyProject: len(d.ReadOnlyPlaces)}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		p, err := store.GetPolicy(ctx, d.UserID)
		if err == nil && maps.EqualFunc(p.ByProject, want, func(places []broker.Place, n int) bool { return len(places) == n }) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the demo user's grants were not projected within %s (last read: %v, %d projects)", limit, err, len(p.ByProject))
		case <-time.After(25 * time.Millisecond):
		}
	}
}
