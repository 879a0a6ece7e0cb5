package localstack

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/credbroker/credbroker/internal/backoff"
	"github.com/credbroker/credbroker/internal/projector"
)

// The page queue's event source in template.yaml: one page per invocation,
// at most the default ProjectorWorkerConcurrency invocations at once, a
// failed page received again after a backoff and dropped, loudly, on its
// fifth receive (FanoutDLQ on AWS).
const (
	PageWorkers     = 4
	PageMaxReceives = 5
)

// pageQueue stands in, on the local stack, for FanoutQueue and its event
// source: the projector sends its fan-out pages here and the workers hand
// each to the projector function's own handler, as Lambda's poller would.
// moto's SQS could hold them, but polling it would add its latency to every
// page of a fan-out the local stack exists to show quickly.
type pageQueue struct {
	handler *projector.Handler
	log     *slog.Logger

	mu      sync.Mutex
	pending []message
	seq     int
	wake    chan struct{}
}

func newPageQueue(h *projector.Handler, log *slog.Logger) *pageQueue {
	return &pageQueue{handler: h, log: log, wake: make(chan struct{}, PageWorkers)}
}

// Send implements projector.Queue.
func (q *pageQueue) Send(_ context.Context, bodies []string, delay time.Duration) error {
	q.mu.Lock()
	for _, b := range bodies {
		q.seq++
		q.pending = append(q.pending, message{id: "page-" + strconv.Itoa(q.seq), body: b, notUntil: time.Now().Add(delay)})
	}
	q.mu.Unlock()
	for range bodies {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// run feeds the workers until ctx ends.
func (q *pageQueue) run(ctx context.Context) {
	var wg sync.WaitGroup
	for range PageWorkers {
		wg.Go(func() {
			for ctx.Err() == nil {
				m, ok := q.next()
				if !ok {
					select {
					case <-ctx.Done():
					case <-q.wake:
					case <-time.After(100 * time.Millisecond): // a delayed page's time
					}
					continue
				}
				q.invoke(ctx, m)
			}
		})
	}
	wg.Wait()
}

// next takes the first page that is due.
func (q *pageQueue) next() (message, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := time.Now()
	for i, m := range q.pending {
		if !now.Before(m.notUntil) {
			q.pending = append(q.pending[:i:i], q.pending[i+1:]...)
			return m, true
		}
	}
	return message{}, false
}

func (q *pageQueue) invoke(ctx context.Context, m message) {
	payload, err := json.Marshal(events.SQSEvent{Records: []events.SQSMessage{{MessageId: m.id, Body: m.body, EventSource: "aws:sqs"}}})
	if err != nil {
		q.log.Error("encode page event", "err", err)
		return
	}
	resp, err := q.handler.Handle(ctx, payload)
	if err == nil && len(resp.BatchItemFailures) == 0 {
		return
	}
	m.receives++
	if m.receives >= PageMaxReceives {
		q.log.Error("fan-out page dropped after its last receive (FanoutDLQ on AWS)", "page", m.body)
		return
	}
	m.notUntil = time.Now().Add(backoff.Jitter(m.receives, 200*time.Millisecond, 10*time.Second))
	q.mu.Lock()
	q.pending = append(q.pending, m)
	q.mu.Unlock()
}
