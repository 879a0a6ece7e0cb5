//go:build integration

package replay_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/ddbstore"
	"github.com/credbroker/credbroker/internal/projector"
	"github.com/credbroker/credbroker/internal/replay"
	"github.com/credbroker/credbroker/internal/testkit/memstore"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
)

func benchSize(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// peakMemory samples the heap until stop is called, and returns the peaks
// of HeapInuse and Sys.
func peakMemory() (stop func() (heapInuse, sys uint64)) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	var heap, total uint64
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heap, total = max(heap, ms.HeapInuse), max(total, ms.Sys)
	}
	wg.Go(func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			sample()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() (uint64, uint64) {
		close(done)
		wg.Wait()
		sample()
		return heap, total
	}
}

func measure(b *testing.B, run func() (replay.Report, error)) {
	b.Helper()
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	stop := peakMemory()
	start := time.Now()
	rep, err := run()
	elapsed := time.Since(start)
	heap, sys := stop()
	if err != nil || rep.Failed > 0 {
		b.Fatalf("rebuild: %v (%d failed)", err, rep.Failed)
	}
	b.ReportMetric(float64(rep.Users)/elapsed.Seconds(), "users/s")
	b.ReportMetric(float64(base.HeapInuse)/(1<<20), "start-heap-MB")
	b.ReportMetric(float64(heap)/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(sys)/(1<<20), "peak-sys-MB")
}

// BenchmarkRebuild measures a rebuild into an empty policy table (cold)
// and a rebuild that finds nothing to change (warm): users per second and
// peak memory of this process. REBUILD_BENCH_USERS (default 10,000) and
// REBUILD_BENCH_MOTO_USERS (default 200) set the sizes, with a tenth as
// many projects. moto answers a query in tens of milliseconds, slower as
// its tables grow, so 10,000 users against it would take hours.
func BenchmarkRebuild(b *testing.B) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	b.Run("in-process", func(b *testing.B) {
		users := benchSize("REBUILD_BENCH_USERS", 10000)
		items := org(users, users/10)
		for _, warm := range []bool{false, true} {
			b.Run(fmt.Sprintf("%d-users/%s", users, map[bool]string{false: "cold", true: "warm"}[warm]), func(b *testing.B) {
				for range b.N {
					b.StopTimer()
					store := memstore.New()
					for _, it := range items {
						store.PutSource(it)
					}
					proj := &projector.Projector{Source: store, Store: store, Index: store, Checkpoints: store,
						Auditor: broker.AuditorFunc(func(context.Context, ...broker.AuditEvent) error { return nil }), Logger: quiet}
					svc := &replay.Service{Memberships: store, Policies: store, Store: store, Projector: proj, Logger: quiet}
					if warm {
						if _, err := svc.Rebuild(context.Background()); err != nil {
							b.Fatal(err)
						}
					}
					b.StartTimer()
					measure(b, func() (replay.Report, error) { return svc.Rebuild(context.Background()) })
				}
			})
		}
	})
	b.Run("moto", func(b *testing.B) {
		users := benchSize("REBUILD_BENCH_MOTO_USERS", 200)
		tables := mototest.NewTables(b)
		writeSource(b, tables, org(users, users/10))
		for _, warm := range []bool{false, true} {
			b.Run(fmt.Sprintf("%d-users/%s", users, map[bool]string{false: "cold", true: "warm"}[warm]), func(b *testing.B) {
				for range b.N {
					b.StopTimer()
					policy := mototest.NewTables(b).Policy // a fresh, empty policy table
					store := &ddbstore.Store{Client: tables.DDB, MembershipTable: tables.Membership, PolicyTable: policy}
					proj := &projector.Projector{Source: store, Store: store, Index: store, Checkpoints: store,
						Auditor: broker.AuditorFunc(func(context.Context, ...broker.AuditEvent) error { return nil }), Logger: quiet}
					svc := &replay.Service{Memberships: store, Policies: store, Store: store, Projector: proj, Logger: quiet,
						Sizes: ddbstore.Tables{Client: tables.DDB, MembershipTable: tables.Membership, PolicyTable: policy}}
					if warm {
						if _, err := svc.Rebuild(context.Background()); err != nil {
							b.Fatal(err)
						}
					}
					b.StartTimer()
					measure(b, func() (replay.Report, error) { return svc.Rebuild(context.Background()) })
				}
			})
		}
	})
}

// writeSource fills the membership table with batch writes.
func writeSource(b testing.TB, tables mototest.Tables, items []broker.SourceItem) {
	b.Helper()
	g, ctx := errgroup.WithContext(context.Background())
	g.SetLimit(8)
	for start := 0; start < len(items); start += 25 {
		chunk := items[start:min(start+25, len(items))]
		g.Go(func() error {
			writes := make([]types.WriteRequest, len(chunk))
			for i, it := range chunk {
				item := map[string]types.AttributeValue{"pk": s(it.PK), "sk": s(it.SK)}
				if it.Role.Present {
					item["role"] = s(it.Role.S)
				}
				writes[i] = types.WriteRequest{PutRequest: &types.PutRequest{Item: item}}
			}
			req := map[string][]types.WriteRequest{tables.Membership: writes}
			for len(req) > 0 {
				out, err := tables.DDB.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: req})
				if err != nil {
					return err
				}
				req = out.UnprocessedItems
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
}
