package localstack

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// Demo is what the demo seed created.
type Demo struct {
	Username, Password, UserID string
	// Project is the user's project with write access; it owns Places.
	// ReadOnlyProject is one with read access; it owns ReadOnlyPlaces. A
	// place is "bucket/" or "bucket/folder/".
	Project, ReadOnlyProject string
	Places, ReadOnlyPlaces   []string
	// Buckets are every bucket the seed created, each with objects in it.
	Buckets []string
}

// seed creates a user; a project "demo" the user writes to, with one whole
// bucket and one folder of another; a project "archive" the user may only
// read, with one bucket (so the demo page can show a refusal); the buckets
// themselves in moto's S3 with objects; and the memberships. With a demo
// page, each bucket also gets the CORS rule the page needs on AWS (web/README.md
// "Demo page"), so that its browser requests meet the same checks here.
func seed(ctx context.Context, cfg aws.Config, info Info) (*Demo, error) {
	d := &Demo{
		Username: "demo", Password: "Demo-Passw0rd!",
		Project: "demo", Places: []string{"demo-raw/", "demo-curated/team-a/"},
		ReadOnlyProject: "archive", ReadOnlyPlaces: []string{"demo-archive/"},
	}
	idp := cip.NewFromConfig(cfg)
	if _, err := idp.AdminCreateUser(ctx, &cip.AdminCreateUserInput{UserPoolId: aws.String(info.UserPoolID), Username: aws.String(d.Username), MessageAction: "SUPPRESS"}); err != nil {
		return nil, err
	}
	if _, err := idp.AdminSetUserPassword(ctx, &cip.AdminSetUserPasswordInput{UserPoolId: aws.String(info.UserPoolID), Username: aws.String(d.Username), Password: aws.String(d.Password), Permanent: true}); err != nil {
		return nil, err
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
	objects := map[string][]string{
		"demo-raw":     {"team-a/hello.txt", "team-b/secret.txt"},
		"demo-curated": {"team-a/hello.txt", "team-b/secret.txt"},
		"demo-archive": {"2025/summary.txt"},
	}
	d.Buckets = []string{"demo-raw", "demo-curated", "demo-archive"}
	for _, b := range d.Buckets {
		if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			return nil, err
		}
		for _, key := range objects[b] {
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
