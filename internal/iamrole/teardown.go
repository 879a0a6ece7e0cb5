package iamrole

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/credbroker/credbroker/internal/broker"
)

// TeardownAPI is the part of the IAM client RemovePages uses. It is more
// than the revoker's (API): the revoker may not detach, so that it cannot
// lift what it wrote without writing a deny list that says so; an operator
// deleting the stack may.
type TeardownAPI interface {
	GetRole(context.Context, *iam.GetRoleInput, ...func(*iam.Options)) (*iam.GetRoleOutput, error)
	ListRolePolicies(context.Context, *iam.ListRolePoliciesInput, ...func(*iam.Options)) (*iam.ListRolePoliciesOutput, error)
	DeleteRolePolicy(context.Context, *iam.DeleteRolePolicyInput, ...func(*iam.Options)) (*iam.DeleteRolePolicyOutput, error)
	ListAttachedRolePolicies(context.Context, *iam.ListAttachedRolePoliciesInput, ...func(*iam.Options)) (*iam.ListAttachedRolePoliciesOutput, error)
	DetachRolePolicy(context.Context, *iam.DetachRolePolicyInput, ...func(*iam.Options)) (*iam.DetachRolePolicyOutput, error)
	ListPolicies(context.Context, *iam.ListPoliciesInput, ...func(*iam.Options)) (*iam.ListPoliciesOutput, error)
	ListPolicyVersions(context.Context, *iam.ListPolicyVersionsInput, ...func(*iam.Options)) (*iam.ListPolicyVersionsOutput, error)
	DeletePolicyVersion(context.Context, *iam.DeletePolicyVersionInput, ...func(*iam.Options)) (*iam.DeletePolicyVersionOutput, error)
	DeletePolicy(context.Context, *iam.DeletePolicyInput, ...func(*iam.Options)) (*iam.DeletePolicyOutput, error)
}

// Teardown is what RemovePages did on the base role, and what it left.
type Teardown struct {
	// Role is the role's name.
	Role string
	// Removed are the revoker's pages this run removed: the inline page
	// first, then the managed pages by number.
	Removed []RemovedPage
	// Left are the role's other policies, untouched.
	Left []LeftPolicy
}

// RemovedPage is one page of the deny list RemovePages removed.
type RemovedPage struct {
	// Policy is PolicyName for the inline page, the ARN of a managed one.
	Policy string
	Inline bool
	// Detached is set when the managed page was attached to the role (one
	// whose attachment was interrupted is not).
	Detached bool
	// Versions counts the versions deleted before the policy: all but the
	// default, which goes with the policy.
	Versions int
}

// LeftPolicy is a policy of the role that is not a page of the deny list.
type LeftPolicy struct {
	// Policy is the ARN of a managed policy, the name of an inline one.
	Policy string
	Inline bool
	// Boundary is set for the managed policy that is also the role's
	// permissions boundary: the ceiling, which the template attaches and
	// CloudFormation detaches itself.
	Boundary bool
}

// Blocks reports whether CloudFormation cannot delete the role while p is
// on it: it deletes a role only once every policy it did not put there is
// gone, and the template puts none but the ceiling.
func (p LeftPolicy) Blocks() bool { return !p.Boundary }

// RemovePages removes the deny list's pages from the role roleARN, so
// that CloudFormation can delete it: the inline page (PolicyName), and
// every managed policy of the account named as one of the role's pages
// under PagePath, attached or not (a creation interrupted before its
// attachment leaves one unattached), each detached, its older versions
// deleted, then the policy. It touches no other policy and lists the
// role's others in Left. What the revoker wrote, and so every revocation,
// is lifted: it is for deleting the stack only. A page another run
// removes meanwhile is not reported; a second run removes nothing.
//
// On an error the Teardown holds what was done before it.
func RemovePages(ctx context.Context, client TeardownAPI, roleARN string) (Teardown, error) {
	name, err := NameFromARN(roleARN)
	if err != nil {
		return Teardown{}, err
	}
	td := Teardown{Role: name}
	role, err := client.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(name)})
	var missing *types.NoSuchEntityException
	if errors.As(err, &missing) {
		return td, broker.Errorf(broker.Invalid, "get role", "no role %s in this account: the stack is deleted already, or the ARN is not the base role's (the BaseRoleArn output)", name)
	}
	if err != nil {
		return td, classify("get role", err)
	}
	boundary := ""
	if b := role.Role.PermissionsBoundary; b != nil {
		boundary = aws.ToString(b.PermissionsBoundaryArn)
	}

	if err := td.removeInline(ctx, client); err != nil {
		return td, err
	}
	attached := map[string]bool{}
	a := iam.NewListAttachedRolePoliciesPaginator(client, &iam.ListAttachedRolePoliciesInput{RoleName: aws.String(name)})
	for a.HasMorePages() {
		page, err := a.NextPage(ctx)
		if err != nil {
			return td, classify("list attached role policies", err)
		}
		for _, p := range page.AttachedPolicies {
			arn := aws.ToString(p.PolicyArn)
			if IsPage(roleARN, arn) {
				attached[arn] = true
			} else {
				td.Left = append(td.Left, LeftPolicy{Policy: arn, Boundary: arn == boundary})
			}
		}
	}
	pages := maps.Clone(attached)
	l := iam.NewListPoliciesPaginator(client, &iam.ListPoliciesInput{Scope: types.PolicyScopeTypeLocal, PathPrefix: aws.String(PagePath)})
	for l.HasMorePages() {
		page, err := l.NextPage(ctx)
		if err != nil {
			return td, classify("list policies under "+PagePath, err)
		}
		for _, p := range page.Policies {
			if arn := aws.ToString(p.Arn); IsPage(roleARN, arn) {
				pages[arn] = true
			}
		}
	}
	for _, arn := range sortedPages(pages) {
		removed, err := removeManaged(ctx, client, name, arn, attached[arn])
		if err != nil {
			return td, err
		}
		if removed != nil {
			td.Removed = append(td.Removed, *removed)
		}
	}
	return td, nil
}

// removeInline deletes the inline page and lists the role's other inline
// policies in Left.
func (td *Teardown) removeInline(ctx context.Context, client TeardownAPI) error {
	found := false
	p := iam.NewListRolePoliciesPaginator(client, &iam.ListRolePoliciesInput{RoleName: aws.String(td.Role)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return classify("list role policies", err)
		}
		for _, n := range page.PolicyNames {
			if n == PolicyName {
				found = true
			} else {
				td.Left = append(td.Left, LeftPolicy{Policy: n, Inline: true})
			}
		}
	}
	if !found {
		return nil
	}
	_, err := client.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: aws.String(td.Role), PolicyName: aws.String(PolicyName)})
	var missing *types.NoSuchEntityException
	switch {
	case errors.As(err, &missing):
		return nil
	case err != nil:
		return classify("delete revocation policy", err)
	}
	td.Removed = append(td.Removed, RemovedPage{Policy: PolicyName, Inline: true})
	return nil
}

// removeManaged detaches the page from the role when it is attached,
// deletes its versions but the default, then the policy (IAM refuses to
// delete a policy with other versions or attachments). nil: another run
// removed it first.
func removeManaged(ctx context.Context, client TeardownAPI, role, arn string, attached bool) (*RemovedPage, error) {
	var missing *types.NoSuchEntityException
	r := RemovedPage{Policy: arn}
	if attached {
		_, err := client.DetachRolePolicy(ctx, &iam.DetachRolePolicyInput{RoleName: aws.String(role), PolicyArn: aws.String(arn)})
		switch {
		case err == nil:
			r.Detached = true
		case !errors.As(err, &missing):
			return nil, classify("detach revocation page", err)
		}
	}
	v := iam.NewListPolicyVersionsPaginator(client, &iam.ListPolicyVersionsInput{PolicyArn: aws.String(arn)})
	for v.HasMorePages() {
		page, err := v.NextPage(ctx)
		if errors.As(err, &missing) {
			return done(r), nil
		}
		if err != nil {
			return nil, classify("list revocation page versions", err)
		}
		for _, ver := range page.Versions {
			if ver.IsDefaultVersion {
				continue
			}
			_, err := client.DeletePolicyVersion(ctx, &iam.DeletePolicyVersionInput{PolicyArn: aws.String(arn), VersionId: ver.VersionId})
			switch {
			case err == nil:
				r.Versions++
			case !errors.As(err, &missing):
				return nil, classify("delete revocation page version", err)
			}
		}
	}
	_, err := client.DeletePolicy(ctx, &iam.DeletePolicyInput{PolicyArn: aws.String(arn)})
	switch {
	case errors.As(err, &missing):
		return done(r), nil
	case err != nil:
		return nil, classify("delete revocation page", err)
	}
	return &r, nil
}

// done is r when this run changed something before the page vanished.
func done(r RemovedPage) *RemovedPage {
	if r.Detached || r.Versions > 0 {
		return &r
	}
	return nil
}

// IsPage reports whether arn is one of the managed pages of the role
// roleARN: PageARN of some page number.
func IsPage(roleARN, arn string) bool {
	role, err := NameFromARN(roleARN)
	if err != nil {
		return false
	}
	_, name, ok := strings.Cut(arn, ":policy"+PagePath)
	if !ok {
		return false
	}
	n, err := strconv.Atoi(strings.TrimPrefix(name, role+"-revocations-"))
	if err != nil || n < 1 || pageName(role, n) != name {
		return false
	}
	want, err := PageARN(roleARN, n)
	return err == nil && want == arn
}

// sortedPages orders page ARNs by page number.
func sortedPages(pages map[string]bool) []string {
	arns := slices.Collect(maps.Keys(pages))
	number := func(arn string) int {
		n, _ := strconv.Atoi(arn[strings.LastIndexByte(arn, '-')+1:])
		return n
	}
	slices.SortFunc(arns, func(a, b string) int { return number(a) - number(b) })
	return arns
}
