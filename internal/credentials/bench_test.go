package credentials_test

import (
	"context"
	"io"
	"log/slog"
	"math"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/credentials"
	"github.com/credbroker/credbroker/internal/ebaudit"
	"github.com/credbroker/credbroker/internal/emf"
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

// benchService is the warm handler with every dependency in process: the
// real verifier on a local key set (fetched once), and fakes for the policy
// read and AssumeRole, whose network round trips are excluded.
func benchService(b *testing.B, cache *credentials.Cache, issued *atomic.Int64) (*credentials.Service, string) {
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
	svc := &credentials.Service{
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

func benchHandle(b *testing.B, cache *credentials.Cache) {
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
func BenchmarkHandleHit(b *testing.B) { benchHandle(b, credentials.NewCache(1024, nil)) }
