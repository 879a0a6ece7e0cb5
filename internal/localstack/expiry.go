package localstack

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/credbroker/credbroker/internal/backoff"
	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/projector"
)

// expiryTimers stand in, on the local stack, for the one-time schedules
// that invoke the projector at a membership's expiry on AWS: a timer on
// this machine's clock invokes the projector's own handler with the same
// payload, so the recompute runs the code the function runs. moto keeps
// EventBridge Scheduler's schedules but never fires them.
type expiryTimers struct {
	ctx     context.Context // the stack's: a timer firing after Stop does nothing
	handler *projector.Handler
	log     *slog.Logger

	mu    sync.Mutex
	armed map[string]*time.Timer // by user and instant, every pending timer
}

func newExpiryTimers(ctx context.Context, h *projector.Handler, log *slog.Logger) *expiryTimers {
	return &expiryTimers{ctx: ctx, handler: h, log: log, armed: map[string]*time.Timer{}}
}

// stop stops the timers that have not fired, when the stack stops.
func (e *expiryTimers) stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, t := range e.armed {
		t.Stop()
	}
}

// Arm implements broker.ExpiryTimer.
func (e *expiryTimers) Arm(_ context.Context, userID string, at time.Time) error {
	key := userID + "@" + at.UTC().Format(time.RFC3339)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.armed[key] != nil || e.ctx.Err() != nil {
		return nil
	}
	e.armed[key] = time.AfterFunc(time.Until(at), func() { e.fire(userID, at, key) })
	return nil
}

// fire invokes the handler, retrying failures with backoff as the
// scheduler's retry policy does on AWS, until the stack stops.
func (e *expiryTimers) fire(userID string, at time.Time, key string) {
	defer func() {
		e.mu.Lock()
		delete(e.armed, key)
		e.mu.Unlock()
	}()
	payload, err := json.Marshal(broker.ExpiryPayload{Expiry: &broker.ExpiryEvent{UserID: userID, At: at}})
	if err != nil {
		e.log.Error("expiry payload", "err", err)
		return
	}
	for attempt := 1; e.ctx.Err() == nil; attempt++ {
		if _, err = e.handler.Handle(e.ctx, payload); err == nil {
			return
		}
		e.log.Warn("expiry recompute failed, retrying", "userId", userID, "expiresAt", at, "attempt", attempt, "err", err)
		if backoff.Sleep(e.ctx, backoff.Jitter(attempt, 100*time.Millisecond, 5*time.Second)) != nil {
			return
		}
	}
}
