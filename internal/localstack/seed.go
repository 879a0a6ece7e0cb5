package localstack

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Demo is what the demo seed created.
type Demo struct {
	Username, Password, UserID, Project string
	Buckets                             []string
}

// seed creates a user, a project with one whole bucket and one folder, the
// buckets themselves in moto's S3 with an object each, and the membership.
func seed(ctx context.Context, cfg aws.Config, info Info) (*Demo, error) {
	d := &Demo{Username: "demo", Password: "Demo-Passw0rd!", Project: "demo", Buckets: []string{"demo-raw", "demo-curated"}}
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
	for _, b := range d.Buckets {
		if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			return nil, err
		}
		for _, key := range []string{"team-a/hello.txt", "team-b/secret.txt"} {
			if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String(key), Body: strings.NewReader("hello from " + b + "\n")}); err != nil {
				return nil, err
			}
		}
	}

	ddb := dynamodb.NewFromConfig(cfg)
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	items := []map[string]types.AttributeValue{
		{"pk": s("PROJECT#" + d.Project), "sk": s("BUCKET#demo-raw")},
		{"pk": s("PROJECT#" + d.Project), "sk": s("BUCKET#demo-curated"), "prefix": s("team-a")},
		{"pk": s("USER#" + d.UserID), "sk": s("PROJECT#" + d.Project), "role": s("write")},
	}
	for _, it := range items {
		if _, err := ddb.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(info.MembershipTable), Item: it}); err != nil {
			return nil, err
		}
	}
	return d, nil
}
