// Package brokertest holds test doubles of the domain's interfaces that
// several packages' tests share.
package brokertest

import (
	"context"
	"sync"

	"github.com/credbroker/credbroker/internal/broker"
)

// Auditor records what it is given. Fail, when set, decides whether a call
// fails (and records nothing): a hand-written fake for the faults a bus in
// moto cannot be made to produce.
type Auditor struct {
	mu     sync.Mutex
	events []broker.AuditEvent
	Fail   func(events []broker.AuditEvent) error
}

// Emit implements broker.Auditor.
func (a *Auditor) Emit(_ context.Context, evs ...broker.AuditEvent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.Fail != nil {
		if err := a.Fail(evs); err != nil {
			return err
		}
	}
	a.events = append(a.events, evs...)
	return nil
}

// SetFail replaces Fail safely while emitters may run.
func (a *Auditor) SetFail(f func([]broker.AuditEvent) error) {
	a.mu.Lock()
	a.Fail = f
	a.mu.Unlock()
}

// Of returns the recorded events of one detail type, in order.
func (a *Auditor) Of(detailType string) []broker.AuditEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []broker.AuditEvent
	for _, e := range a.events {
		if e.DetailType == detailType {
			out = append(out, e)
		}
	}
	return out
}

// All returns every recorded event, in order.
func (a *Auditor) All() []broker.AuditEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]broker.AuditEvent(nil), a.events...)
}
