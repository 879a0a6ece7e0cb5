package credentials

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// Defaults of Fallback.
const (
	DefaultFallbackInterval = 2 * time.Second
	defaultFallbackTimeout  = time.Second
)

// Fallback keeps, for a warm instance, the deny list's fallback cutoff
// (docs/security.md "After a fallback"): when the list overflowed, IAM
// denies every session issued before it, rounded up to the second, whatever
// the session's tag. Sets cached from before it are dead, and so is
// anything minted while it is still ahead.
//
// It reads the cutoff at most once per Interval, whatever the number of
// requests, in parallel with the request's policy read: a request uses a
// value read at most Interval before it started. A failed read keeps the
// last value known and is logged; it is tried again after Interval. A
// stale value can only hand out credentials that get denied (the client
// then asks again), never broader ones. A nil *Fallback knows of none.
type Fallback struct {
	// Read returns the cutoff, the zero time when there is none
	// (ddbstore.Store.FallbackCutoff).
	Read func(ctx context.Context) (time.Time, error)
	// Interval between reads (default 2 s).
	Interval time.Duration
	// Timeout bounds one read (default 1 s).
	Timeout time.Duration
	Logger  *slog.Logger
	// Now is the clock of the interval (default time.Now).
	Now func() time.Time

	mu     sync.Mutex
	value  time.Time
	readAt time.Time     // when the last read started; zero before the first
	flight chan struct{} // closed when the read in flight ends
}

// Get returns the cutoff as read at most Interval ago, reading it now if
// the last read is older, within ctx. Concurrent callers share one read.
func (f *Fallback) Get(ctx context.Context) time.Time {
	if f == nil || f.Read == nil {
		return time.Time{}
	}
	now := f.now()
	f.mu.Lock()
	if f.flight == nil && (f.readAt.IsZero() || now.Sub(f.readAt) >= cmp.Or(f.Interval, DefaultFallbackInterval)) {
		f.readAt = now
		f.flight = make(chan struct{})
		// The read outlives a caller that gives up: the next one gets it.
		go f.refresh(f.flight)
	}
	flight := f.flight
	f.mu.Unlock()
	if flight != nil {
		select {
		case <-flight:
		case <-ctx.Done():
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.value
}

func (f *Fallback) refresh(done chan struct{}) {
	var v time.Time
	var err error
	func() {
		defer func() {
			// A panic here would end the process, not reach Handle's
			// recover.
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), cmp.Or(f.Timeout, defaultFallbackTimeout))
		defer cancel()
		v, err = f.Read(ctx)
	}()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		cmp.Or(f.Logger, slog.Default()).Warn("could not read the deny list's fallback cutoff; keeping the last one known",
			"allBefore", f.value, "err", err)
	} else {
		f.value = v
	}
	f.flight = nil
	close(done)
}

func (f *Fallback) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// ceilSecond is t rounded up to the whole second, as IAM compares token
// issue times.
func ceilSecond(t time.Time) time.Time {
	if d := t.Truncate(time.Second); !d.Equal(t) {
		return d.Add(time.Second)
	}
	return t
}
