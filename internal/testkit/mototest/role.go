package mototest

import (
	"context"
	"maps"
	"net/url"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/credbroker/credbroker/internal/testkit/iameval"
)

// RolePolicies are a role's policy documents as moto's IAM holds them now.
type RolePolicies struct {
	BoundaryARN, Boundary string // "" when the role has no boundary
	// Managed are the attached managed policies' default versions, by ARN.
	Managed map[string]string
	// Inline are the inline policies, by name.
	Inline map[string]string
}

// Role reads a role's boundary, attached and inline policies from moto.
func Role(tb testing.TB, name string) RolePolicies {
	tb.Helper()
	ctx := context.Background()
	c := iam.NewFromConfig(Config(tb))
	role, err := c.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(name)})
	if err != nil {
		tb.Fatalf("get role %s: %v", name, err)
	}
	out := RolePolicies{Managed: map[string]string{}, Inline: map[string]string{}}
	if b := role.Role.PermissionsBoundary; b != nil {
		out.BoundaryARN = aws.ToString(b.PermissionsBoundaryArn)
		out.Boundary = managedDocument(tb, c, out.BoundaryARN)
	}
	attached := iam.NewListAttachedRolePoliciesPaginator(c, &iam.ListAttachedRolePoliciesInput{RoleName: aws.String(name)})
	for attached.HasMorePages() {
		page, err := attached.NextPage(ctx)
		if err != nil {
			tb.Fatalf("list attached policies of %s: %v", name, err)
		}
		for _, p := range page.AttachedPolicies {
			arn := aws.ToString(p.PolicyArn)
			out.Managed[arn] = managedDocument(tb, c, arn)
		}
	}
	inline := iam.NewListRolePoliciesPaginator(c, &iam.ListRolePoliciesInput{RoleName: aws.String(name)})
	for inline.HasMorePages() {
		page, err := inline.NextPage(ctx)
		if err != nil {
			tb.Fatalf("list inline policies of %s: %v", name, err)
		}
		for _, p := range page.PolicyNames {
			got, err := c.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String(p)})
			if err != nil {
				tb.Fatalf("get inline policy %s of %s: %v", p, name, err)
			}
			out.Inline[p] = decode(aws.ToString(got.PolicyDocument))
		}
	}
	return out
}

// Eval returns the role for iameval: its boundary and every policy, managed
// and inline.
func (r RolePolicies) Eval(tb testing.TB) iameval.Role {
	tb.Helper()
	var docs []string
	for _, m := range []map[string]string{r.Managed, r.Inline} {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			docs = append(docs, m[k])
		}
	}
	role, err := iameval.ParseRole(r.Boundary, docs...)
	if err != nil {
		tb.Fatalf("the role's policies: %v", err)
	}
	return role
}

func managedDocument(tb testing.TB, c *iam.Client, arn string) string {
	tb.Helper()
	ctx := context.Background()
	p, err := c.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: aws.String(arn)})
	if err != nil {
		tb.Fatalf("get policy %s: %v", arn, err)
	}
	v, err := c.GetPolicyVersion(ctx, &iam.GetPolicyVersionInput{PolicyArn: aws.String(arn), VersionId: p.Policy.DefaultVersionId})
	if err != nil {
		tb.Fatalf("get the default version of %s: %v", arn, err)
	}
	return decode(aws.ToString(v.PolicyVersion.Document))
}

// decode undoes IAM's URL encoding of policy documents (as a path: a + in
// a document stays a +).
func decode(doc string) string {
	if d, err := url.PathUnescape(doc); err == nil {
		return d
	}
	return doc
}
