package iamrole_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/smithy-go"

	"github.com/credbroker/credbroker/internal/broker"
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
	// createVersion, when set, answers CreatePolicyVersion instead.
	createVersion func() error
	dropped       int // DeletePolicyVersion calls
}

func (f *fakePagesIAM) ListPolicyVersions(context.Context, *iam.ListPolicyVersionsInput, ...func(*iam.Options)) (*iam.ListPolicyVersionsOutput, error) {
	return &iam.ListPolicyVersionsOutput{Versions: []types.PolicyVersion{{VersionId: aws.String("v1"), IsDefaultVersion: true}, {VersionId: aws.String("v2")}}}, nil
}

func (f *fakePagesIAM) DeletePolicyVersion(context.Context, *iam.DeletePolicyVersionInput, ...func(*iam.Options)) (*iam.DeletePolicyVersionOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dropped++
	return &iam.DeletePolicyVersionOutput{}, nil
}

func (f *fakePagesIAM) CreatePolicy(_ context.Context, in *iam.CreatePolicyInput, _ ...func(*iam.Options)) (*iam.CreatePolicyOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.docs["arn:aws:iam::123456789012:policy"+aws.ToString(in.Path)+aws.ToString(in.PolicyName)] = aws.ToString(in.PolicyDocument)
	return &iam.CreatePolicyOutput{}, nil
}

func (f *fakePagesIAM) CreatePolicyVersion(_ context.Context, in *iam.CreatePolicyVersionInput, _ ...func(*iam.Options)) (*iam.CreatePolicyVersionOutput, error) {
	if f.createVersion != nil {
		if err := f.createVersion(); err != nil {
			return nil, err
		}
	}
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

// A page at IAM's five versions makes room by dropping the oldest. Two
// revokers writing the page at once may each find the place freed taken by
// the other: that is retried, and never taken for a page too large (which
// would make the revoker deny every session before a time).
func TestAPageAtItsVersionLimitMakesRoomEvenWhenAnotherRunTakesIt(t *testing.T) {
	ctx := context.Background()
	const doc = `{"Version":"2012-10-17","Statement":[{"Sid":"Revoked","Effect":"Deny","Action":"*","Resource":"*"}]}`
	versionLimit := &smithy.GenericAPIError{Code: "LimitExceeded", Message: "A managed policy can have up to 5 versions. Before you create a new version, you must delete an existing version."}
	sizeLimit := &smithy.GenericAPIError{Code: "LimitExceeded", Message: "Cannot exceed quota for PolicySize: 6144"}
	arn, _ := iamrole.PageARN(baseARN, 1)
	for _, tc := range []struct {
		name      string
		refusals  []error // CreatePolicyVersion's answers before it succeeds
		wantErr   bool
		tooLarge  bool
		wantDrops int
	}{
		{"a sixth version drops the oldest", []error{versionLimit}, false, false, 1},
		{"a place taken by another run is made again", []error{versionLimit, versionLimit, versionLimit}, false, false, 3},
		{"a place taken every time is a transient failure, not a page too large", slices.Repeat([]error{versionLimit}, 10), true, false, 5},
		{"a page over the size quota is too large", []error{sizeLimit}, true, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refusals := slices.Clone(tc.refusals)
			fake := &fakePagesIAM{docs: map[string]string{arn: "{}"}, attached: map[string]bool{arn: true}, createVersion: func() error {
				if len(refusals) == 0 {
					return nil
				}
				err := refusals[0]
				refusals = refusals[1:]
				return err
			}}
			err := (&iamrole.Role{Client: fake, ARN: baseARN}).Apply(ctx, 1, doc)
			if (err != nil) != tc.wantErr || errors.Is(err, broker.ErrRolePolicyTooLarge) != tc.tooLarge {
				t.Fatalf("Apply: %v; want an error %v, too large %v", err, tc.wantErr, tc.tooLarge)
			}
			if tc.wantErr && !tc.tooLarge && !broker.IsTransient(err) {
				t.Errorf("Apply: %v is not transient: the batch would not be retried", err)
			}
			if fake.dropped != tc.wantDrops {
				t.Errorf("%d versions dropped, want %d", fake.dropped, tc.wantDrops)
			}
			if !tc.wantErr && fake.docs[arn] != doc {
				t.Errorf("page 1 = %q, want the document", fake.docs[arn])
			}
		})
	}
}
