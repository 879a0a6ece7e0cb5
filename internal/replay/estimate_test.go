package replay

import (
	"testing"
	"time"
)

func TestEstimate(t *testing.T) {
	tests := []struct {
		name         string
		items, total int64
		elapsed      time.Duration
		rate         float64
		eta          time.Duration
	}{
		{"a quarter done in 10s leaves 30s", 250, 1000, 10 * time.Second, 25, 30 * time.Second},
		{"unknown total gives a rate but no ETA", 250, 0, 10 * time.Second, 25, 0},
		{"a total already passed (stale count) gives no ETA", 1200, 1000, 10 * time.Second, 120, 0},
		{"nothing read yet gives nothing", 0, 1000, 10 * time.Second, 0, 0},
		{"no time elapsed gives nothing", 10, 1000, 0, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rate, eta := estimate(tc.items, tc.total, tc.elapsed)
			if rate != tc.rate || eta != tc.eta {
				t.Errorf("estimate = %v/s, ETA %v; want %v/s, ETA %v", rate, eta, tc.rate, tc.eta)
			}
		})
	}
}
