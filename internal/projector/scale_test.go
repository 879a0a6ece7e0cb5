package projector_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/projector"
	"github.com/credbroker/credbroker/internal/testkit/brokertest"
	"github.com/credbroker/credbroker/internal/testkit/memstore"
)

// gauge tracks how many membership reads run at once: one per recompute.
type gauge struct {
	broker.SourceReader
	now, peak atomic.Int64
}

func (g *gauge) UserMemberships(ctx context.Context, user string) ([]broker.SourceItem, error) {
	n := g.now.Add(1)
	defer g.now.Add(-1)
	for {
		p := g.peak.Load()
		if n <= p || g.peak.CompareAndSwap(p, n) {
			break
		}
	}
	return g.SourceReader.UserMemberships(ctx, user)
}

// A bucket change on a project with 10,000 members reaches every member,
// page by page, with no more recomputes at once than the configured bound.
// moto serves about 200 calls a second here, too slow for 10,000 members in
// every test run, so this runs on memstore (which passes the same
// conformance suite as ddbstore); BenchmarkFanout measures 1,000 members on
// moto.
func TestAFanoutReachesTenThousandMembers(t *testing.T) {
	const n = 10_000
	mem := memstore.New()
	g := &gauge{SourceReader: mem}
	audit := &brokertest.Auditor{}
	p := &projector.Projector{Source: g, Store: mem, Index: mem, Checkpoints: mem, Auditor: audit, Concurrency: 16, PageSize: 500}

	mem.PutSource(broker.SourceItem{PK: "PROJECT#big", SK: "BUCKET#lake"})
	var joins []projector.Change
	for i := range n {
		it := broker.SourceItem{PK: fmt.Sprintf("USER#user-%05d", i), SK: "PROJECT#big"}
		mem.PutSource(it)
		joins = append(joins, projector.Change{EventID: fmt.Sprint("join-", i), EventName: "INSERT", SequenceNumber: fmt.Sprint(i), Keys: it, New: &it})
	}
	for start := 0; start < n; start += 100 {
		if out := p.Process(context.Background(), joins[start:start+100]); len(out.Failed) > 0 {
			t.Fatalf("joins failed: %v", out.Failed)
		}
	}

	mem.DeleteSource("PROJECT#big", "BUCKET#lake")
	removal := projector.Change{EventID: "removal", EventName: "REMOVE", SequenceNumber: "x", Keys: broker.SourceItem{PK: "PROJECT#big", SK: "BUCKET#lake"}}
	g.peak.Store(0)
	calls := mem.Calls.Load()
	out := p.Process(context.Background(), []projector.Change{removal})
	if len(out.Failed) > 0 || out.FanoutUsers != n || out.Changed != n {
		t.Fatalf("fan-out = %+v, want %d members changed", out, n)
	}
	// Only the bound is asserted: how many recomputes overlap below it is
	// the scheduler's business (GOMAXPROCS may be 1).
	if peak := g.peak.Load(); peak > 16 {
		t.Errorf("peak concurrent recomputes %d, above the bound 16", peak)
	}
	for i := 0; i < n; i += 997 {
		u := fmt.Sprintf("user-%05d", i)
		if pol, _ := mem.GetPolicy(context.Background(), u); !pol.Empty() {
			t.Errorf("%s keeps %v", u, places(pol))
		}
	}
	t.Logf("fan-out to %d members: %d store calls (%.1f per member)", n, mem.Calls.Load()-calls, float64(mem.Calls.Load()-calls)/n)
}

// Example: a membership change projected into the user's policy item, on
// the in-memory store.
func ExampleProjector_Process() {
	mem := memstore.New()
	p := &projector.Projector{Source: mem, Store: mem, Index: mem, Checkpoints: mem,
		Auditor: broker.AuditorFunc(func(context.Context, ...broker.AuditEvent) error { return nil })}

	mem.PutSource(broker.SourceItem{PK: "PROJECT#genomics", SK: "BUCKET#genomics-raw", Prefix: broker.StringAttr("runs/2026")})
	join := broker.SourceItem{PK: "USER#alice", SK: "PROJECT#genomics", Role: broker.StringAttr("write")}
	mem.PutSource(join)

	out := p.Process(context.Background(), []projector.Change{{EventID: "e1", EventName: "INSERT", SequenceNumber: "1", Keys: join, New: &join}})
	pol, _ := mem.GetPolicy(context.Background(), "alice")
	fmt.Println("failed:", len(out.Failed))
	for _, g := range pol.Grants {
		fmt.Println(g.Bucket, g.Prefix, g.Access, g.Projects)
	}
	fmt.Println(pol.Sets[0].Policy)
	// Output:
	// failed: 0
	// genomics-raw runs/2026/ write [genomics]
	// {"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:PutObject","s3:DeleteObject","s3:AbortMultipartUpload"],"Resource":"arn:aws:s3:::genomics-raw/runs/2026/*"},{"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::genomics-raw","Condition":{"StringLike":{"s3:prefix":"runs/2026/*"}}}]}
}
