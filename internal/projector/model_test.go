package projector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/projector"
	"github.com/credbroker/credbroker/internal/testkit/brokertest"
	"github.com/credbroker/credbroker/internal/testkit/memstore"
)

// modelStore is memstore with DynamoDB's calls: each method counts the
// calls ddbstore makes for it (batch reads of 100 keys, batch writes of
// 25, transactions of 100) and sleeps callDelay for each, one after the
// other, as DynamoDB's single-digit-millisecond latency would keep the
// caller waiting. Every call counts: claims, reads, writes, the index,
// checkpoints and outbox clears.
type modelStore struct {
	*memstore.Store
	delay time.Duration
	calls atomic.Int64
}

const callDelay = 5 * time.Millisecond

func (m *modelStore) call(n int) {
	m.calls.Add(int64(n))
	time.Sleep(time.Duration(n) * m.delay)
}

func per(n, size int) int { return max(1, (n+size-1)/size) }

func (m *modelStore) UserMemberships(ctx context.Context, u string) ([]broker.SourceItem, error) {
	m.call(1)
	return m.Store.UserMemberships(ctx, u)
}
func (m *modelStore) ProjectBuckets(ctx context.Context, p string) ([]broker.SourceItem, error) {
	m.call(1)
	return m.Store.ProjectBuckets(ctx, p)
}
func (m *modelStore) ProjectMemberships(ctx context.Context, p string, us []string) (map[string]broker.SourceItem, error) {
	m.call(per(len(us), 100))
	return m.Store.ProjectMemberships(ctx, p, us)
}
func (m *modelStore) GetPolicy(ctx context.Context, u string) (broker.UserPolicy, error) {
	m.call(1)
	return m.Store.GetPolicy(ctx, u)
}
func (m *modelStore) Claim(ctx context.Context, u string, now time.Time) (broker.Claim, error) {
	m.call(1)
	return m.Store.Claim(ctx, u, now)
}
func (m *modelStore) Commit(ctx context.Context, c broker.Claim, p broker.UserPolicy, o []broker.PolicyChangedDetail) error {
	m.call(1)
	return m.Store.Commit(ctx, c, p, o)
}
func (m *modelStore) ClearOutbox(ctx context.Context, c broker.Claim) error {
	m.call(1)
	return m.Store.ClearOutbox(ctx, c)
}
func (m *modelStore) ClearOutboxes(ctx context.Context, cs []broker.Claim) error {
	m.call(per(len(cs), 100))
	return m.Store.ClearOutboxes(ctx, cs)
}
func (m *modelStore) Touch(ctx context.Context, c broker.Claim, at time.Time) error {
	m.call(1)
	return m.Store.Touch(ctx, c, at)
}
func (m *modelStore) MemberTokens(ctx context.Context, u string, ps []string) (map[string]int64, error) {
	m.call(per(len(ps), 100))
	return m.Store.MemberTokens(ctx, u, ps)
}
func (m *modelStore) PutMembers(ctx context.Context, u string, ps []string, tok int64) error {
	m.call(per(len(ps), 25))
	return m.Store.PutMembers(ctx, u, ps, tok)
}
func (m *modelStore) PutProjectMembers(ctx context.Context, p string, ms []broker.Member) error {
	m.call(per(len(ms), 25))
	return m.Store.PutProjectMembers(ctx, p, ms)
}
func (m *modelStore) RemoveMember(ctx context.Context, p, u string, tok int64) (bool, error) {
	m.call(1)
	return m.Store.RemoveMember(ctx, p, u, tok)
}
func (m *modelStore) ProjectMembers(ctx context.Context, p, cursor string, limit int) (broker.MemberPage, error) {
	m.call(1)
	return m.Store.ProjectMembers(ctx, p, cursor, limit)
}
func (m *modelStore) LoadCheckpoint(ctx context.Context, k string) (string, error) {
	m.call(1)
	return m.Store.LoadCheckpoint(ctx, k)
}
func (m *modelStore) SaveCheckpoint(ctx context.Context, k, c string, exp time.Time) error {
	m.call(1)
	return m.Store.SaveCheckpoint(ctx, k, c, exp)
}
func (m *modelStore) DeleteCheckpoint(ctx context.Context, k string) error {
	m.call(1)
	return m.Store.DeleteCheckpoint(ctx, k)
}

// workerQueue stands in for the page queue and its event source: workers
// goroutines, each one invocation of the projector function's worker at a
// time, one page per invocation (template.yaml's FanoutQueue event source:
// BatchSize 1, MaximumConcurrency ProjectorWorkerConcurrency).
type workerQueue struct {
	msgs    chan string
	pending sync.WaitGroup
	failed  atomic.Int64
}

func newWorkerQueue(ctx context.Context, h *projector.Handler, workers int) *workerQueue {
	q := &workerQueue{msgs: make(chan string, 1<<16)}
	for range workers {
		go func() {
			for body := range q.msgs {
				payload, _ := json.Marshal(events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m", Body: body, EventSource: "aws:sqs"}}})
				resp, err := h.Handle(ctx, payload)
				if err != nil || len(resp.BatchItemFailures) > 0 {
					q.failed.Add(1)
				}
				q.pending.Done()
			}
		}()
	}
	return q
}

func (q *workerQueue) Send(_ context.Context, bodies []string, _ time.Duration) error {
	q.pending.Add(len(bodies))
	for _, b := range bodies {
		q.msgs <- b
	}
	return nil
}

// The deployed bounds the model runs at: ProjectorWorkerConcurrency (the
// page queue's event source's MaximumConcurrency, default 4) times
// CREDBROKER_FANOUT_CONCURRENCY (DynamoDB calls in flight per invocation, 16).
const (
	modelWorkers     = 4
	modelConcurrency = 16
)

// bigProject gives project "big" n members with one bucket, projected
// (items and member index) on the store without delays.
func bigProject(tb testing.TB, mem *memstore.Store, n int) *projector.Projector {
	tb.Helper()
	p := &projector.Projector{Source: mem, Store: mem, Index: mem, Checkpoints: mem, Auditor: &brokertest.Auditor{},
		Concurrency: 64, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	mem.PutSource(broker.SourceItem{PK: "PROJECT#big", SK: "BUCKET#lake"})
	joins := make([]projector.Change, 0, 1000)
	for i := range n {
		it := broker.SourceItem{PK: fmt.Sprintf("USER#user-%06d", i), SK: "PROJECT#big"}
		mem.PutSource(it)
		joins = append(joins, projector.Change{EventID: fmt.Sprint("join-", i), EventName: "INSERT", SequenceNumber: fmt.Sprint(i), Keys: it, New: &it})
		if len(joins) == cap(joins) || i == n-1 {
			if out := p.Process(context.Background(), joins); len(out.Failed) > 0 {
				tb.Fatalf("joins failed: %v", out.Failed)
			}
			joins = joins[:0]
		}
	}
	return p
}

// cpuTime is the CPU time this process has used: where the machine's
// cores, not the calls' delays, set the pace of a run.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// modelProjector is a projector on a project of n members behind
// modelStore, at modelConcurrency.
func modelProjector(tb testing.TB, n int) (*memstore.Store, *modelStore, *projector.Projector) {
	mem := memstore.New()
	p := bigProject(tb, mem, n)
	store := &modelStore{Store: mem, delay: callDelay}
	p.Source, p.Store, p.Index, p.Checkpoints, p.Concurrency = store, store, store, store, modelConcurrency
	return mem, store, p
}

// BenchmarkFanoutModel models a bucket change reaching every member of a
// project on AWS: in process, on memstore behind modelStore (every
// DynamoDB call counted and delayed 5 ms), the stream's invocation sending
// the fan-out's pages to 4 workers (ProjectorWorkerConcurrency's default)
// of 16 calls in flight each (CREDBROKER_FANOUT_CONCURRENCY): at most 64 DynamoDB
// calls in flight, at most 12,800 a second at 5 ms. It reports the calls
// per member; s/100k-members, the time for 100,000 members modelled from
// the calls counted (calls × 5 ms over the 64 places in flight, scaled to
// 100,000 members); wall-s/100k-members, the run's own time scaled the
// same way (measured at 100,000); the time for the whole fan-out
// (s/fanout), the CPU time it took (cpu-s: on a machine shared by others,
// whether the work or the machine's scheduling sets the pace) and the time
// the stream's invocation held the shard (shard-s).
func BenchmarkFanoutModel(b *testing.B) {
	// memstore keeps the whole table in this process's heap, where on AWS
	// DynamoDB keeps it (a worker's heap holds one page): at 100,000 users
	// the collector's passes over it, not the fan-out, would set the pace.
	defer debug.SetGCPercent(debug.SetGCPercent(800))
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprint(n, "-members"), func(b *testing.B) {
			mem, store, p := modelProjector(b, n)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			q := newWorkerQueue(ctx, &projector.Handler{Projector: p}, modelWorkers)
			p.Pages = q
			b.ResetTimer()
			for i := range b.N {
				bucket := fmt.Sprintf("lake-%d", i)
				mem.PutSource(broker.SourceItem{PK: "PROJECT#big", SK: "BUCKET#" + bucket})
				c := projector.Change{EventID: "add-" + bucket, EventName: "INSERT", SequenceNumber: fmt.Sprint(i),
					Keys: broker.SourceItem{PK: "PROJECT#big", SK: "BUCKET#" + bucket}}
				c.New = &c.Keys
				store.calls.Store(0)
				cpu := cpuTime()
				start := time.Now()
				out := p.Process(ctx, []projector.Change{c})
				shard := time.Since(start)
				q.pending.Wait()
				took := time.Since(start)
				b.ReportMetric((cpuTime() - cpu).Seconds(), "cpu-s")
				if len(out.Failed) > 0 || out.FanoutUsers != n || q.failed.Load() > 0 {
					b.Fatalf("fan-out: %+v, %d pages failed", out, q.failed.Load())
				}
				for u := 0; u < n; u += n / 10 {
					if pol, _ := mem.GetPolicy(ctx, fmt.Sprintf("user-%06d", u)); len(pol.Grants) != i+2 {
						b.Fatalf("user-%06d has %d grants, want %d", u, len(pol.Grants), i+2)
					}
				}
				b.ReportMetric(float64(store.calls.Load())/float64(n), "calls/member")
				b.ReportMetric(took.Seconds(), "s/fanout")
				b.ReportMetric(shard.Seconds(), "shard-s")
				// The model: every call waits its 5 ms holding one of the
				// W×C places in flight, which the queue keeps full.
				b.ReportMetric(float64(store.calls.Load())*callDelay.Seconds()/(modelWorkers*modelConcurrency)*100_000/float64(n), "s/100k-members")
				b.ReportMetric(took.Seconds()*100_000/float64(n), "wall-s/100k-members")
			}
		})
	}
}

// noDelta makes every member of a fan-out take the full recompute, as
// every member did before the delta path: the membership batch read finds
// nothing, so the delta cannot be applied.
type noDelta struct{ *modelStore }

func (noDelta) ProjectMemberships(context.Context, string, []string) (map[string]broker.SourceItem, error) {
	return nil, nil
}

// BenchmarkShardWait measures how long an unrelated change waits behind a
// bucket change of a 10,000-member project in the same stream batch: the
// batch's invocation holds the shard until the fan-out is done or handed
// on, so shard-s is the wait. "full-in-process" is the fan-out before the
// delta path and the page queue (every member recomputed in full, 16 at a
// time, in the invocation); "delta-in-process" has the delta path without
// the queue; "queued" sends the pages to the workers and returns.
func BenchmarkShardWait(b *testing.B) {
	const n = 10_000
	for _, mode := range []string{"full-in-process", "delta-in-process", "queued"} {
		b.Run(mode, func(b *testing.B) {
			mem, store, p := modelProjector(b, n)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if mode == "full-in-process" {
				p.Source = noDelta{store}
			}
			var q *workerQueue
			if mode == "queued" {
				q = newWorkerQueue(ctx, &projector.Handler{Projector: p}, modelWorkers)
				p.Pages = q
			}
			mem.PutSource(broker.SourceItem{PK: "PROJECT#other", SK: "BUCKET#mine"})
			b.ResetTimer()
			for i := range b.N {
				bucket := fmt.Sprintf("lake-%d", i)
				mem.PutSource(broker.SourceItem{PK: "PROJECT#big", SK: "BUCKET#" + bucket})
				add := projector.Change{EventID: "add-" + bucket, EventName: "INSERT", SequenceNumber: fmt.Sprint(2 * i),
					Keys: broker.SourceItem{PK: "PROJECT#big", SK: "BUCKET#" + bucket}}
				add.New = &add.Keys
				join := broker.SourceItem{PK: fmt.Sprintf("USER#bystander-%d", i), SK: "PROJECT#other"}
				mem.PutSource(join)
				unrelated := projector.Change{EventID: "join-" + bucket, EventName: "INSERT", SequenceNumber: fmt.Sprint(2*i + 1), Keys: join, New: &join}
				start := time.Now()
				out := p.Process(ctx, []projector.Change{add, unrelated})
				b.ReportMetric(time.Since(start).Seconds(), "shard-s")
				if len(out.Failed) > 0 {
					b.Fatalf("batch: %+v", out)
				}
				if q != nil {
					b.StopTimer()
					q.pending.Wait()
					b.StartTimer()
				}
				if pol, _ := mem.GetPolicy(ctx, fmt.Sprintf("bystander-%d", i)); len(pol.Grants) != 1 {
					b.Fatalf("the unrelated change was not projected: %+v", pol)
				}
			}
		})
	}
}
