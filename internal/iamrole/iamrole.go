// Package iamrole keeps the base role's revocation policies (revoker.Role):
// page 0 is the role's inline policy credbroker-revocations, written and
// removed with PutRolePolicy and DeleteRolePolicy; pages 1 to n are
// customer managed policies that the revoker creates under the path
// /credbroker/, names after the role ("<role>-revocations-<i>"), attaches
// to the role, and keeps up to date as new default versions. The revoker
// owns them, not CloudFormation, so that a stack update never resets them.
// The revoker's execution role may do exactly that on those policies and
// the base role and nothing else, and the role's permissions boundary (its
// ceiling) keeps whatever they say from reaching beyond the ceiling
// (template.yaml, enforced by internal/samtemplate). RemovePages, for an
// operator deleting the stack, removes the pages from the role, which the
// revoker cannot.
package iamrole

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/smithy-go"

	"github.com/credbroker/credbroker/internal/broker"
)

// API is the part of the IAM client the role uses.
type API interface {
	PutRolePolicy(context.Context, *iam.PutRolePolicyInput, ...func(*iam.Options)) (*iam.PutRolePolicyOutput, error)
	DeleteRolePolicy(context.Context, *iam.DeleteRolePolicyInput, ...func(*iam.Options)) (*iam.DeleteRolePolicyOutput, error)
	ListRolePolicies(context.Context, *iam.ListRolePoliciesInput, ...func(*iam.Options)) (*iam.ListRolePoliciesOutput, error)
	GetRolePolicy(context.Context, *iam.GetRolePolicyInput, ...func(*iam.Options)) (*iam.GetRolePolicyOutput, error)
	ListAttachedRolePolicies(context.Context, *iam.ListAttachedRolePoliciesInput, ...func(*iam.Options)) (*iam.ListAttachedRolePoliciesOutput, error)
	AttachRolePolicy(context.Context, *iam.AttachRolePolicyInput, ...func(*iam.Options)) (*iam.AttachRolePolicyOutput, error)
	CreatePolicy(context.Context, *iam.CreatePolicyInput, ...func(*iam.Options)) (*iam.CreatePolicyOutput, error)
	GetPolicy(context.Context, *iam.GetPolicyInput, ...func(*iam.Options)) (*iam.GetPolicyOutput, error)
	GetPolicyVersion(context.Context, *iam.GetPolicyVersionInput, ...func(*iam.Options)) (*iam.GetPolicyVersionOutput, error)
	CreatePolicyVersion(context.Context, *iam.CreatePolicyVersionInput, ...func(*iam.Options)) (*iam.CreatePolicyVersionOutput, error)
	ListPolicyVersions(context.Context, *iam.ListPolicyVersionsInput, ...func(*iam.Options)) (*iam.ListPolicyVersionsOutput, error)
	DeletePolicyVersion(context.Context, *iam.DeletePolicyVersionInput, ...func(*iam.Options)) (*iam.DeletePolicyVersionOutput, error)
}

// PolicyName is the name of the revocation policy on the base role.
const PolicyName = "credbroker-revocations"

// PagePath is the path of the managed pages.
const PagePath = "/credbroker/"

// IAM counts every character but white space of a role's inline policies,
// 10,240 for all of them together, and of a managed policy, 6,144; a role
// may have 10 managed policies attached by default (a quota that can be
// raised to 20). The margins leave room for IAM's own counting to differ
// from ours.
const (
	inlineLimit   = 10240
	managedLimit  = 6144
	margin        = 256
	managedMargin = 128
	// DefaultManagedPolicies is IAM's default quota of managed policies
	// attached to a role.
	DefaultManagedPolicies = 10
)

// emptyPage is what a managed page says when it denies nothing: a managed
// policy needs a statement, and this one matches no session (user tags
// are hex digits).
const emptyPage = `{"Version":"2012-10-17","Statement":[{"Sid":"Empty","Effect":"Deny","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/credbroker:user":"none"}}}]}`

// Role is the base role's revocation policies.
type Role struct {
	Client API
	// ARN is the base role's ARN.
	ARN string
	// Pages caps the managed pages (default: as many as the quota leaves).
	Pages int
	// Quota is how many managed policies the role may have attached
	// (default DefaultManagedPolicies).
	Quota int
	// BudgetTTL is how long the size of the role's other policies is
	// reused before it is read again (default 5 minutes).
	BudgetTTL time.Duration
	Now       func() time.Time

	mu      sync.Mutex
	budgets []int
	readAt  time.Time
}

// NameFromARN returns the role name of an IAM role ARN
// (arn:aws:iam::123456789012:role/path/name).
func NameFromARN(arn string) (string, error) {
	_, rest, ok := strings.Cut(arn, ":role/")
	if !ok || rest == "" || !strings.HasPrefix(arn, "arn:") {
		return "", broker.Errorf(broker.Invalid, "role ARN", "%q is not an IAM role ARN", arn)
	}
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		rest = rest[i+1:]
	}
	return rest, nil
}

func (r *Role) name() string {
	n, _ := NameFromARN(r.ARN)
	return n
}

// PageARN is the ARN of managed page i (1 or more) of the role roleARN.
func PageARN(roleARN string, i int) (string, error) {
	parts := strings.SplitN(roleARN, ":", 6)
	name, err := NameFromARN(roleARN)
	if err != nil || len(parts) < 6 {
		return "", broker.Errorf(broker.Invalid, "role ARN", "%q is not an IAM role ARN", roleARN)
	}
	return fmt.Sprintf("arn:%s:iam::%s:policy%s%s", parts[1], parts[4], PagePath, pageName(name, i)), nil
}

func pageName(role string, i int) string { return role + "-revocations-" + strconv.Itoa(i) }

func (r *Role) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Budgets implements revoker.Role: the inline limit less the role's other
// inline policies and a margin, then a managed page's limit less a margin
// for each managed policy the quota leaves beside the role's others (its
// ceiling), up to Pages.
func (r *Role) Budgets(ctx context.Context) ([]int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ttl := cmp.Or(r.BudgetTTL, 5*time.Minute)
	if !r.readAt.IsZero() && r.now().Sub(r.readAt) < ttl {
		return slices.Clone(r.budgets), nil
	}
	name := r.name()
	used := 0
	p := iam.NewListRolePoliciesPaginator(r.Client, &iam.ListRolePoliciesInput{RoleName: aws.String(name)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, classify("list role policies", err)
		}
		for _, n := range page.PolicyNames {
			if n == PolicyName {
				continue
			}
			out, err := r.Client.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String(n)})
			if err != nil {
				return nil, classify("get role policy", err)
			}
			used += broker.PolicySize(decode(aws.ToString(out.PolicyDocument)))
		}
	}
	others := 0
	a := iam.NewListAttachedRolePoliciesPaginator(r.Client, &iam.ListAttachedRolePoliciesInput{RoleName: aws.String(name)})
	for a.HasMorePages() {
		page, err := a.NextPage(ctx)
		if err != nil {
			return nil, classify("list attached role policies", err)
		}
		for _, ap := range page.AttachedPolicies {
			if !strings.HasPrefix(aws.ToString(ap.PolicyName), name+"-revocations-") {
				others++
			}
		}
	}
	pages := max(cmp.Or(r.Quota, DefaultManagedPolicies)-others, 0)
	if r.Pages > 0 {
		pages = min(pages, r.Pages)
	}
	r.budgets = append([]int{max(inlineLimit-used-margin, 0)}, slices.Repeat([]int{managedLimit - managedMargin}, pages)...)
	r.readAt = r.now()
	return slices.Clone(r.budgets), nil
}

// Current implements revoker.Role: page i's document, "" when it denies
// nothing (or does not exist).
func (r *Role) Current(ctx context.Context, page int) (string, error) {
	if page == 0 {
		out, err := r.Client.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(r.name()), PolicyName: aws.String(PolicyName)})
		var missing *types.NoSuchEntityException
		if errors.As(err, &missing) {
			return "", nil
		}
		if err != nil {
			return "", classify("get revocation policy", err)
		}
		return decode(aws.ToString(out.PolicyDocument)), nil
	}
	arn, err := PageARN(r.ARN, page)
	if err != nil {
		return "", err
	}
	pol, err := r.Client.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: aws.String(arn)})
	var missing *types.NoSuchEntityException
	if errors.As(err, &missing) {
		return "", nil
	}
	if err != nil {
		return "", classify("get revocation page", err)
	}
	if aws.ToInt32(pol.Policy.AttachmentCount) == 0 {
		// Created but never attached (the run failed between the two
		// calls): it denies nothing, so the revoker must write it again,
		// which attaches it, even if it already says what it should.
		return "", nil
	}
	v, err := r.Client.GetPolicyVersion(ctx, &iam.GetPolicyVersionInput{PolicyArn: aws.String(arn), VersionId: pol.Policy.DefaultVersionId})
	if err != nil {
		return "", classify("get revocation page version", err)
	}
	doc := decode(aws.ToString(v.PolicyVersion.Document))
	if strings.Join(strings.Fields(doc), "") == emptyPage {
		return "", nil
	}
	return doc, nil
}

// decode returns a policy document as IAM returns it, URL-encoded, as
// text; a + stays a + (it is a path, not a query).
func decode(doc string) string {
	if d, err := url.PathUnescape(doc); err == nil {
		return d
	}
	return doc
}

// Apply implements revoker.Role.
func (r *Role) Apply(ctx context.Context, page int, doc string) error {
	if page == 0 {
		return r.applyInline(ctx, doc)
	}
	arn, err := PageARN(r.ARN, page)
	if err != nil {
		return err
	}
	content := doc
	if doc == "" {
		content = emptyPage
	}
	_, err = r.Client.CreatePolicyVersion(ctx, &iam.CreatePolicyVersionInput{PolicyArn: aws.String(arn), PolicyDocument: aws.String(content), SetAsDefault: true})
	var missing *types.NoSuchEntityException
	switch {
	case errors.As(err, &missing):
		if doc == "" {
			return nil // no page, nothing to deny
		}
		return r.create(ctx, arn, page, content)
	}
	// Five versions at most: remove the oldest that is not the default and
	// try again. Another revoker doing the same on this page may take the
	// freed place first, so a few times.
	for range maxVersionTries {
		if !versionLimit(err) {
			break
		}
		if err := r.dropOldestVersion(ctx, arn); err != nil {
			return err
		}
		_, err = r.Client.CreatePolicyVersion(ctx, &iam.CreatePolicyVersionInput{PolicyArn: aws.String(arn), PolicyDocument: aws.String(content), SetAsDefault: true})
	}
	if versionLimit(err) {
		// Not a page too large: the batch is retried, never a fallback.
		return broker.Wrap(broker.Transient, "put revocation page", err)
	}
	if err != nil {
		return r.tooLarge(classify("put revocation page", err))
	}
	// A page whose creation was interrupted before it was attached.
	return r.attach(ctx, arn)
}

func (r *Role) create(ctx context.Context, arn string, page int, doc string) error {
	_, err := r.Client.CreatePolicy(ctx, &iam.CreatePolicyInput{
		PolicyName: aws.String(pageName(r.name(), page)), Path: aws.String(PagePath), PolicyDocument: aws.String(doc),
		Description: aws.String("credbroker deny list, written by the revoker (docs/security.md \"The deny list's policies\"); do not edit"),
	})
	if isCode(err, "EntityAlreadyExists") {
		// Another revoker created it meanwhile: make this one the default.
		return r.Apply(ctx, page, doc)
	}
	if err != nil {
		return r.tooLarge(classify("create revocation page", err))
	}
	return r.attach(ctx, arn)
}

func (r *Role) attach(ctx context.Context, arn string) error {
	_, err := r.Client.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: aws.String(r.name()), PolicyArn: aws.String(arn)})
	if isCode(err, "LimitExceeded") {
		// The role holds more managed policies than reckoned: count again.
		r.mu.Lock()
		r.readAt = time.Time{}
		r.mu.Unlock()
	}
	return classify("attach revocation page", err)
}

func (r *Role) dropOldestVersion(ctx context.Context, arn string) error {
	out, err := r.Client.ListPolicyVersions(ctx, &iam.ListPolicyVersionsInput{PolicyArn: aws.String(arn)})
	if err != nil {
		return classify("list revocation page versions", err)
	}
	var oldest *types.PolicyVersion
	for i, v := range out.Versions {
		if v.IsDefaultVersion {
			continue
		}
		if oldest == nil || aws.ToTime(v.CreateDate).Before(aws.ToTime(oldest.CreateDate)) {
			oldest = &out.Versions[i]
		}
	}
	if oldest == nil {
		return nil
	}
	_, err = r.Client.DeletePolicyVersion(ctx, &iam.DeletePolicyVersionInput{PolicyArn: aws.String(arn), VersionId: oldest.VersionId})
	var missing *types.NoSuchEntityException
	if errors.As(err, &missing) {
		return nil // another revoker removed it
	}
	return classify("delete revocation page version", err)
}

func (r *Role) applyInline(ctx context.Context, doc string) error {
	name := r.name()
	if doc == "" {
		_, err := r.Client.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String(PolicyName)})
		var missing *types.NoSuchEntityException
		if errors.As(err, &missing) {
			return nil
		}
		return classify("delete revocation policy", err)
	}
	_, err := r.Client.PutRolePolicy(ctx, &iam.PutRolePolicyInput{
		RoleName: aws.String(name), PolicyName: aws.String(PolicyName), PolicyDocument: aws.String(doc),
	})
	return r.tooLarge(classify("put revocation policy", err))
}

// tooLarge makes the next Budgets measure the role again when IAM refused
// a page as too large: the role's other policies grew.
func (r *Role) tooLarge(err error) error {
	if errors.Is(err, broker.ErrRolePolicyTooLarge) {
		r.mu.Lock()
		r.readAt = time.Time{}
		r.mu.Unlock()
	}
	return err
}

// maxVersionTries bounds the versions a page's write drops to make room.
const maxVersionTries = 5

// versionLimit reports whether err is IAM's refusal of a sixth version of
// a managed policy. IAM gives a document over its size quota the same
// code, LimitExceeded, so the message tells them apart: "A managed policy
// can have up to 5 versions", against "Cannot exceed quota for
// PolicySize".
func versionLimit(err error) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == "LimitExceeded" &&
		strings.Contains(strings.ToLower(apiErr.ErrorMessage()), "version")
}

func isCode(err error, code string) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == code
}

// classify gives an IAM error its kind: throttling and server faults may
// pass; a refused document or a missing role is a bug or a misconfiguration.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "Throttling", "ThrottlingException", "ServiceFailure", "ConcurrentModification":
			return broker.Wrap(broker.Transient, op, err)
		case "LimitExceeded":
			// The role's inline policies would pass IAM's size limit: the
			// budget was reckoned wrong (another policy grew).
			return broker.Wrap(broker.Internal, op, fmt.Errorf("%w: %w", broker.ErrRolePolicyTooLarge, err))
		}
		if apiErr.ErrorFault() == smithy.FaultServer {
			return broker.Wrap(broker.Transient, op, err)
		}
		return broker.Wrap(broker.Internal, op, err)
	}
	return broker.Wrap(broker.Transient, op, err)
}
