// Package auditqueue sends audit events that no answer waits for: every
// CredentialsDenied, and CredentialsIssued in best-effort mode. Emit only
// queues (it never blocks on the bus); Flush sends what is queued.
//
// Who calls Flush depends on where the code runs. A long-lived server (the
// local stack) runs Run, which flushes whenever events arrive. In Lambda the
// execution environment is frozen as soon as an invocation is over, so a
// background goroutine would stall until the next invocation: there the
// credentials function registers an internal Lambda extension
// (internal/lambdaext) that flushes after each invocation's answer has gone
// out, and flushes once more on SIGTERM at shutdown.
//
// An event is lost only when the queue is full (the oldest go first), when
// the bus refuses it for good, or when the process dies before a flush
// succeeds; each loss but the last is logged as an error with the event.
package auditqueue

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/credbroker/credbroker/internal/backoff"
	"github.com/credbroker/credbroker/internal/broker"
)

// DefaultMax is the number of events kept while the bus is unreachable.
const DefaultMax = 1000

// Queue is a broker.Auditor whose Emit returns at once. The zero value is
// not usable: set Next. It is safe for concurrent use.
type Queue struct {
	// Next is the auditor that really sends (the EventBridge emitter).
	Next broker.Auditor
	// Max bounds the queue (default DefaultMax).
	Max    int
	Logger *slog.Logger

	mu      sync.Mutex
	events  []broker.AuditEvent
	wake    chan struct{}
	sending sync.Mutex // one Flush at a time, so an event is never sent twice at once
}

var _ broker.Auditor = (*Queue)(nil)

func (q *Queue) logger() *slog.Logger { return cmp.Or(q.Logger, slog.Default()) }

func (q *Queue) signal() chan struct{} {
	if q.wake == nil {
		q.wake = make(chan struct{}, 1)
	}
	return q.wake
}

// Emit queues the events and returns nil. When the queue is full the
// oldest events are dropped, each logged as an error in full.
func (q *Queue) Emit(_ context.Context, evs ...broker.AuditEvent) error {
	q.mu.Lock()
	q.events = append(q.events, evs...)
	var dropped []broker.AuditEvent
	if over := len(q.events) - cmp.Or(q.Max, DefaultMax); over > 0 {
		dropped = q.events[:over]
		q.events = q.events[over:]
	}
	wake := q.signal()
	q.mu.Unlock()
	for _, ev := range dropped {
		q.logger().Error("audit queue full: event dropped", "detailType", ev.DetailType, "detail", ev.Detail)
	}
	select {
	case wake <- struct{}{}:
	default:
	}
	return nil
}

// Len returns the number of queued events.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.events)
}

// Flush sends every queued event. Events the bus refused for good are
// logged as dead letters and dropped; on any other failure all unsent
// events go back to the front of the queue (some may have been accepted
// already: delivery is at least once) and the error is returned.
func (q *Queue) Flush(ctx context.Context) error {
	q.sending.Lock()
	defer q.sending.Unlock()
	q.mu.Lock()
	batch := q.events
	q.events = nil
	q.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if retry, err := Deliver(ctx, q.Next, q.logger(), batch...); err != nil {
		q.mu.Lock()
		q.events = append(retry, q.events...)
		q.mu.Unlock()
		return err
	}
	return nil
}

// Deliver sends events through a. An event the bus refuses for good can
// never be delivered: it is logged in full as a dead letter and dropped,
// instead of failing every later attempt and holding up the events after
// it. It returns the events still to send, with the error, when anything
// else failed (some of them may have been accepted: delivery is at least
// once).
func Deliver(ctx context.Context, a broker.Auditor, log *slog.Logger, events ...broker.AuditEvent) ([]broker.AuditEvent, error) {
	err := a.Emit(ctx, events...)
	if !errors.Is(err, broker.ErrEventRejected) {
		if err != nil {
			return events, err
		}
		return nil, nil
	}
	var retry []broker.AuditEvent
	var errs []error
	for _, ev := range events {
		switch err := a.Emit(ctx, ev); {
		case err == nil:
		case errors.Is(err, broker.ErrEventRejected):
			log.Error("audit event refused by the bus for good; dropped (dead letter)",
				"detailType", ev.DetailType, "detail", ev.Detail, "err", err)
		default:
			retry, errs = append(retry, ev), append(errs, err)
		}
	}
	return retry, errors.Join(errs...)
}

// Run flushes whenever events arrive, each flush bounded by timeout,
// retrying failures with backoff, until ctx ends; then it flushes once more
// within timeout. For long-lived processes, not Lambda.
func (q *Queue) Run(ctx context.Context, timeout time.Duration) {
	q.mu.Lock()
	wake := q.signal()
	q.mu.Unlock()
	attempt := 0
	for {
		select {
		case <-ctx.Done():
			q.FlushWithin(context.WithoutCancel(ctx), timeout)
			return
		case <-wake:
		}
		for q.Len() > 0 {
			if err := q.FlushWithin(ctx, timeout); err == nil {
				attempt = 0
				continue
			}
			attempt++
			if backoff.Sleep(ctx, backoff.Jitter(attempt, 100*time.Millisecond, 5*time.Second)) != nil {
				break
			}
		}
	}
}

// FlushWithin is Flush bounded by timeout; a failure is logged.
func (q *Queue) FlushWithin(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := q.Flush(ctx)
	if err != nil {
		q.logger().Warn("audit events not yet delivered; kept for the next flush", "queued", q.Len(), "err", err)
	}
	return err
}
