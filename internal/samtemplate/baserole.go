package samtemplate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/credbroker/credbroker/internal/broker"
)

// CreateBaseRoleAPI is the part of the IAM client that CreateBaseRole uses.
type CreateBaseRoleAPI interface {
	CreatePolicy(ctx context.Context, in *iam.CreatePolicyInput, optFns ...func(*iam.Options)) (*iam.CreatePolicyOutput, error)
	CreateRole(ctx context.Context, in *iam.CreateRoleInput, optFns ...func(*iam.Options)) (*iam.CreateRoleOutput, error)
	AttachRolePolicy(ctx context.Context, in *iam.AttachRolePolicyInput, optFns ...func(*iam.Options)) (*iam.AttachRolePolicyOutput, error)
	GetPolicy(ctx context.Context, in *iam.GetPolicyInput, optFns ...func(*iam.Options)) (*iam.GetPolicyOutput, error)
	GetPolicyVersion(ctx context.Context, in *iam.GetPolicyVersionInput, optFns ...func(*iam.Options)) (*iam.GetPolicyVersionOutput, error)
	GetRole(ctx context.Context, in *iam.GetRoleInput, optFns ...func(*iam.Options)) (*iam.GetRoleOutput, error)
}

// BaseRole is the base role as CreateBaseRole created it.
type BaseRole struct {
	ARN, Name  string
	CeilingARN string // the managed policy: the role's one policy and its boundary
}

// CreateBaseRole creates BaseRole as the template defines it for the local
// stack (LocalEnv): the ceiling as the customer managed policy
// <name>-ceiling, and the role name with that policy attached and as its
// permissions boundary. The account root stands in for the credential
// function's role in the trust policy. A policy or role of that name that
// already exists as this would create it is taken as it is (the SDK retries
// a create that landed but whose answer was lost); one that differs is a
// broker.Conflict.
func (t *Template) CreateBaseRole(ctx context.Context, api CreateBaseRoleAPI, name string) (BaseRole, error) {
	const op = "samtemplate.CreateBaseRole"
	doc, err := t.BaseRolePolicy()
	if err != nil {
		return BaseRole{}, err
	}
	s, err := t.Stack(LocalEnv())
	if err != nil {
		return BaseRole{}, err
	}
	r, _, err := s.Resource("BaseRole")
	if err != nil {
		return BaseRole{}, err
	}
	in := &iam.CreateRoleInput{RoleName: aws.String(name), AssumeRolePolicyDocument: aws.String(localTrust())}
	if d, ok := r.Properties["MaxSessionDuration"].(int); ok {
		in.MaxSessionDuration = aws.Int32(int32(d))
	}
	out := BaseRole{Name: name, CeilingARN: "arn:aws:iam::" + LocalAccountID + ":policy/" + name + "-ceiling"}
	_, err = api.CreatePolicy(ctx, &iam.CreatePolicyInput{
		PolicyName: aws.String(name + "-ceiling"), PolicyDocument: aws.String(doc),
		Description: aws.String("Ceiling and permissions boundary of the credbroker base role."),
	})
	if exists(err) {
		err = samePolicy(ctx, api, out.CeilingARN, doc)
	}
	if err != nil {
		return BaseRole{}, iamError(op, "create the ceiling policy", err)
	}
	in.PermissionsBoundary = aws.String(out.CeilingARN)
	role, err := api.CreateRole(ctx, in)
	if exists(err) {
		var got *iam.GetRoleOutput
		if got, err = api.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(name)}); err == nil {
			role = &iam.CreateRoleOutput{Role: got.Role}
			err = sameRole(got.Role, in)
		}
	}
	if err != nil {
		return BaseRole{}, iamError(op, "create the role", err)
	}
	out.ARN = aws.ToString(role.Role.Arn)
	if _, err := api.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: aws.String(name), PolicyArn: aws.String(out.CeilingARN)}); err != nil {
		return BaseRole{}, iamError(op, "attach the ceiling", err)
	}
	return out, nil
}

// localTrust is the base role's trust policy in moto, where the account
// root stands in for the credential function's role.
func localTrust() string {
	b, _ := json.Marshal(map[string]any{
		"Version": "2012-10-17",
		"Statement": []map[string]any{{
			"Effect": "Allow", "Principal": map[string]string{"AWS": "arn:aws:iam::" + LocalAccountID + ":root"},
			"Action": []string{"sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"},
		}},
	})
	return string(b)
}

// errDiffers says that an existing policy or role is not the one asked for.
var errDiffers = errors.New("exists, and differs")

func exists(err error) bool {
	_, ok := errors.AsType[*types.EntityAlreadyExistsException](err)
	return ok
}

// samePolicy returns nil when the managed policy arn holds doc, errDiffers
// when it holds another document.
func samePolicy(ctx context.Context, api CreateBaseRoleAPI, arn, doc string) error {
	p, err := api.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: aws.String(arn)})
	if err != nil {
		return err
	}
	v, err := api.GetPolicyVersion(ctx, &iam.GetPolicyVersionInput{PolicyArn: aws.String(arn), VersionId: p.Policy.DefaultVersionId})
	if err != nil {
		return err
	}
	if !sameJSON(aws.ToString(v.PolicyVersion.Document), doc) {
		return fmt.Errorf("policy %s: %w", arn, errDiffers)
	}
	return nil
}

// sameRole returns nil when role is what in would create: the same trust
// policy and boundary.
func sameRole(role *types.Role, in *iam.CreateRoleInput) error {
	var boundary string
	if role.PermissionsBoundary != nil {
		boundary = aws.ToString(role.PermissionsBoundary.PermissionsBoundaryArn)
	}
	if boundary != aws.ToString(in.PermissionsBoundary) || !sameJSON(aws.ToString(role.AssumeRolePolicyDocument), aws.ToString(in.AssumeRolePolicyDocument)) {
		return fmt.Errorf("role %s: %w", aws.ToString(in.RoleName), errDiffers)
	}
	return nil
}

// sameJSON compares two policy documents, the first as IAM returns it
// (URL-encoded).
func sameJSON(stored, want string) bool {
	if d, err := url.PathUnescape(stored); err == nil {
		stored = d
	}
	var a, b any
	return json.Unmarshal([]byte(stored), &a) == nil && json.Unmarshal([]byte(want), &b) == nil && reflect.DeepEqual(a, b)
}

func iamError(op, what string, err error) error {
	if exists(err) || errors.Is(err, errDiffers) {
		return broker.Wrap(broker.Conflict, op, fmt.Errorf("%s: %w", what, err))
	}
	return broker.Wrap(broker.Transient, op, fmt.Errorf("%s: %w", what, err))
}
