package iamrole_test

import (
	"context"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/smithy-go"

	"github.com/credbroker/credbroker/internal/iamrole"
)

// fakePagesIAM is a hand-written fake of the IAM calls Role makes on
// managed pages, for what moto cannot serve: AttachRolePolicy throttled
// right after CreatePolicy succeeded.
type fakePagesIAM struct {
	iamrole.API // calls the tests do not reach panic
	mu          sync.Mutex
	docs        map[string]string // arn -> default version's document
	attached    map[string]bool
	failAttach  int // AttachRolePolicy throttles this many times
}

func (f *fakePagesIAM) CreatePolicy(_ context.Context, in *iam.CreatePolicyInput, _ ...func(*iam.Options)) (*iam.CreatePolicyOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.docs["arn:aws:iam::123456789012:policy"+aws.ToString(in.Path)+aws.ToString(in.PolicyName)] = aws.ToString(in.PolicyDocument)
	return &iam.CreatePolicyOutput{}, nil
}

func (f *fakePagesIAM) CreatePolicyVersion(_ context.Context, in *iam.CreatePolicyVersionInput, _ ...func(*iam.Options)) (*iam.CreatePolicyVersionOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	arn := aws.ToString(in.PolicyArn)
	if _, ok := f.docs[arn]; !ok {
		return nil, &types.NoSuchEntityException{Message: aws.String("no such policy")}
	}
	f.docs[arn] = aws.ToString(in.PolicyDocument)
	return &iam.CreatePolicyVersionOutput{}, nil
}

func (f *fakePagesIAM) AttachRolePolicy(_ context.Context, in *iam.AttachRolePolicyInput, _ ...func(*iam.Options)) (*iam.AttachRolePolicyOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failAttach > 0 {
		f.failAttach--
		return nil, &smithy.GenericAPIError{Code: "Throttling", Message: "Rate exceeded"}
	}
	f.attached[aws.ToString(in.PolicyArn)] = true
	return &iam.AttachRolePolicyOutput{}, nil
}

func (f *fakePagesIAM) GetPolicy(_ context.Context, in *iam.GetPolicyInput, _ ...func(*iam.Options)) (*iam.GetPolicyOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	arn := aws.ToString(in.PolicyArn)
	if _, ok := f.docs[arn]; !ok {
		return nil, &types.NoSuchEntityException{Message: aws.String("no such policy")}
	}
	n := int32(0)
	if f.attached[arn] {
		n = 1
	}
	return &iam.GetPolicyOutput{Policy: &types.Policy{DefaultVersionId: aws.String("v1"), AttachmentCount: aws.Int32(n)}}, nil
}

func (f *fakePagesIAM) GetPolicyVersion(_ context.Context, in *iam.GetPolicyVersionInput, _ ...func(*iam.Options)) (*iam.GetPolicyVersionOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &iam.GetPolicyVersionOutput{PolicyVersion: &types.PolicyVersion{Document: aws.String(f.docs[aws.ToString(in.PolicyArn)])}}, nil
}

// A run that created a page and then failed to attach it leaves a policy
// that denies nothing. The page must read as absent, so that the batch's
// retry writes it again and attaches it, rather than find it as wanted and
// skip it for good.
func TestAPageCreatedButNotAttachedIsWrittenAgain(t *testing.T) {
	ctx := context.Background()
	fake := &fakePagesIAM{docs: map[string]string{}, attached: map[string]bool{}, failAttach: 1}
	r := &iamrole.Role{Client: fake, ARN: baseARN}
	const doc = `{"Version":"2012-10-17","Statement":[{"Sid":"Revoked","Effect":"Deny","Action":"*","Resource":"*"}]}`
	if err := r.Apply(ctx, 1, doc); err == nil {
		t.Fatal("Apply: want the throttled attach to fail the write")
	}
	got, err := r.Current(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got != "" {
		t.Fatalf("Current(1) of a page not attached = %q, want \"\" (it denies nothing)", got)
	}
	if err := r.Apply(ctx, 1, doc); err != nil {
		t.Fatalf("the retry's Apply: %v", err)
	}
	arn, _ := iamrole.PageARN(baseARN, 1)
	if !fake.attached[arn] {
		t.Fatalf("after the retry page 1 is still not attached")
	}
	if got, err := r.Current(ctx, 1); err != nil || got != doc {
		t.Errorf("Current(1) after the retry = %q, %v; want the document", got, err)
	}
}
