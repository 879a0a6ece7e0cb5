// Package iamrole keeps the base role's revocation policy: one inline policy
// of the role, written and removed with PutRolePolicy and DeleteRolePolicy
// (revoke.Role). The revoker's execution role may do exactly that on the
// base role and nothing else, and the role's permissions boundary (its
// ceiling) keeps whatever the policy says from reaching beyond the ceiling
// (template.yaml, enforced by internal/stackdef).
package iamrole

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/smithy-go"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/revoke"
)

// API is the part of the IAM client the role uses.
type API interface {
	PutRolePolicy(context.Context, *iam.PutRolePolicyInput, ...func(*iam.Options)) (*iam.PutRolePolicyOutput, error)
	DeleteRolePolicy(context.Context, *iam.DeleteRolePolicyInput, ...func(*iam.Options)) (*iam.DeleteRolePolicyOutput, error)
	ListRolePolicies(context.Context, *iam.ListRolePoliciesInput, ...func(*iam.Options)) (*iam.ListRolePoliciesOutput, error)
	GetRolePolicy(context.Context, *iam.GetRolePolicyInput, ...func(*iam.Options)) (*iam.GetRolePolicyOutput, error)
}

// PolicyName is the name of the revocation policy on the base role.
const PolicyName = "credbroker-revocations"

// IAM counts every character but white space of a role's inline policies,
// 10,240 for all of them together (managed policies, the base role's
// ceiling among them, count apart); the margin leaves room for IAM's own
// counting to differ from ours.
const (
	inlineLimit = 10240
	margin      = 256
)

// Role is the base role's revocation policy.
type Role struct {
	Client API
	// Name is the base role's name (the last part of its ARN).
	Name string
	// BudgetTTL is how long the size of the role's other policies is
	// reused before it is read again (default 5 minutes).
	BudgetTTL time.Duration
	Now       func() time.Time

	mu     sync.Mutex
	budget int
	readAt time.Time
}

var _ revoke.Role = (*Role)(nil)

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

func (r *Role) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Budget implements revoke.Role: the limit less the role's other inline
// policies and a margin.
func (r *Role) Budget(ctx context.Context) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ttl := r.BudgetTTL
	if ttl == 0 {
		ttl = 5 * time.Minute
	}
	if !r.readAt.IsZero() && r.now().Sub(r.readAt) < ttl {
		return r.budget, nil
	}
	used := 0
	p := iam.NewListRolePoliciesPaginator(r.Client, &iam.ListRolePoliciesInput{RoleName: aws.String(r.Name)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return 0, classify("list role policies", err)
		}
		for _, name := range page.PolicyNames {
			if name == PolicyName {
				continue
			}
			out, err := r.Client.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(r.Name), PolicyName: aws.String(name)})
			if err != nil {
				return 0, classify("get role policy", err)
			}
			doc, err := url.PathUnescape(aws.ToString(out.PolicyDocument))
			if err != nil {
				doc = aws.ToString(out.PolicyDocument)
			}
			used += revoke.Size(doc)
		}
	}
	r.budget, r.readAt = max(inlineLimit-used-margin, 0), r.now()
	return r.budget, nil
}

// Apply implements revoke.Role.
func (r *Role) Apply(ctx context.Context, doc string) error {

	if doc == "" {
		_, err := r.Client.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: aws.String(r.Name), PolicyName: aws.String(PolicyName)})
		var missing *types.NoSuchEntityException
		if errors.As(err, &missing) {
			return nil
		}
		return classify("delete revocation policy", err)
	}
	_, err := r.Client.PutRolePolicy(ctx, &iam.PutRolePolicyInput{
		RoleName: aws.String(r.Name), PolicyName: aws.String(PolicyName), PolicyDocument: aws.String(doc),
	})
	err = classify("put revocation policy", err)
	if errors.Is(err, revoke.ErrTooLarge) {
		// The role's other policies grew: measure them again next time.
		r.mu.Lock()
		r.readAt = time.Time{}
		r.mu.Unlock()
	}
	return err
}

// Current implements revoke.Role: the role's revocation policy, "" when
// there is none.
func (r *Role) Current(ctx context.Context) (string, error) {
	out, err := r.Client.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(r.Name), PolicyName: aws.String(PolicyName)})
	var missing *types.NoSuchEntityException
	if errors.As(err, &missing) {
		return "", nil
	}
	if err != nil {
		return "", classify("get revocation policy", err)
	}
	doc, err := url.PathUnescape(aws.ToString(out.PolicyDocument))
	if err != nil {
		return aws.ToString(out.PolicyDocument), nil
	}
	return doc, nil
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
			return broker.Wrap(broker.Internal, op, fmt.Errorf("%w: %w", revoke.ErrTooLarge, err))
		}
		if apiErr.ErrorFault() == smithy.FaultServer {
			return broker.Wrap(broker.Transient, op, err)
		}
		return broker.Wrap(broker.Internal, op, err)
	}
	return broker.Wrap(broker.Transient, op, err)
}
