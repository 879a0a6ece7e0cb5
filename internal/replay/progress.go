package replay

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Status is a snapshot of a running phase.
type Status struct {
	RunID string
	Mode  Mode
	// Phase is "memberships" (scanning the membership table), "policies"
	// (scanning the policy table), "recheck" or "stream".
	Phase string
	// Items counts the table items (or stream records) read in the phase;
	// Total is the table's approximate item count, 0 when unknown.
	Items, Total int64
	// Users counts the users processed; Changed the items committed;
	// Failed the users or batches that failed.
	Users, Changed, Failed int64
	Elapsed                time.Duration
	// Rate is items per second; ETA the estimated time left, 0 when
	// unknown.
	Rate float64
	ETA  time.Duration
	// At is, for the stream, the creation time of the last record read.
	At   time.Time
	Done bool
}

// Progress receives the status of long runs.
type Progress interface {
	Report(Status)
}

// ProgressFunc adapts a function to Progress.
type ProgressFunc func(Status)

// Report calls f.
func (f ProgressFunc) Report(s Status) { f(s) }

// TerminalProgress writes one human line per status, for an operator
// watching a terminal (stderr).
func TerminalProgress(w io.Writer) Progress {
	var mu sync.Mutex
	return ProgressFunc(func(s Status) {
		mu.Lock()
		defer mu.Unlock()
		_, _ = io.WriteString(w, FormatStatus(s)+"\n")
	})
}

// FormatStatus renders a status as one human line.
func FormatStatus(s Status) string {
	line := fmt.Sprintf("%s %s: %d items", s.Mode, s.Phase, s.Items)
	if s.Total > 0 {
		line += fmt.Sprintf(" of ~%d (%d%%)", s.Total, min(100, s.Items*100/s.Total))
	}
	line += fmt.Sprintf(", %d users, %d changed", s.Users, s.Changed)
	if s.Failed > 0 {
		line += fmt.Sprintf(", %d FAILED", s.Failed)
	}
	line += fmt.Sprintf(", %.0f items/s, %s elapsed", s.Rate, s.Elapsed.Round(time.Second))
	if !s.At.IsZero() {
		line += ", at " + s.At.UTC().Format(time.RFC3339)
	}
	switch {
	case s.Done:
		line += ", done"
	case s.ETA > 0:
		line += ", ETA " + s.ETA.Round(time.Second).String()
	}
	return line
}

// LogProgress writes each status as a structured log line, for Lambda.
func LogProgress(l *slog.Logger) Progress {
	return ProgressFunc(func(s Status) {
		l.Info("progress", "runId", s.RunID, "mode", s.Mode, "phase", s.Phase, "items", s.Items, "total", s.Total,
			"users", s.Users, "changed", s.Changed, "failed", s.Failed, "elapsedMs", s.Elapsed.Milliseconds(),
			"itemsPerSecond", s.Rate, "etaSeconds", int64(s.ETA.Seconds()), "done", s.Done)
	})
}

// estimate returns the rate and, when total is known and not yet reached,
// the time left at that rate. Item counts lag by hours, so a total already
// passed gives no ETA rather than a wrong one.
func estimate(items, total int64, elapsed time.Duration) (rate float64, eta time.Duration) {
	if elapsed <= 0 || items <= 0 {
		return 0, 0
	}
	rate = float64(items) / elapsed.Seconds()
	if total > items {
		eta = time.Duration(float64(total-items) / rate * float64(time.Second))
	}
	return rate, eta
}

// meter counts one phase and reports it periodically.
type meter struct {
	s       *Service
	base    Status
	start   time.Time
	items   atomic.Int64
	users   atomic.Int64
	changed atomic.Int64
	failed  atomic.Int64
	// rejected counts source records that break the rules.
	rejected atomic.Int64
	at       atomic.Int64 // unix ms of the last stream record
	stop     chan struct{}
	done     chan struct{}
}

// startMeter begins a phase; finish must be called.
func (s *Service) startMeter(ctx context.Context, runID string, mode Mode, phase string, total int64) *meter {
	m := &meter{s: s, base: Status{RunID: runID, Mode: mode, Phase: phase, Total: total}, start: s.now(),
		stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		if s.Progress == nil {
			return
		}
		t := time.NewTicker(cmp.Or(s.ProgressEvery, 10*time.Second))
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				s.Progress.Report(m.status(false))
			}
		}
	}()
	return m
}

func (m *meter) status(done bool) Status {
	st := m.base
	st.Items, st.Users, st.Changed, st.Failed = m.items.Load(), m.users.Load(), m.changed.Load(), m.failed.Load()
	st.Elapsed = m.s.now().Sub(m.start)
	st.Rate, st.ETA = estimate(st.Items, st.Total, st.Elapsed)
	if ms := m.at.Load(); ms != 0 {
		st.At = time.UnixMilli(ms)
	}
	st.Done = done
	return st
}

// finish stops the periodic reports and sends the last one.
func (m *meter) finish() Status {
	close(m.stop)
	<-m.done
	st := m.status(true)
	if m.s.Progress != nil {
		m.s.Progress.Report(st)
	}
	return st
}

// sizes returns the approximate item counts, or zeros when unknown: an ETA
// is a convenience, never a reason to fail.
func (s *Service) sizes(ctx context.Context) (memberships, policies int64) {
	if s.Sizes == nil {
		return 0, 0
	}
	m, p, err := s.Sizes.ApproxItemCounts(ctx)
	if err != nil {
		s.logger().Warn("table sizes unknown; progress without ETA", "err", err)
		return 0, 0
	}
	return m, p
}
