package localstack

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/credbroker/credbroker/internal/backoff"
	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/revoker"
)

// busRule stands in, on the local stack, for the audit bus's rule that
// sends every narrowing PolicyChanged event to the revocation queue, and
// for the queue's event source that feeds the revoker from it, as the
// template sets them up on AWS: batches of up to BatchSize events gathered
// for up to Window, at most Concurrency batches at once, a batch's failed
// messages delivered again after a backoff and dropped, loudly, after
// MaxReceives. Events the bus accepted go on to the revoker's own handler,
// the code the function runs. moto could deliver them through a rule to a
// queue, but it spends about 150 ms of its single process on each event a
// rule delivers (docs/benchmarks.md "What limits the local stack"), which every narrowing of a busy local
// stack would pay.
type busRule struct {
	next    broker.Auditor
	handler *revoker.Handler
	log     *slog.Logger

	mu      sync.Mutex
	pending []message
	seq     int
	wake    chan struct{}
}

// The revoker's SQS event source in template.yaml.
const (
	BatchSize   = 1000
	Window      = time.Second
	Concurrency = 2
	MaxReceives = 5
)

type message struct {
	id       string
	body     string
	receives int
	notUntil time.Time
}

func newBusRule(next broker.Auditor, h *revoker.Handler, log *slog.Logger) *busRule {
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
		r.seq++
		r.pending = append(r.pending, message{id: strconv.Itoa(r.seq), body: string(payload)})
		r.mu.Unlock()
	}
	r.poke()
	return nil
}

func (r *busRule) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// run feeds the revoker until ctx ends; every prune period it prunes
// expired entries, as the schedule does on AWS.
func (r *busRule) run(ctx context.Context, prune time.Duration) {
	var wg sync.WaitGroup
	for range Concurrency {
		wg.Go(func() { r.poll(ctx) })
	}
	tick := time.NewTicker(prune)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-tick.C:
			r.invoke(ctx, json.RawMessage(`{"action":"prune"}`))
		}
	}
}

// poll is one of the event source's pollers: it waits for a message,
// gathers a batch for up to Window, and hands it to the revoker.
func (r *busRule) poll(ctx context.Context) {
	for ctx.Err() == nil {
		batch := r.take(BatchSize)
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-r.wake:
			case <-time.After(100 * time.Millisecond): // a retried message's backoff
			}
			continue
		}
		if len(batch) < BatchSize {
			timer := time.NewTimer(Window)
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
			batch = append(batch, r.take(BatchSize-len(batch))...)
		}
		r.deliver(ctx, batch)
		r.poke() // another poller may take what arrived meanwhile
	}
}

// take removes up to n messages that are due.
func (r *busRule) take(n int) []message {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	var out, keep []message
	for _, m := range r.pending {
		if len(out) < n && !now.Before(m.notUntil) {
			out = append(out, m)
		} else {
			keep = append(keep, m)
		}
	}
	r.pending = keep
	return out
}

func (r *busRule) deliver(ctx context.Context, batch []message) {
	ev := events.SQSEvent{Records: make([]events.SQSMessage, len(batch))}
	for i, m := range batch {
		ev.Records[i] = events.SQSMessage{MessageId: m.id, Body: m.body, EventSource: "aws:sqs"}
	}
	resp := r.handler.Batch(ctx, ev)
	failed := map[string]bool{}
	for _, f := range resp.BatchItemFailures {
		failed[f.ItemIdentifier] = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range batch {
		if !failed[m.id] {
			continue
		}
		m.receives++
		if m.receives >= MaxReceives {
			r.log.Error("revocation dropped after its last receive (the dead-letter queue on AWS)", "event", m.body)
			continue
		}
		m.notUntil = time.Now().Add(backoff.Jitter(m.receives, 200*time.Millisecond, 10*time.Second))
		r.pending = append(r.pending, m)
	}
}

// invoke calls the revoker directly, retrying failures with backoff as
// Lambda retries an asynchronous invocation.
func (r *busRule) invoke(ctx context.Context, payload json.RawMessage) {
	for attempt := 1; ; attempt++ {
		_, err := r.handler.Invoke(ctx, payload)
		if err == nil || ctx.Err() != nil || errors.Is(err, revoker.ErrRefused) {
			return
		}
		r.log.Warn("retrying the revoker", "attempt", attempt)
		if backoff.Sleep(ctx, backoff.Jitter(attempt, 200*time.Millisecond, 10*time.Second)) != nil {
			return
		}
	}
}
