package projector_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/projector"
)

// heldQueue keeps the pages sent to it for the test to deliver; fail, when
// set, refuses a send.
type heldQueue struct {
	mu     sync.Mutex
	bodies []string
	delays []time.Duration
	fail   func(n int) error // n: sends so far
	sends  int
}

func (q *heldQueue) Send(_ context.Context, bodies []string, delay time.Duration) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.sends++
	if q.fail != nil {
		if err := q.fail(q.sends); err != nil {
			return err
		}
	}
	for _, b := range bodies {
		q.bodies = append(q.bodies, b)
		q.delays = append(q.delays, delay)
	}
	return nil
}

// take removes and returns the pages sent so far.
func (q *heldQueue) take() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.bodies
	q.bodies, q.delays = nil, nil
	return out
}

// work delivers each page to the worker as its own SQS event, as the
// queue's event source does, and returns the message ids it failed.
func work(t *testing.T, p *projector.Projector, bodies []string) []string {
	t.Helper()
	var failed []string
	for i, b := range bodies {
		payload, _ := json.Marshal(events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m" + string(rune('a'+i)), Body: b, EventSource: "aws:sqs"}}})
		resp, err := (&projector.Handler{Projector: p}).Handle(context.Background(), payload)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range resp.BatchItemFailures {
			failed = append(failed, f.ItemIdentifier)
		}
	}
	return failed
}

// A fan-out of more than a page sends every page to the workers and
// releases the shard; one whose send fails saves its cursor and hands the
// change back, and the redelivery sends from that cursor on, not from the
// start. The workers then bring every member in line.
func TestAQueuedFanoutSendsEveryPageOnceAndResumesAtItsCursor(t *testing.T) {
	f := newFixture(t)
	f.bucket("p1", "lake", "")
	users := f.members("p1", 35)
	f.unbucket("p1", "lake")
	removal := projector.Change{EventID: "removal-1", EventName: "REMOVE", SequenceNumber: "900",
		Keys: broker.SourceItem{PK: "PROJECT#p1", SK: "BUCKET#lake"}}
	q := &heldQueue{fail: func(n int) error {
		if n == 3 {
			return errors.New("queue unreachable")
		}
		return nil
	}}
	p := *f.proj
	p.PageSize, p.Pages = 10, q

	if out := p.Process(context.Background(), []projector.Change{removal}); len(out.Failed) != 1 {
		t.Fatalf("want the change handed back when a page cannot be sent, got %+v", out)
	}
	first := q.take()
	if len(first) != 2 {
		t.Fatalf("%d pages sent before the failure, want 2", len(first))
	}
	if out := p.Process(context.Background(), []projector.Change{removal}); len(out.Failed) != 0 {
		t.Fatalf("redelivery failed: %+v", out)
	}
	rest := q.take()
	seen := map[string]int{}
	for _, b := range append(first, rest...) {
		var pg projector.Page
		if err := json.Unmarshal([]byte(b), &pg); err != nil {
			t.Fatal(err)
		}
		for _, m := range pg.Members {
			seen[m.UserID]++
		}
	}
	for _, u := range users {
		if seen[u] != 1 {
			t.Errorf("%s sent in %d pages, want exactly one", u, seen[u])
		}
	}
	for _, u := range users {
		if got := f.item(u); got.Empty() {
			t.Fatalf("%s lost the bucket before any worker ran: the stream's invocation applied pages itself", u)
		}
	}
	if failed := work(t, &p, append(first, rest...)); len(failed) > 0 {
		t.Fatalf("pages failed: %v", failed)
	}
	for _, u := range users {
		if got := f.item(u); !got.Empty() {
			t.Errorf("%s keeps %v", u, places(got))
		}
	}
	f.assertConverged(users...)
}

// A fan-out that fits one page is applied in the stream's invocation:
// the queue would only add its latency.
func TestAOnePageFanoutIsAppliedInTheInvocation(t *testing.T) {
	f := newFixture(t)
	f.bucket("p1", "lake", "")
	users := f.members("p1", 5)
	f.unbucket("p1", "lake")
	q := &heldQueue{}
	p := *f.proj
	p.PageSize, p.Pages = 10, q
	out := p.Process(context.Background(), []projector.Change{{EventID: "rm", EventName: "REMOVE", SequenceNumber: "9",
		Keys: broker.SourceItem{PK: "PROJECT#p1", SK: "BUCKET#lake"}}})
	if len(out.Failed) != 0 || out.Changed != len(users) || len(q.take()) != 0 {
		t.Fatalf("fan-out = %+v, want %d members changed in the invocation and no page sent", out, len(users))
	}
}

// A worker whose page has a member that fails sends a page of just that
// member again, later, and acknowledges the message; the other members are
// done. After maxPageAttempts pages the message fails, for the queue's
// redrive and dead-letter queue.
func TestAWorkerSendsItsFailedMembersAgainThenGivesUpToTheDeadLetterQueue(t *testing.T) {
	f := newFixture(t)
	f.bucket("p1", "lake", "")
	users := f.members("p1", 12)
	f.unbucket("p1", "lake")
	poisoned := users[3]
	q := &heldQueue{}
	p := *f.proj
	p.PageSize, p.Pages = 5, q
	p.Store = &countingStore{PolicyStore: f.store, claims: map[string]int{}, fail: func(u string) error {
		if u == poisoned {
			return broker.Errorf(broker.Transient, "claim", "throttled")
		}
		return nil
	}}
	if out := p.Process(context.Background(), []projector.Change{{EventID: "rm", EventName: "REMOVE", SequenceNumber: "9",
		Keys: broker.SourceItem{PK: "PROJECT#p1", SK: "BUCKET#lake"}}}); len(out.Failed) != 0 {
		t.Fatalf("sending pages failed: %+v", out)
	}
	pages := q.take()
	for attempt := 1; ; attempt++ {
		failed := work(t, &p, pages)
		retry := q.take()
		if attempt < 5 {
			if len(failed) != 0 || len(retry) != 1 {
				t.Fatalf("attempt %d: %d messages failed, %d pages sent again; want 0 and 1", attempt, len(failed), len(retry))
			}
			var pg projector.Page
			_ = json.Unmarshal([]byte(retry[0]), &pg)
			if len(pg.Members) != 1 || pg.Members[0].UserID != poisoned || pg.Attempt != attempt {
				t.Fatalf("attempt %d sent %+v, want the poisoned member alone", attempt, pg)
			}
			pages = retry
			continue
		}
		if len(failed) != 1 || len(retry) != 0 {
			t.Fatalf("last attempt: %d messages failed, %d pages sent; want the message failed and none sent", len(failed), len(retry))
		}
		break
	}
	for _, u := range users {
		if got := f.item(u); got.Empty() != (u != poisoned) {
			t.Errorf("%s: %v", u, places(got))
		}
	}
}
