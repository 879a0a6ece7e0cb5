//go:build integration

package projector_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/ebaudit"
	"github.com/credbroker/credbroker/internal/testkit/auditschema"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
)

// flakyEventBridge is a hand-written fault injector in front of moto's
// EventBridge (moto cannot be told to refuse entries): while down, whole
// calls fail; while partial, the first entry of each call is refused as
// throttled (for the next `refuse` calls) and the rest go through to moto.
type flakyEventBridge struct {
	real   ebaudit.PutEventsAPI
	mu     sync.Mutex
	down   bool
	refuse int
}

func (f *flakyEventBridge) set(down bool, refuse int) {
	f.mu.Lock()
	f.down, f.refuse = down, refuse
	f.mu.Unlock()
}

func (f *flakyEventBridge) PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, o ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	f.mu.Lock()
	down, partial := f.down, f.refuse > 0
	if partial {
		f.refuse--
	}
	f.mu.Unlock()
	if down {
		return nil, &ebtypes.InternalException{Message: aws.String("injected outage")}
	}
	if !partial || len(in.Entries) == 0 {
		return f.real.PutEvents(ctx, in, o...)
	}
	rest := *in
	rest.Entries = in.Entries[1:]
	out := &eventbridge.PutEventsOutput{FailedEntryCount: 1, Entries: []ebtypes.PutEventsResultEntry{{ErrorCode: aws.String("ThrottlingException"), ErrorMessage: aws.String("injected")}}}
	if len(rest.Entries) > 0 {
		real, err := f.real.PutEvents(ctx, &rest, o...)
		if err != nil {
			return nil, err
		}
		out.FailedEntryCount += real.FailedEntryCount
		out.Entries = append(out.Entries, real.Entries...)
	}
	return out, nil
}

func (f *fixture) withBus(t *testing.T) (*mototest.AuditBus, *flakyEventBridge) {
	bus := mototest.NewAuditBus(t)
	flaky := &flakyEventBridge{real: eventbridge.NewFromConfig(mototest.Config(t))}
	f.proj.Auditor = ebaudit.New(ebaudit.Config{Client: flaky, BusName: bus.Name, MaxAttempts: 3,
		Sleep: func(context.Context, time.Duration) error { return nil }})
	return bus, flaky
}

// PolicyChanged and ProjectionRejected reach a real bus (moto), arrive at a
// rule's SQS target and validate against their schemas.
func TestProjectionEventsReachTheBus(t *testing.T) {
	f := newFixture(t)
	bus, _ := f.withBus(t)
	f.member("alice", "p1", "read")
	f.bucket("p1", "lake", "")
	f.put(map[string]types.AttributeValue{"pk": s("PROJECT#p1"), "sk": s("BUCKET#Not_Valid")})
	if resp := f.deliver(f.streamRecords()); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures: %v", seqs(resp))
	}
	got := map[string][]mototest.ReceivedEvent{}
	for _, ev := range bus.Receive(t, 2) {
		got[ev.DetailType] = append(got[ev.DetailType], ev)
		if err := auditschema.Validate(ev.DetailType, ev.Detail); err != nil {
			t.Errorf("%s does not match its schema: %v", ev.DetailType, err)
		}
	}
	if extra := bus.ReceiveAll(t); len(extra) != 0 {
		t.Errorf("unexpected events: %+v", extra)
	}
	var changed broker.PolicyChangedDetail
	if len(got[broker.DetailPolicyChanged]) != 1 || json.Unmarshal(got[broker.DetailPolicyChanged][0].Detail, &changed) != nil {
		t.Fatalf("PolicyChanged events: %+v", got[broker.DetailPolicyChanged])
	}
	if changed.UserID != "alice" || changed.PolicyVersion != f.item("alice").Version || len(changed.Added) != 1 || changed.ChangeID == "" {
		t.Errorf("PolicyChanged = %+v", changed)
	}
	var rejected broker.ProjectionRejectedDetail
	if len(got[broker.DetailProjectionRejected]) != 1 || json.Unmarshal(got[broker.DetailProjectionRejected][0].Detail, &rejected) != nil {
		t.Fatalf("ProjectionRejected events: %+v", got[broker.DetailProjectionRejected])
	}
	if rejected.SK != "BUCKET#Not_Valid" || rejected.Reason == "" {
		t.Errorf("ProjectionRejected = %+v", rejected)
	}
}

// With the bus down, the change is committed (revocation is never held up
// by the audit trail) and handed back; its event waits in the item's outbox
// and reaches the bus, once, when the redelivered change finds the bus back.
// Partial failures are retried entry by entry.
func TestNoPolicyChangedIsLostToBusFailures(t *testing.T) {
	f := newFixture(t)
	bus, flaky := f.withBus(t)
	f.member("alice", "p1", "read")
	f.member("bob", "p1", "read")
	f.bucket("p1", "lake", "")
	recs := f.streamRecords()

	flaky.set(true, 0)
	if resp := f.deliver(recs); len(resp.BatchItemFailures) == 0 {
		t.Fatal("bus down: the changes must be handed back")
	}
	for _, u := range []string{"alice", "bob"} {
		if f.item(u).Empty() {
			t.Fatalf("bus down: %s's policy must still be committed", u)
		}
	}
	if evs := bus.ReceiveAll(t); len(evs) != 0 {
		t.Fatalf("events got through an outage: %+v", evs)
	}

	flaky.set(false, 2) // back, but refusing an entry in each of the next two calls
	if resp := f.deliver(recs); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("redelivery failed: %v", seqs(resp))
	}
	evs := bus.Receive(t, 2)
	users := map[string]int{}
	for _, ev := range evs {
		var d broker.PolicyChangedDetail
		if err := json.Unmarshal(ev.Detail, &d); err != nil || ev.DetailType != broker.DetailPolicyChanged {
			t.Fatalf("unexpected event %s %s", ev.DetailType, ev.Detail)
		}
		users[d.UserID]++
	}
	if users["alice"] != 1 || users["bob"] != 1 {
		t.Errorf("PolicyChanged per user = %v, want one each", users)
	}
	flaky.set(false, 0)
	f.deliver(recs)
	if extra := bus.ReceiveAll(t); len(extra) != 0 {
		t.Errorf("a third delivery re-sent %d events", len(extra))
	}
}
