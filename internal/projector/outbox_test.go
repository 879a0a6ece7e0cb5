package projector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/projector"
	"github.com/credbroker/credbroker/internal/testkit/brokertest"
	"github.com/credbroker/credbroker/internal/testkit/memstore"
)

// While the bus is down a user's changes pile up in the item's outbox; the
// outbox stays within its byte budget (the item within DynamoDB's limit),
// large events are cut with their counts kept, and the newest events are
// delivered once the bus is back.
func TestAnOutboxNeverOutgrowsItsItem(t *testing.T) {
	mem := memstore.New()
	audit := &brokertest.Auditor{Fail: func([]broker.AuditEvent) error { return broker.Errorf(broker.Transient, "emit", "bus down") }}
	p := &projector.Projector{Source: mem, Store: mem, Index: mem, Checkpoints: mem, Auditor: audit}
	for i := range 300 {
		mem.PutSource(broker.SourceItem{PK: "PROJECT#p1", SK: fmt.Sprintf("BUCKET#bucket-with-a-long-name-%04d", i)})
	}
	join := broker.SourceItem{PK: "USER#alice", SK: "PROJECT#p1", Role: broker.StringAttr("read")}
	for i := range 12 {
		join.Role = broker.StringAttr([]string{"read", "write"}[i%2])
		mem.PutSource(join)
		c := join
		out := p.Process(context.Background(), []projector.Change{{EventID: fmt.Sprint("e", i), EventName: "MODIFY", SequenceNumber: fmt.Sprint(i), Keys: c, New: &c}})
		if len(out.Failed) != 1 {
			t.Fatalf("change %d: bus down, want the change handed back, got %+v", i, out)
		}
		claim, err := mem.Claim(context.Background(), "alice", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(claim.Outbox)
		if len(b) > 96<<10+1024 || len(claim.Outbox) == 0 {
			t.Fatalf("change %d: outbox of %d events is %d bytes", i, len(claim.Outbox), len(b))
		}
	}
	audit.Fail = nil
	c := join
	if out := p.Process(context.Background(), []projector.Change{{EventID: "last", EventName: "MODIFY", SequenceNumber: "x", Keys: c, New: &c}}); len(out.Failed) != 0 {
		t.Fatalf("bus back: %+v", out)
	}
	evs := audit.Of(broker.DetailPolicyChanged)
	if len(evs) < 2 {
		t.Fatalf("%d events delivered", len(evs))
	}
	last := evs[len(evs)-1].Detail.(broker.PolicyChangedDetail)
	if !last.Truncated || last.AddedCount != 300 || last.RemovedCount != 300 || len(last.Added) >= 300 {
		t.Errorf("newest event: truncated=%v added %d/%d removed %d/%d", last.Truncated, len(last.Added), last.AddedCount, len(last.Removed), last.RemovedCount)
	}
}
