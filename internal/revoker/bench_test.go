package revoker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/revoker"
)

// scaleRun is what a run of the revoker's list through a stream of
// narrowings cost, as the real renderer and size checks reckon it.
type scaleRun struct {
	peakEntries  int // entries listed at once
	peakPages    int // pages that denied something at once
	peakLargest  int // characters of the largest page, as IAM counts
	pageWrites   int // page documents written (IAM calls, less version clean-ups)
	fallbacks    int // batches that fell back to revoking everyone
	batches      int
	largestBatch int
}

// simulate feeds the list batches of narrowings: every second, the users
// whose narrowings arrived in it (as the revocation queue hands them to the
// revoker), and a prune every 5 minutes, as the schedule runs it. seen,
// if set, is shown the run so far after each second.
func simulate(lim revoker.Limits, seconds int, arrivals func(second int) []string, seen func(second int, sofar scaleRun)) scaleRun {
	var l revoker.List
	var r scaleRun
	for s := range seconds {
		now := t0.Add(time.Duration(s) * time.Second)
		var add []revoker.Entry
		for _, u := range arrivals(s) {
			e := narrowed(u, time.Time{}, now.Add(4*time.Second))
			e.Reason = "narrowed"
			add = append(add, e)
		}
		if len(add) == 0 && s%300 != 0 {
			if seen != nil {
				seen(s, r)
			}
			continue
		}
		var pages []string
		var ch revoker.Change
		l, pages, ch = revoker.Apply(l, add, now, lim)
		r.batches++
		r.largestBatch = max(r.largestBatch, len(add))
		r.pageWrites += len(ch.Pages)
		if ch.FellBack {
			r.fallbacks++
		}
		r.peakEntries = max(r.peakEntries, len(l.Revoked)+len(l.Users))
		used := 0
		for _, p := range pages {
			if p != "" {
				used++
				r.peakLargest = max(r.peakLargest, broker.PolicySize(p))
			}
		}
		r.peakPages = max(r.peakPages, used)
		l.Unannounced = nil // announced by the run
		if seen != nil {
			seen(s, r)
		}
	}
	return r
}

func (r scaleRun) report(b *testing.B) {
	b.ReportMetric(float64(r.peakEntries), "peak-entries")
	b.ReportMetric(float64(r.peakPages), "peak-pages")
	b.ReportMetric(float64(r.peakLargest), "largest-page-chars")
	b.ReportMetric(float64(r.pageWrites), "page-writes")
	b.ReportMetric(float64(r.fallbacks), "fallbacks")
	b.ReportMetric(float64(r.batches), "batches")
}

// Two hours of one narrowing a second, each of a different user: with
// 15-minute sessions (the default) and with 1-hour ones (the base role's
// maximum), at AWS's default quota of 10 managed policies a role (9 pages
// beside the ceiling) and with the quota raised to 20.
func BenchmarkSustainedChurn(b *testing.B) {
	for _, c := range []struct {
		name    string
		session time.Duration
		budgets []int
	}{
		{"15m-sessions/default-quota", 15 * time.Minute, defaultBudgets},
		{"1h-sessions/default-quota", time.Hour, defaultBudgets},
		{"1h-sessions/quota-20", time.Hour, append([]int{10240 - 256}, repeat(6144-128, 19)...)},
	} {
		b.Run(c.name, func(b *testing.B) {
			lim := revoker.Limits{MaxSession: c.session, Margin: time.Minute, Budgets: c.budgets}
			var r scaleRun
			for b.Loop() {
				r = simulate(lim, 2*3600, func(s int) []string { return []string{fmt.Sprintf("churn-%06d", s)} }, nil)
			}
			r.report(b)
		})
	}
}

// One change narrows every member of a 1,000-member project at once: the
// queue hands the revoker batches of up to 1,000 within a second; the
// figures hold whatever the split (here one batch, and ten of 100).
func BenchmarkBulkNarrowing(b *testing.B) {
	for _, perBatch := range []int{1000, 100} {
		b.Run(fmt.Sprintf("1000-members/batches-of-%d", perBatch), func(b *testing.B) {
			lim := revoker.Limits{MaxSession: 15 * time.Minute, Margin: time.Minute, Budgets: defaultBudgets}
			var r scaleRun
			for b.Loop() {
				r = simulate(lim, 30, func(s int) []string {
					var users []string
					for i := s * perBatch; i < min((s+1)*perBatch, 1000); i++ {
						users = append(users, user(i))
					}
					return users
				}, nil)
			}
			r.report(b)
		})
	}
}

// The targets the benchmarks measure, as a test (shorter runs, as long
// as it takes the list to reach its steady size): no fallback, the pages
// in IAM's limits, and page writes bounded by batches, not by members.
// The churn is judged from the combined run just before its bulk change,
// which saves the unit tier a second 16-minute simulation.
func TestScaleTargetsHold(t *testing.T) {
	lim := revoker.Limits{MaxSession: 15 * time.Minute, Margin: time.Minute, Budgets: defaultBudgets}
	thousand := func() []string {
		var users []string
		for i := range 1000 {
			users = append(users, user(i))
		}
		return users
	}
	bulk := simulate(lim, 1, func(int) []string { return thousand() }, nil)
	if bulk.fallbacks != 0 || bulk.pageWrites > bulk.peakPages || bulk.batches != 1 {
		t.Errorf("1,000 members narrowed at once: %+v; want no fallback and each page written once", bulk)
	}
	// One narrowing a second for 17 minutes (past the 16 minutes an entry
	// is kept, so the list is at its steady size), then 1,000 members at
	// once on top of it.
	const bulkAt = 17 * 60
	var churn scaleRun
	both := simulate(lim, bulkAt+60, func(s int) []string {
		users := []string{fmt.Sprintf("churn-%06d", s)}
		if s == bulkAt {
			users = append(users, thousand()...)
		}
		return users
	}, func(s int, sofar scaleRun) {
		if s == bulkAt-1 {
			churn = sofar
		}
	})
	if churn.fallbacks != 0 || churn.peakLargest > 10240 || churn.peakEntries < 960 {
		t.Errorf("17 minutes of one narrowing a second: %+v; want ~960 entries and no fallback", churn)
	}
	if both.fallbacks != 0 || both.peakEntries < 1960 || both.peakLargest > 10240 {
		t.Errorf("1,000 members narrowed at once during the churn: %+v; want ~1,960 entries and no fallback", both)
	}
}
