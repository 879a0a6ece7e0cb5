package iamrole_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/iamrole"
)

const baseARN = "arn:aws:iam::123456789012:role/stack-BaseRole-X1"

func TestIsPageMatchesOnlyTheRolesOwnPages(t *testing.T) {
	for _, tc := range []struct {
		name string
		arn  string
		want bool
	}{
		{"page 1 is a page", "arn:aws:iam::123456789012:policy/credbroker/stack-BaseRole-X1-revocations-1", true},
		{"page 12 is a page", "arn:aws:iam::123456789012:policy/credbroker/stack-BaseRole-X1-revocations-12", true},
		{"page 0 is not (the inline page is no managed policy)", "arn:aws:iam::123456789012:policy/credbroker/stack-BaseRole-X1-revocations-0", false},
		{"a leading zero is not", "arn:aws:iam::123456789012:policy/credbroker/stack-BaseRole-X1-revocations-01", false},
		{"a signed number is not", "arn:aws:iam::123456789012:policy/credbroker/stack-BaseRole-X1-revocations-+1", false},
		{"another path is not", "arn:aws:iam::123456789012:policy/stack-BaseRole-X1-revocations-1", false},
		{"a deeper path is not", "arn:aws:iam::123456789012:policy/credbroker/x/stack-BaseRole-X1-revocations-1", false},
		{"another role's page is not", "arn:aws:iam::123456789012:policy/credbroker/other-BaseRole-revocations-1", false},
		{"a role whose name extends this one's is not", "arn:aws:iam::123456789012:policy/credbroker/stack-BaseRole-X1-revocations-1-revocations-2", false},
		{"another account's page is not", "arn:aws:iam::210987654321:policy/credbroker/stack-BaseRole-X1-revocations-1", false},
		{"the ceiling is not", "arn:aws:iam::123456789012:policy/stack-BaseRoleCeiling-Y2", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := iamrole.IsPage(baseARN, tc.arn); got != tc.want {
				t.Errorf("IsPage(%s) = %v, want %v", tc.arn, got, tc.want)
			}
		})
	}
}

// fakeTeardownIAM is a hand-written fake of the IAM calls RemovePages
// makes, for what moto cannot serve: another run removing a page between
// the listing and the deletion, and throttling. An unset field answers
// with an empty output.
type fakeTeardownIAM struct {
	attached      []types.AttachedPolicy
	inline        []string
	detach        func(arn string) error
	deleteVersion func(arn string) error
	deletePolicy  func(arn string) error
	listAttached  func() error
}

func (f *fakeTeardownIAM) GetRole(context.Context, *iam.GetRoleInput, ...func(*iam.Options)) (*iam.GetRoleOutput, error) {
	return &iam.GetRoleOutput{Role: &types.Role{}}, nil
}

func (f *fakeTeardownIAM) ListRolePolicies(context.Context, *iam.ListRolePoliciesInput, ...func(*iam.Options)) (*iam.ListRolePoliciesOutput, error) {
	return &iam.ListRolePoliciesOutput{PolicyNames: f.inline}, nil
}

func (f *fakeTeardownIAM) DeleteRolePolicy(context.Context, *iam.DeleteRolePolicyInput, ...func(*iam.Options)) (*iam.DeleteRolePolicyOutput, error) {
	return &iam.DeleteRolePolicyOutput{}, nil
}

func (f *fakeTeardownIAM) ListAttachedRolePolicies(context.Context, *iam.ListAttachedRolePoliciesInput, ...func(*iam.Options)) (*iam.ListAttachedRolePoliciesOutput, error) {
	if f.listAttached != nil {
		if err := f.listAttached(); err != nil {
			return nil, err
		}
	}
	return &iam.ListAttachedRolePoliciesOutput{AttachedPolicies: f.attached}, nil
}

func (f *fakeTeardownIAM) DetachRolePolicy(_ context.Context, in *iam.DetachRolePolicyInput, _ ...func(*iam.Options)) (*iam.DetachRolePolicyOutput, error) {
	if f.detach != nil {
		return &iam.DetachRolePolicyOutput{}, f.detach(aws.ToString(in.PolicyArn))
	}
	return &iam.DetachRolePolicyOutput{}, nil
}

func (f *fakeTeardownIAM) ListPolicies(context.Context, *iam.ListPoliciesInput, ...func(*iam.Options)) (*iam.ListPoliciesOutput, error) {
	return &iam.ListPoliciesOutput{}, nil
}

func (f *fakeTeardownIAM) ListPolicyVersions(context.Context, *iam.ListPolicyVersionsInput, ...func(*iam.Options)) (*iam.ListPolicyVersionsOutput, error) {
	return &iam.ListPolicyVersionsOutput{Versions: []types.PolicyVersion{
		{VersionId: aws.String("v2"), IsDefaultVersion: true}, {VersionId: aws.String("v1")},
	}}, nil
}

func (f *fakeTeardownIAM) DeletePolicyVersion(_ context.Context, in *iam.DeletePolicyVersionInput, _ ...func(*iam.Options)) (*iam.DeletePolicyVersionOutput, error) {
	if f.deleteVersion != nil {
		return &iam.DeletePolicyVersionOutput{}, f.deleteVersion(aws.ToString(in.PolicyArn))
	}
	return &iam.DeletePolicyVersionOutput{}, nil
}

func (f *fakeTeardownIAM) DeletePolicy(_ context.Context, in *iam.DeletePolicyInput, _ ...func(*iam.Options)) (*iam.DeletePolicyOutput, error) {
	if f.deletePolicy != nil {
		return &iam.DeletePolicyOutput{}, f.deletePolicy(aws.ToString(in.PolicyArn))
	}
	return &iam.DeletePolicyOutput{}, nil
}

func TestRemovePagesWhenIAMMisbehaves(t *testing.T) {
	page := func(i int) string {
		arn, err := iamrole.PageARN(baseARN, i)
		if err != nil {
			t.Fatal(err)
		}
		return arn
	}
	gone := func(string) error { return &types.NoSuchEntityException{Message: aws.String("gone")} }
	throttled := &smithy.GenericAPIError{Code: "Throttling", Message: "Rate exceeded"}
	attached := []types.AttachedPolicy{{PolicyArn: aws.String(page(1))}, {PolicyArn: aws.String(page(2))}}
	for _, tc := range []struct {
		name        string
		fake        *fakeTeardownIAM
		wantRemoved []iamrole.RemovedPage
		wantKind    broker.Kind // Other: no error
	}{
		{
			name: "a page another run removed before this one is not reported, the run succeeds",
			fake: &fakeTeardownIAM{attached: attached, detach: gone, deleteVersion: gone, deletePolicy: func(arn string) error {
				if arn == page(1) {
					return gone(arn)
				}
				return nil
			}},
			wantRemoved: []iamrole.RemovedPage{{Policy: page(2), Versions: 0}},
		},
		{
			name:        "a page another run deleted after this one detached it is reported as detached",
			fake:        &fakeTeardownIAM{attached: attached[:1], deletePolicy: gone},
			wantRemoved: []iamrole.RemovedPage{{Policy: page(1), Detached: true, Versions: 1}},
		},
		{
			name:     "a throttled listing is transient, nothing removed",
			fake:     &fakeTeardownIAM{attached: attached, listAttached: func() error { return throttled }},
			wantKind: broker.Transient,
		},
		{
			name: "a refused deletion stops the run after what it did",
			fake: &fakeTeardownIAM{attached: attached, deletePolicy: func(arn string) error {
				if arn == page(2) {
					return &smithy.GenericAPIError{Code: "AccessDenied", Message: "not authorized to perform: iam:DeletePolicy"}
				}
				return nil
			}},
			wantRemoved: []iamrole.RemovedPage{{Policy: page(1), Detached: true, Versions: 1}},
			wantKind:    broker.Internal,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			td, err := iamrole.RemovePages(context.Background(), tc.fake, baseARN)
			switch {
			case tc.wantKind == broker.Other && err != nil:
				t.Fatalf("error %v, want none", err)
			case tc.wantKind != broker.Other && (err == nil || broker.KindOf(err) != tc.wantKind):
				t.Fatalf("error %v of kind %v, want kind %v", err, broker.KindOf(err), tc.wantKind)
			}
			if diff := cmp.Diff(tc.wantRemoved, td.Removed); diff != "" {
				t.Errorf("removed (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := iamrole.RemovePages(context.Background(), &fakeTeardownIAM{}, "stack-BaseRole"); err == nil || broker.KindOf(err) != broker.Invalid {
		t.Errorf("a role name that is no ARN: %v, want an Invalid error", err)
	}
}
