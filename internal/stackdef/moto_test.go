package stackdef_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/mototest"
	"github.com/credbroker/credbroker/internal/stackdef"
)

func ExampleTableDef_Create() {
	ctx := context.Background()
	tpl, err := stackdef.LoadDefault()
	if err != nil {
		fmt.Println(err)
		return
	}
	def, err := tpl.Table("MembershipTable")
	if err != nil {
		fmt.Println(err)
		return
	}
	client := dynamodb.NewFromConfig(mototest.ConfigFor("http://127.0.0.1:4566"))
	table, err := def.Create(ctx, client, "credbroker-membership")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("projector reads", aws.ToString(table.LatestStreamArn))
}

func TestTablesCreatedFromTheTemplateMatchItInMoto(t *testing.T) {
	tpl := mustLoad(t)
	client := dynamodb.NewFromConfig(mototest.Config(t))
	for _, id := range []string{"MembershipTable", "PolicyTable"} {
		t.Run(id, func(t *testing.T) {
			ctx := t.Context()
			def, err := tpl.Table(id)
			if err != nil {
				t.Fatal(err)
			}
			name := mototest.Name(t, strings.ToLower(id))
			created, err := def.Create(ctx, client, name)
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			t.Cleanup(func() {
				_, _ = client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
			})

			out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
			if err != nil {
				t.Fatal(err)
			}
			got := describe(out.Table)
			want := tableShape{Keys: keys(def.KeySchema), Attrs: attrs(def.AttributeDefinitions), Billing: string(def.BillingMode), Stream: string(def.StreamViewType)}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("moto's table differs from the template (-template +moto):\n%s", diff)
			}
			if (def.StreamViewType != "") != (aws.ToString(created.LatestStreamArn) != "") {
				t.Errorf("Create returned stream ARN %q for stream view type %q", aws.ToString(created.LatestStreamArn), def.StreamViewType)
			}

			ttl, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(name)})
			if err != nil {
				t.Fatal(err)
			}
			gotTTL := ""
			if d := ttl.TimeToLiveDescription; d != nil && (d.TimeToLiveStatus == types.TimeToLiveStatusEnabled || d.TimeToLiveStatus == types.TimeToLiveStatusEnabling) {
				gotTTL = aws.ToString(d.AttributeName)
			}
			if gotTTL != def.TTLAttribute {
				t.Errorf("TTL attribute in moto = %q, template = %q", gotTTL, def.TTLAttribute)
			}
		})
	}
}

func TestCreatingAnExistingTableIsAConflict(t *testing.T) {
	ctx := t.Context()
	def, err := mustLoad(t).Table("PolicyTable")
	if err != nil {
		t.Fatal(err)
	}
	client := dynamodb.NewFromConfig(mototest.Config(t))
	name := mototest.Name(t, "policy")
	if _, err := def.Create(ctx, client, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
	})
	_, err = def.Create(ctx, client, name)
	if k := broker.KindOf(err); k != broker.Conflict {
		t.Errorf("second Create error = %v (kind %v), want conflict", err, k)
	}
}

func TestBaseRolePolicyIsAcceptedByIAM(t *testing.T) {
	ctx := t.Context()
	doc, err := mustLoad(t).BaseRolePolicy()
	if err != nil {
		t.Fatal(err)
	}
	client := iam.NewFromConfig(mototest.Config(t))
	role := mototest.Name(t, "base")
	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}`
	if _, err := client.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String(role), AssumeRolePolicyDocument: aws.String(trust)}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(role), PolicyName: aws.String("s3-ceiling"), PolicyDocument: aws.String(doc)}); err != nil {
		t.Fatalf("PutRolePolicy rejected the base role policy: %v\n%s", err, doc)
	}
	got, err := client.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(role), PolicyName: aws.String("s3-ceiling")})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := url.QueryUnescape(aws.ToString(got.PolicyDocument))
	if err != nil {
		t.Fatal(err)
	}
	var want, have any
	if err := errors.Join(json.Unmarshal([]byte(doc), &want), json.Unmarshal([]byte(stored), &have)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, have); diff != "" {
		t.Errorf("IAM stored a different policy (-sent +stored):\n%s", diff)
	}
}

type tableShape struct {
	Keys, Attrs     []string
	Billing, Stream string
}

func describe(d *types.TableDescription) tableShape {
	s := tableShape{Keys: keys(d.KeySchema), Attrs: attrs(d.AttributeDefinitions)}
	if d.BillingModeSummary != nil {
		s.Billing = string(d.BillingModeSummary.BillingMode)
	}
	if d.StreamSpecification != nil && aws.ToBool(d.StreamSpecification.StreamEnabled) {
		s.Stream = string(d.StreamSpecification.StreamViewType)
	}
	return s
}

func keys(ks []types.KeySchemaElement) []string {
	var out []string
	for _, k := range ks {
		out = append(out, aws.ToString(k.AttributeName)+" "+string(k.KeyType))
	}
	return out
}

func attrs(as []types.AttributeDefinition) []string {
	var out []string
	for _, a := range as {
		out = append(out, aws.ToString(a.AttributeName)+" "+string(a.AttributeType))
	}
	slices.Sort(out)
	return out
}
