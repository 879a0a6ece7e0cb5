package rolesession

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/credbroker/credbroker/internal/testkit/iameval"
)

// RolePolicies are a role's policy documents as (moto's) IAM holds them.
type RolePolicies struct {
	BoundaryARN, Boundary string // "" when the role has no boundary
	// Managed are the attached managed policies' default versions, by ARN.
	Managed map[string]string
	// Inline are the inline policies, by name.
	Inline map[string]string
}

// ReadRole reads a role's boundary, attached and inline policies: on the
// local stack, the base role's ceiling, boundary and revocation pages as
// the revoker last wrote them.
func ReadRole(ctx context.Context, c *iam.Client, name string) (RolePolicies, error) {
	role, err := c.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(name)})
	if err != nil {
		return RolePolicies{}, fmt.Errorf("get role %s: %w", name, err)
	}
	out := RolePolicies{Managed: map[string]string{}, Inline: map[string]string{}}
	if b := role.Role.PermissionsBoundary; b != nil {
		out.BoundaryARN = aws.ToString(b.PermissionsBoundaryArn)
		if out.Boundary, err = managedDocument(ctx, c, out.BoundaryARN); err != nil {
			return RolePolicies{}, err
		}
	}
	attached := iam.NewListAttachedRolePoliciesPaginator(c, &iam.ListAttachedRolePoliciesInput{RoleName: aws.String(name)})
	for attached.HasMorePages() {
		page, err := attached.NextPage(ctx)
		if err != nil {
			return RolePolicies{}, fmt.Errorf("list attached policies of %s: %w", name, err)
		}
		for _, p := range page.AttachedPolicies {
			arn := aws.ToString(p.PolicyArn)
			if out.Managed[arn], err = managedDocument(ctx, c, arn); err != nil {
				return RolePolicies{}, err
			}
		}
	}
	inline := iam.NewListRolePoliciesPaginator(c, &iam.ListRolePoliciesInput{RoleName: aws.String(name)})
	for inline.HasMorePages() {
		page, err := inline.NextPage(ctx)
		if err != nil {
			return RolePolicies{}, fmt.Errorf("list inline policies of %s: %w", name, err)
		}
		for _, p := range page.PolicyNames {
			got, err := c.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String(p)})
			if err != nil {
				return RolePolicies{}, fmt.Errorf("get inline policy %s of %s: %w", p, name, err)
			}
			out.Inline[p] = decode(aws.ToString(got.PolicyDocument))
		}
	}
	return out, nil
}

// Role returns the role for iameval: its boundary and every policy,
// managed and inline.
func (r RolePolicies) Role() (iameval.Role, error) {
	var docs []string
	for _, m := range []map[string]string{r.Managed, r.Inline} {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			docs = append(docs, m[k])
		}
	}
	role, err := iameval.ParseRole(r.Boundary, docs...)
	if err != nil {
		return iameval.Role{}, fmt.Errorf("the role's policies: %w", err)
	}
	return role, nil
}

func managedDocument(ctx context.Context, c *iam.Client, arn string) (string, error) {
	p, err := c.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: aws.String(arn)})
	if err != nil {
		return "", fmt.Errorf("get policy %s: %w", arn, err)
	}
	v, err := c.GetPolicyVersion(ctx, &iam.GetPolicyVersionInput{PolicyArn: aws.String(arn), VersionId: p.Policy.DefaultVersionId})
	if err != nil {
		return "", fmt.Errorf("get the default version of %s: %w", arn, err)
	}
	return decode(aws.ToString(v.PolicyVersion.Document)), nil
}

// decode undoes IAM's URL encoding of policy documents (as a path: a + in
// a document stays a +).
func decode(doc string) string {
	if d, err := url.PathUnescape(doc); err == nil {
		return d
	}
	return doc
}
