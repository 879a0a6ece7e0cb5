package auditqueue_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/auditqueue"
	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/testkit/brokertest"
)

func ev(id string) broker.AuditEvent {
	return broker.AuditEvent{DetailType: broker.DetailCredentialsDenied, Detail: id}
}

func ids(evs []broker.AuditEvent) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Detail.(string))
	}
	return out
}

func newQueue(bus *brokertest.Auditor, max int) *auditqueue.Queue {
	return &auditqueue.Queue{Next: bus, Max: max, Logger: slog.New(slog.DiscardHandler)}
}

func TestEmitOnlyQueuesAndFlushDeliversInOrder(t *testing.T) {
	bus := &brokertest.Auditor{}
	q := newQueue(bus, 0)
	for _, id := range []string{"a", "b", "c"} {
		if err := q.Emit(context.Background(), ev(id)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(bus.Of(broker.DetailCredentialsDenied)); n != 0 || q.Len() != 3 {
		t.Fatalf("Emit sent %d events, queued %d; want 0 and 3", n, q.Len())
	}
	if err := q.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a", "b", "c"}, ids(bus.Of(broker.DetailCredentialsDenied))); diff != "" {
		t.Errorf("delivered (-want +got):\n%s", diff)
	}
}

func TestAFailedFlushKeepsEverythingForTheNext(t *testing.T) {
	bus := &brokertest.Auditor{}
	bus.SetFail(func([]broker.AuditEvent) error { return broker.Errorf(broker.Transient, "emit", "bus down") })
	q := newQueue(bus, 0)
	_ = q.Emit(context.Background(), ev("a"), ev("b"))
	if err := q.Flush(context.Background()); err == nil {
		t.Fatal("flush with the bus down succeeded")
	}
	_ = q.Emit(context.Background(), ev("c"))
	bus.SetFail(nil)
	if err := q.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a", "b", "c"}, ids(bus.Of(broker.DetailCredentialsDenied))); diff != "" {
		t.Errorf("delivered (-want +got):\n%s", diff)
	}
}

// An event the bus refuses for good is dropped alone; the others go out.
func TestARefusedEventDoesNotBlockTheOthers(t *testing.T) {
	bus := &brokertest.Auditor{}
	bus.SetFail(func(evs []broker.AuditEvent) error {
		for _, e := range evs {
			if e.Detail == "poison" {
				return broker.ErrEventRejected
			}
		}
		return nil
	})
	q := newQueue(bus, 0)
	_ = q.Emit(context.Background(), ev("a"), ev("poison"), ev("b"))
	if err := q.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a", "b"}, ids(bus.Of(broker.DetailCredentialsDenied))); diff != "" {
		t.Errorf("delivered (-want +got):\n%s", diff)
	}
	if q.Len() != 0 {
		t.Errorf("%d events left", q.Len())
	}
}

func TestAFullQueueDropsTheOldest(t *testing.T) {
	bus := &brokertest.Auditor{}
	q := newQueue(bus, 2)
	_ = q.Emit(context.Background(), ev("a"), ev("b"), ev("c"))
	_ = q.Flush(context.Background())
	if diff := cmp.Diff([]string{"b", "c"}, ids(bus.Of(broker.DetailCredentialsDenied))); diff != "" {
		t.Errorf("delivered (-want +got):\n%s", diff)
	}
}

// Run sends what arrives while it runs and, once stopped, what is left.
func TestRunDeliversAndFlushesWhenStopped(t *testing.T) {
	bus := &brokertest.Auditor{}
	delivered := make(chan struct{}, 8)
	bus.SetFail(func([]broker.AuditEvent) error { delivered <- struct{}{}; return nil })
	q := newQueue(bus, 0)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.Run(ctx, time.Minute); close(done) }()
	_ = q.Emit(context.Background(), ev("a"))
	<-delivered
	stop()
	<-done
	_ = q.Emit(context.Background(), ev("late")) // after Run: stays queued
	if diff := cmp.Diff([]string{"a"}, ids(bus.Of(broker.DetailCredentialsDenied))); diff != "" {
		t.Errorf("delivered (-want +got):\n%s", diff)
	}
	if q.Len() != 1 {
		t.Errorf("queue holds %d, want the late event", q.Len())
	}
}

func TestDeliverReturnsWhatIsLeftToSend(t *testing.T) {
	bus := &brokertest.Auditor{}
	down := errors.New("bus down")
	bus.SetFail(func(evs []broker.AuditEvent) error {
		if len(evs) > 1 {
			return broker.ErrEventRejected
		}
		switch evs[0].Detail {
		case "poison":
			return broker.ErrEventRejected
		case "later":
			return down
		}
		return nil
	})
	left, err := auditqueue.Deliver(context.Background(), bus, slog.New(slog.DiscardHandler), ev("a"), ev("poison"), ev("later"))
	if !errors.Is(err, down) || !cmp.Equal(ids(left), []string{"later"}) {
		t.Errorf("Deliver left %v, %v; want [later] and the bus error", ids(left), err)
	}
}
