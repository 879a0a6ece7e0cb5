//go:build integration

package credentials_test

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/credentials"
	"github.com/credbroker/credbroker/internal/ddbstore"
	"github.com/credbroker/credbroker/internal/policy"
)

// countingDDB counts the DynamoDB calls that reach moto.
type countingDDB struct {
	ddbstore.API
	calls *atomic.Int64
}

func (c countingDDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.calls.Add(1)
	return c.API.GetItem(ctx, in, o...)
}

func (c countingDDB) Query(ctx context.Context, in *dynamodb.QueryInput, o ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	c.calls.Add(1)
	return c.API.Query(ctx, in, o...)
}

// seedMemberships writes n projects of two buckets each for the user into
// the membership table and returns what they grant.
func seedMemberships(b *testing.B, e *env, user string, n int) map[string][]broker.Place {
	b.Helper()
	ctx := context.Background()
	s := func(v string) ddbtypes.AttributeValue { return &ddbtypes.AttributeValueMemberS{Value: v} }
	byProject := map[string][]broker.Place{}
	put := func(item map[string]ddbtypes.AttributeValue) {
		if _, err := e.tier.ddb.Client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(e.tier.ddb.MembershipTable), Item: item}); err != nil {
			b.Fatal(err)
		}
	}
	for i := range n {
		project := fmt.Sprintf("project-%03d", i)
		role := broker.Read
		if i%2 == 0 {
			role = broker.Write
		}
		put(map[string]ddbtypes.AttributeValue{"pk": s(broker.UserKeyPrefix + user), "sk": s(broker.ProjectKeyPrefix + project), "role": s(string(role))})
		for _, bucket := range []string{fmt.Sprintf("data-%03d-raw", i), fmt.Sprintf("data-%03d-curated", i)} {
			put(map[string]ddbtypes.AttributeValue{"pk": s(broker.ProjectKeyPrefix + project), "sk": s(broker.BucketKeyPrefix + bucket), "prefix": s("team/")})
			byProject[project] = append(byProject[project], broker.Place{Bucket: bucket, Prefix: "team/", Access: role})
		}
	}
	return byProject
}

// baselineRequest is the original design's request path: read the user's
// memberships, then each project's buckets, compile, and assume the role
// once per set.
func baselineRequest(ctx context.Context, store *ddbstore.Store, issuer broker.CredentialIssuer, user string, d time.Duration) (int, error) {
	items, err := store.UserMemberships(ctx, user)
	if err != nil {
		return 0, err
	}
	byProject := map[string][]broker.Place{}
	for _, it := range items {
		m, err := it.Parse()
		if err != nil || m.Kind != broker.MembershipRecord {
			continue
		}
		buckets, err := store.ProjectBuckets(ctx, m.ProjectID)
		if err != nil {
			return 0, err
		}
		for _, bi := range buckets {
			pb, err := bi.Parse()
			if err != nil || pb.Kind != broker.BucketRecord {
				continue
			}
			byProject[m.ProjectID] = append(byProject[m.ProjectID], broker.Place{Bucket: pb.Bucket.Bucket, Prefix: pb.Bucket.Prefix, Access: m.Membership.Access})
		}
	}
	res, err := policy.Compiler{}.Compile(byProject)
	if err != nil {
		return 0, err
	}
	return issueAll(ctx, issuer, user, res.Sets, d)
}

// designRequest is this design's: one strongly consistent GetItem of the
// precompiled item, then AssumeRole once per set.
func designRequest(ctx context.Context, store *ddbstore.Store, issuer broker.CredentialIssuer, user string, d time.Duration) (int, error) {
	pol, err := store.GetPolicy(ctx, user)
	if err != nil {
		return 0, err
	}
	return issueAll(ctx, issuer, user, pol.Sets, d)
}

func issueAll(ctx context.Context, issuer broker.CredentialIssuer, user string, sets []broker.PolicySet, d time.Duration) (int, error) {
	for _, s := range sets {
		if _, err := issuer.Issue(ctx, broker.IssueRequest{UserID: user, SessionName: credentials.SessionName(user), Policy: s.Policy, Duration: d}); err != nil {
			return 0, err
		}
	}
	return len(sets), nil
}

// BenchmarkVsBaseline runs this design and the original per-request
// computation side by side against moto, alternating per iteration so both
// see the same moto. ns/op is the sum of both; the reported metrics split
// them. Run it with a fixed count, e.g. -benchtime=100x.
func BenchmarkVsBaseline(b *testing.B) {
	e := newEnv(b)
	var calls atomic.Int64
	store := &ddbstore.Store{Client: countingDDB{API: e.tier.ddb.Client, calls: &calls},
		MembershipTable: e.tier.ddb.MembershipTable, PolicyTable: e.tier.ddb.PolicyTable}
	const d = 15 * time.Minute
	for _, n := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("projects=%d", n), func(b *testing.B) {
			ctx := context.Background()
			user := fmt.Sprintf("c5d6e7f8-0912-4253-9467-%012d", n)
			byProject := seedMemberships(b, e, user, n)
			item := e.seed(b, user, byProject)
			// Warm both paths: connections open, moto's first-call costs paid.
			if _, err := designRequest(ctx, store, e.issuer, user, d); err != nil {
				b.Fatal(err)
			}
			if _, err := baselineRequest(ctx, store, e.issuer, user, d); err != nil {
				b.Fatal(err)
			}
			var design, baseline []time.Duration
			var designCalls, baselineCalls int64
			for b.Loop() {
				calls.Store(0)
				start := time.Now()
				sets, err := designRequest(ctx, store, e.issuer, user, d)
				design = append(design, time.Since(start))
				designCalls += calls.Load()
				if err != nil || sets != len(item.Sets) {
					b.Fatalf("design: %d sets, %v", sets, err)
				}
				calls.Store(0)
				start = time.Now()
				sets, err = baselineRequest(ctx, store, e.issuer, user, d)
				baseline = append(baseline, time.Since(start))
				baselineCalls += calls.Load()
				if err != nil || sets != len(item.Sets) {
					b.Fatalf("baseline: %d sets, %v", sets, err)
				}
			}
			slices.Sort(design)
			slices.Sort(baseline)
			runs := float64(len(design))
			dp50, dp99 := percentile(design, 0.5), percentile(design, 0.99)
			bp50, bp99 := percentile(baseline, 0.5), percentile(baseline, 0.99)
			b.ReportMetric(float64(len(item.Sets)), "sets")
			b.ReportMetric(float64(designCalls)/runs, "design-ddb-calls/req")
			b.ReportMetric(float64(baselineCalls)/runs, "baseline-ddb-calls/req")
			b.ReportMetric(millis(dp50), "design-p50-ms")
			b.ReportMetric(millis(dp99), "design-p99-ms")
			b.ReportMetric(millis(bp50), "baseline-p50-ms")
			b.ReportMetric(millis(bp99), "baseline-p99-ms")
			b.ReportMetric(float64(bp50)/float64(dp50), "p50-ratio")
			b.ReportMetric(float64(bp99)/float64(dp99), "p99-ratio")
		})
	}
}

func millis(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }
