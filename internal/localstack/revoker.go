package localstack

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/credbroker/credbroker/internal/backoff"
	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/revoke"
)

// busRule stands in, on the local stack, for the audit bus's rule that
// invokes the revoker on AWS with every narrowing PolicyChanged event:
// events the bus accepted go on to the revoker's own handler, the code the
// function runs. moto could deliver them through a rule to a queue, but it
// spends about 150 ms of its single process on each event a rule delivers
// (BENCHMARKS.md), which every narrowing of a busy local stack would pay.
type busRule struct {
	next    broker.Auditor
	handler *revoke.Handler
	log     *slog.Logger

	mu      sync.Mutex
	pending []json.RawMessage
	wake    chan struct{}
}

func newBusRule(next broker.Auditor, h *revoke.Handler, log *slog.Logger) *busRule {
	return &busRule{next: next, handler: h, log: log, wake: make(chan struct{}, 1)}
}

// Emit implements broker.Auditor: the bus first, then the rule.
func (r *busRule) Emit(ctx context.Context, evs ...broker.AuditEvent) error {
	if err := r.next.Emit(ctx, evs...); err != nil {
		return err
	}
	for _, ev := range evs {
		d, ok := ev.Detail.(broker.PolicyChangedDetail)
		if !ok || d.RevokeBefore == nil {
			continue // the rule's pattern: narrowing PolicyChanged events
		}
		detail, err := json.Marshal(d)
		if err != nil {
			return err
		}
		payload, err := json.Marshal(events.EventBridgeEvent{Version: "0", ID: d.ChangeID, DetailType: ev.DetailType,
			Source: ev.Source, Time: ev.Time, Region: "us-east-1", Resources: []string{}, Detail: detail})
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.pending = append(r.pending, payload)
		r.mu.Unlock()
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return nil
}

// run invokes the revoker with each event, in order, retrying failures with
// backoff as Lambda retries an asynchronous invocation; every prune period
// it prunes expired entries, as the schedule does on AWS.
func (r *busRule) run(ctx context.Context, prune time.Duration) {
	tick := time.NewTicker(prune)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			r.invoke(ctx, json.RawMessage(`{"action":"prune"}`))
		case <-r.wake:
		}
		for {
			r.mu.Lock()
			if len(r.pending) == 0 {
				r.mu.Unlock()
				break
			}
			payload := r.pending[0]
			r.pending = r.pending[1:]
			r.mu.Unlock()
			r.invoke(ctx, payload)
		}
	}
}

func (r *busRule) invoke(ctx context.Context, payload json.RawMessage) {
	for attempt := 1; ; attempt++ {
		_, err := r.handler.Invoke(ctx, payload)
		if err == nil || ctx.Err() != nil || errors.Is(err, revoke.ErrRefused) {
			return
		}
		r.log.Warn("retrying the revoker", "attempt", attempt)
		if backoff.Sleep(ctx, backoff.Jitter(attempt, 200*time.Millisecond, 10*time.Second)) != nil {
			return
		}
	}
}
