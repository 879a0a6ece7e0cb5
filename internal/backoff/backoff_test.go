package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestJitterStaysUnderItsDoublingCeiling(t *testing.T) {
	for attempt := 1; attempt <= 70; attempt++ {
		ceil := time.Second
		if attempt <= 8 {
			ceil = 10 * time.Millisecond << (attempt - 1)
		}
		for range 200 {
			if d := Jitter(attempt, 10*time.Millisecond, time.Second); d <= 0 || d > ceil {
				t.Fatalf("attempt %d: %v outside (0, %v]", attempt, d, ceil)
			}
		}
	}
}

func TestSleepEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep on an ended context = %v", err)
	}
	if err := Sleep(context.Background(), time.Microsecond); err != nil {
		t.Errorf("Sleep = %v", err)
	}
}
