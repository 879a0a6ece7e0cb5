package endpoint_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/ddbstore"
	"github.com/credbroker/credbroker/internal/ebaudit"
	"github.com/credbroker/credbroker/internal/emf"
	"github.com/credbroker/credbroker/internal/endpoint"
	"github.com/credbroker/credbroker/internal/policy"
)

// acceptingPutEvents is an in-process bus that accepts every entry, so the
// benchmarks pay for building and marshalling the audit event but not for
// a network round trip.
type acceptingPutEvents struct{}

func (acceptingPutEvents) PutEvents(_ context.Context, in *eventbridge.PutEventsInput, _ ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	out := &eventbridge.PutEventsOutput{Entries: make([]ebtypes.PutEventsResultEntry, len(in.Entries))}
	for i := range out.Entries {
		out.Entries[i].EventId = aws.String("e")
	}
	return out, nil
}

// percentile returns the p-quantile (0 < p <= 1) of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[max(0, int(math.Ceil(p*float64(len(sorted))))-1)]
}

func micros(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
func millis(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// benchService is the warm handler with every dependency in process: the
// real verifier on a local key set (fetched once), and fakes for the policy
// read and AssumeRole, whose network round trips are excluded.
func benchService(b *testing.B, cache *endpoint.Cache, issued *atomic.Int64) (*endpoint.Service, string) {
	b.Helper()
	pool := newLocalPool(b)
	const user = "b4c5d6e7-f809-4142-8356-012345678901"
	byProject := map[string][]broker.Place{
		"genomics": places("genomics-raw/runs/2024:write", "genomics-ref", "shared-reference"),
		"climate":  places("climate-models:write", "climate-obs/stations", "shared-reference"),
	}
	res, err := policy.Compiler{}.Compile(byProject)
	if err != nil {
		b.Fatal(err)
	}
	item := broker.UserPolicy{UserID: user, Version: res.Version, Grants: res.Grants, Sets: res.Sets, ByProject: res.ByProject}
	svc := &endpoint.Service{
		Verifier: pool.verifier,
		Policies: policyReaderFunc(func(context.Context, string) (broker.UserPolicy, error) { return item, nil }),
		Issuer: issuerFunc(func(context.Context, broker.IssueRequest) (broker.Credentials, error) {
			issued.Add(1)
			return broker.Credentials{AccessKeyID: "ASIABENCHMARK0000001", SecretAccessKey: "secret-access-key-0123456789abcdef0123",
				SessionToken: "session-token", Expiration: time.Now().Add(15 * time.Minute)}, nil
		}),
		Auditor: ebaudit.New(ebaudit.Config{Client: acceptingPutEvents{}, BusName: "audit", Logger: discard()}),
		Cache:   cache,
		Logger:  slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Metrics: &emf.Writer{W: io.Discard},
	}
	return svc, "Bearer " + pool.token(b, user)
}

func benchHandle(b *testing.B, cache *endpoint.Cache) {
	for _, query := range []string{"", "project=climate"} {
		name := "all-projects"
		if query != "" {
			name = "one-project"
		}
		b.Run(name, func(b *testing.B) {
			var issued atomic.Int64
			svc, bearer := benchService(b, cache, &issued)
			ev := event(map[string]string{"authorization": bearer, "user-agent": "bench"}, query, nil)
			ctx := context.Background()
			// Warm: key set fetched, cache filled.
			if resp, _ := svc.Handle(ctx, ev); resp.StatusCode != 200 {
				b.Fatalf("warm-up status %d: %s", resp.StatusCode, resp.Body)
			}
			var durations []time.Duration
			issued.Store(0)
			b.ReportAllocs()
			for b.Loop() {
				start := time.Now()
				resp, _ := svc.Handle(ctx, ev)
				durations = append(durations, time.Since(start))
				if resp.StatusCode != 200 {
					b.Fatalf("status %d: %s", resp.StatusCode, resp.Body)
				}
			}
			slices.Sort(durations)
			b.ReportMetric(float64(issued.Load())/float64(len(durations)), "assume-role/op")
			b.ReportMetric(micros(percentile(durations, 0.5)), "p50-µs")
			b.ReportMetric(micros(percentile(durations, 0.99)), "p99-µs")
		})
	}
}

// BenchmarkHandleMiss is a warm request that assumes the role (in process):
// token verification, the policy read, planning, the audit event, the log
// and metric lines.
func BenchmarkHandleMiss(b *testing.B) { benchHandle(b, nil) }

// BenchmarkHandleHit is the same request served from the credential cache.
func BenchmarkHandleHit(b *testing.B) { benchHandle(b, endpoint.NewCache(1024, nil)) }

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
		if _, err := e.store.Client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(e.store.MembershipTable), Item: item}); err != nil {
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
		if _, err := issuer.Issue(ctx, broker.IssueRequest{UserID: user, SessionName: endpoint.SessionName(user), Policy: s.Policy, Duration: d}); err != nil {
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
	store := &ddbstore.Store{Client: countingDDB{API: e.store.Client, calls: &calls},
		MembershipTable: e.store.MembershipTable, PolicyTable: e.store.PolicyTable}
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
