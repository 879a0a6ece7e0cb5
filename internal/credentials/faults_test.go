//go:build integration

package credentials_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/credentials"
	"github.com/credbroker/credbroker/internal/ddbstore"
	"github.com/credbroker/credbroker/internal/policy"
	"github.com/credbroker/credbroker/internal/stsissuer"
)

// faultyGetItem is the real DynamoDB client with GetItem replaced, for the
// faults moto cannot inject.
type faultyGetItem struct {
	ddbstore.API
	getItem func(ctx context.Context) error
}

func (f faultyGetItem) GetItem(ctx context.Context, _ *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return nil, f.getItem(ctx)
}

// throttlingSTS is a hand-written AssumeRoleAPI whose assume decides each
// call (numbered from 0): an error, or nil to pass the call to next.
type throttlingSTS struct {
	next   stsissuer.AssumeRoleAPI
	assume func(ctx context.Context, call int) error
	calls  atomic.Int64
}

func (f *throttlingSTS) AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, opts ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	call := int(f.calls.Add(1) - 1)
	if err := f.assume(ctx, call); err != nil {
		return nil, err
	}
	return f.next.AssumeRole(ctx, in, opts...)
}

// untilDone blocks like a dependency that never answers, until the
// request's deadline.
func TestDependencyFaultsAnswer503WithoutCredentials(t *testing.T) {
	e := newEnv(t)
	pool := newLocalPool(t)
	const user = "2b3c4d5e-6f70-4a8b-9cad-1e2f3a4b5c6d"
	e.seed(t, user, map[string][]broker.Place{"genomics": places("genomics-raw:write", "genomics-ref")})
	bearer := "Bearer " + pool.token(t, user)

	getItemFaults := []struct {
		name string
		err  func(ctx context.Context) error
	}{
		{"throttled GetItem", func(context.Context) error {
			return &ddbtypes.ProvisionedThroughputExceededException{Message: aws.String("slow down")}
		}},
		{"GetItem internal server error", func(context.Context) error { return &ddbtypes.InternalServerError{Message: aws.String("oops")} }},
		{"GetItem validation error", func(context.Context) error { return apiErr("ValidationException") }},
		{"GetItem missing table", func(context.Context) error {
			return &ddbtypes.ResourceNotFoundException{Message: aws.String("no table")}
		}},
		{"GetItem that never answers", untilDone},
	}
	for _, tt := range getItemFaults {
		t.Run(tt.name+" is 503", func(t *testing.T) {
			e.resetCounts()
			store := &ddbstore.Store{Client: faultyGetItem{API: e.tier.ddb.Client, getItem: tt.err}, PolicyTable: e.tier.ddb.PolicyTable}
			svc := e.service(pool.verifier, func(s *credentials.Service) {
				s.Policies = store
				s.RequestTimeout = faultDeadline
			})
			r := get(t, svc, "/auths/resources", bearer)
			wantUnavailable(t, r)
			if n := e.issue.Load(); n != 0 {
				t.Errorf("%d AssumeRole calls after a failed read", n)
			}
			// Throttling passes; a missing table or a refused request does not.
			want := "2"
			if strings.Contains(tt.name, "validation") || strings.Contains(tt.name, "missing table") {
				want = "30"
			}
			if got := r.header.Get("Retry-After"); got != want {
				t.Errorf("Retry-After %q, want %s", got, want)
			}
		})
	}

	stsFaults := []struct {
		name   string
		assume func(ctx context.Context, call int) error
	}{
		{"throttled AssumeRole", func(context.Context, int) error { return apiErr("Throttling") }},
		{"AssumeRole 5xx", func(context.Context, int) error {
			return &smithy.GenericAPIError{Code: "InternalFailure", Fault: smithy.FaultServer}
		}},
		// Refused once packed even after the split (see below): 503.
		{"AssumeRole refusing a too large policy", func(context.Context, int) error {
			return &ststypes.PackedPolicyTooLargeException{Message: aws.String("102% of the limit")}
		}},
		{"AssumeRole access denied", func(context.Context, int) error { return apiErr("AccessDenied") }},
		{"AssumeRole that never answers", func(ctx context.Context, _ int) error { return untilDone(ctx) }},
	}
	for _, tt := range stsFaults {
		t.Run(tt.name+" is 503", func(t *testing.T) {
			faulty := &throttlingSTS{next: e.tier.sts, assume: tt.assume}
			issuer, err := stsissuer.New(stsissuer.Config{Client: faulty, RoleARN: e.tier.roleARN})
			if err != nil {
				t.Fatal(err)
			}
			svc := e.service(pool.verifier, func(s *credentials.Service) {
				s.Issuer = issuer
				s.RequestTimeout = faultDeadline
			})
			wantUnavailable(t, get(t, svc, "/auths/resources", bearer))
			want := int64(1)
			if strings.Contains(tt.name, "too large") {
				want = 2 // the set, then its split
			}
			if n := faulty.calls.Load(); n != want {
				t.Errorf("%d AssumeRole calls, want %d", n, want)
			}
		})
	}

	t.Run("corrupt policy item is 503", func(t *testing.T) {
		const corrupt = "3c4d5e6f-7081-4b9c-8dbe-2f3a4b5c6d7e"
		_, err := e.tier.ddb.Client.PutItem(t.Context(), &dynamodb.PutItemInput{
			TableName: aws.String(e.tier.ddb.PolicyTable),
			Item: map[string]ddbtypes.AttributeValue{
				"pk": &ddbtypes.AttributeValueMemberS{Value: "USER#" + corrupt}, "sk": &ddbtypes.AttributeValueMemberS{Value: "POLICY"},
				"version": &ddbtypes.AttributeValueMemberS{Value: "v1.x"}, "doc": &ddbtypes.AttributeValueMemberS{Value: "{not json"},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		e.resetCounts()
		r := get(t, e.service(pool.verifier), "/auths/resources", "Bearer "+pool.token(t, corrupt))
		wantUnavailable(t, r)
		if got := r.header.Get("Retry-After"); got != "30" {
			t.Errorf("Retry-After %q for a corrupt item, want 30: retrying soon cannot repair it", got)
		}
		if n := e.issue.Load(); n != 0 {
			t.Errorf("%d AssumeRole calls for a corrupt item", n)
		}
	})
}

func TestOneFailedSetFailsTheWholeAnswer(t *testing.T) {
	e := newEnv(t)
	pool := newLocalPool(t)
	const user = "4d5e6f70-8192-4cad-9ecf-3a4b5c6d7e8f"
	byProject := map[string][]broker.Place{}
	for i := range 60 {
		byProject["p"] = append(byProject["p"], places(fmt.Sprintf("research-data-bucket-%03d/team/:write", i))...)
	}
	item := e.seed(t, user, byProject)
	if len(item.Sets) < 2 {
		t.Fatalf("precondition: %d sets, want at least 2", len(item.Sets))
	}
	// Every call but the first fails, whatever order the sets go in.
	faulty := &throttlingSTS{next: e.tier.sts, assume: func(_ context.Context, call int) error {
		if call == 0 {
			return nil
		}
		return apiErr("Throttling")
	}}
	issuer, err := stsissuer.New(stsissuer.Config{Client: faulty, RoleARN: e.tier.roleARN})
	if err != nil {
		t.Fatal(err)
	}
	cache := credentials.NewCache(16, nil)
	svc := e.service(pool.verifier, func(s *credentials.Service) { s.Issuer = issuer; s.Cache = cache })
	wantUnavailable(t, get(t, svc, "/auths/resources", "Bearer "+pool.token(t, user)))
	if n := cache.Len(); n != 0 {
		t.Errorf("%d sets of a failed answer were cached", n)
	}
}

func TestInconsistentItemIs503WithoutSTS(t *testing.T) {
	e := newEnv(t)
	pool := newLocalPool(t)
	svc := e.service(pool.verifier)
	tests := []struct {
		name string
		edit func(*broker.UserPolicy)
	}{
		{"grant in no set", func(p *broker.UserPolicy) { p.Sets = p.Sets[:1] }},
		{"grant in two sets", func(p *broker.UserPolicy) { p.Sets[1].Grants = []int{0, 1} }},
		{"set with an empty policy", func(p *broker.UserPolicy) { p.Sets[0].Policy = "" }},
		{"set with a blank policy", func(p *broker.UserPolicy) { p.Sets[1].Policy = "  \n" }},
		{"set naming a grant out of range", func(p *broker.UserPolicy) { p.Sets[1].Grants = []int{1, 2} }},
		{"grants without sets", func(p *broker.UserPolicy) { p.Sets = nil }},
	}
	for i, tt := range tests {
		t.Run(tt.name+" is 503", func(t *testing.T) {
			user := fmt.Sprintf("e7f8091a-2b3c-4d4e-9f50-%012d", i)
			p := twoSetPolicy(user)
			tt.edit(&p)
			e.commit(t, p)
			e.resetCounts()
			wantUnavailable(t, get(t, svc, "/auths/resources", "Bearer "+pool.token(t, user)))
			if n := e.issue.Load(); n != 0 {
				t.Errorf("%d AssumeRole calls for an inconsistent item", n)
			}
		})
	}
	// An item stored under one user's key that names another user (a copy
	// made by hand, a bug) is not trusted with either user's credentials.
	t.Run("item naming another user is 503", func(t *testing.T) {
		const user = "e7f8091a-2b3c-4d4e-9f50-0000000000ff"
		e.commit(t, twoSetPolicy(user))
		_, err := e.tier.ddb.Client.UpdateItem(t.Context(), &dynamodb.UpdateItemInput{
			TableName: aws.String(e.tier.ddb.PolicyTable),
			Key: map[string]ddbtypes.AttributeValue{
				"pk": &ddbtypes.AttributeValueMemberS{Value: "USER#" + user}, "sk": &ddbtypes.AttributeValueMemberS{Value: "POLICY"},
			},
			UpdateExpression:          aws.String("SET userId = :other"),
			ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":other": &ddbtypes.AttributeValueMemberS{Value: "someone-else"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		e.resetCounts()
		wantUnavailable(t, get(t, svc, "/auths/resources", "Bearer "+pool.token(t, user)))
		if n := e.issue.Load(); n != 0 {
			t.Errorf("%d AssumeRole calls for an item naming another user", n)
		}
	})
}

// packedLimitSTS refuses, like STS, any session policy whose packed form is
// too large; here: longer than max characters (a hand-written fault, since
// moto never checks the policy).
type packedLimitSTS struct {
	next     stsissuer.AssumeRoleAPI
	max      int
	refused  atomic.Int64
	policies sync.Map // access key id -> policy
}

func (f *packedLimitSTS) AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, opts ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	if len(aws.ToString(in.Policy)) > f.max {
		f.refused.Add(1)
		return nil, &ststypes.PackedPolicyTooLargeException{Message: aws.String("Packed policy consumes 104% of allotted space")}
	}
	out, err := f.next.AssumeRole(ctx, in, opts...)
	if err == nil {
		f.policies.Store(aws.ToString(out.Credentials.AccessKeyId), aws.ToString(in.Policy))
	}
	return out, err
}

// STS may refuse a policy under 2,048 characters once packed: the answer
// then splits the same grants over more, smaller sets, each covering
// exactly the grants it lists.
func TestAPolicyTooLargeOncePackedIsSplit(t *testing.T) {
	e := newEnv(t)
	pool := newLocalPool(t)
	const user = "6f708192-a3b4-4cef-90a1-5c6d7e8f9a0b"
	byProject := map[string][]broker.Place{}
	for i := range 20 {
		byProject["p"] = append(byProject["p"], places(fmt.Sprintf("research-data-bucket-%03d", i))...)
	}
	item := e.seed(t, user, byProject)
	faulty := &packedLimitSTS{next: e.tier.sts, max: policy.MaxPolicyBytes / 2}
	issuer, err := stsissuer.New(stsissuer.Config{Client: faulty, RoleARN: e.tier.roleARN})
	if err != nil {
		t.Fatal(err)
	}
	svc := e.service(pool.verifier, func(s *credentials.Service) { s.Issuer = issuer; s.Cache = credentials.NewCache(16, nil) })
	r := get(t, svc, "/auths/resources", "Bearer "+pool.token(t, user))
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	a := r.answer(t)
	if faulty.refused.Load() == 0 || len(a.CredentialSets) <= len(item.Sets) {
		t.Fatalf("%d refusals, %d sets (item has %d): nothing was split", faulty.refused.Load(), len(a.CredentialSets), len(item.Sets))
	}
	var got []broker.Grant
	for _, set := range a.CredentialSets {
		got = append(got, set.Grants...)
		pol, _ := faulty.policies.Load(set.AccessKeyID)
		for _, g := range set.Grants {
			if !strings.Contains(pol.(string), "arn:aws:s3:::"+g.Bucket+"/*") {
				t.Errorf("set %s lists %s but its policy does not reach it", set.AccessKeyID, g.Bucket)
			}
		}
	}
	slices.SortFunc(got, func(x, y broker.Grant) int { return strings.Compare(x.Bucket, y.Bucket) })
	if diff := cmp.Diff(item.Grants, got); diff != "" {
		t.Errorf("grants of the split answer (-item +answer):\n%s", diff)
	}
	// The next request gets the same split answer.
	if r := get(t, svc, "/auths/resources", "Bearer "+pool.token(t, user)); r.status != 200 || len(r.answer(t).CredentialSets) != len(a.CredentialSets) {
		t.Errorf("second request: %d %s", r.status, r.body)
	}
}

func untilDone(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

func apiErr(code string) error {
	return &smithy.GenericAPIError{Code: code, Message: "Rate exceeded for arn:aws:iam::123456789012:role/credbroker-base"}
}

// TestInconsistentItemIs503WithoutSTS stores items the projector never
// writes: answering from them could hand out credentials that do not match
// the grants listed, or call AssumeRole without a session policy.
// faultDeadline bounds the requests of the fault tests. The calls before
// the faulty one go to moto, which on a loaded CI machine under -race can
// take a few hundred milliseconds: the deadline must leave room for them,
// or the test sees a timeout earlier in the path than the fault it injects.
const faultDeadline = 2 * time.Second
