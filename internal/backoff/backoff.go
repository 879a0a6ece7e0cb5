// Package backoff is the one retry wait of the adapters: full jitter under
// a ceiling that doubles per attempt, and a sleep that the context cuts
// short.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Jitter returns a random wait in (0, min(base·2^(attempt-1), max)] for
// attempt 1, 2, ...: spread so that retrying clients do not collide again.
func Jitter(attempt int, base, max time.Duration) time.Duration {
	ceil := base
	for i := 1; i < attempt && ceil < max; i++ {
		ceil *= 2
	}
	ceil = min(ceil, max)
	return time.Duration(rand.Int64N(int64(ceil))) + 1
}

// Sleep waits d, or returns ctx's error as soon as ctx ends.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
