package revoker_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/revoker"
	"github.com/credbroker/credbroker/internal/testkit/iameval"
	"github.com/credbroker/credbroker/internal/testkit/rolesession"
)

// revocationBatch is the BatchSize of the revoker's SQS event source in
// template.yaml (localstack.BatchSize, which internal/samtemplate holds the
// template to): the most narrowings one run applies.
const revocationBatch = 1000

// fanoutRate is how many members a second the projector's fan-out
// narrows: 100,000 in about 20 s
// (docs/benchmarks.md "Fan-out at 100,000 members (issue 26)").
const fanoutRate = 5000

// maxItemBytes is what ddbstore lets the deny-list item take: DynamoDB's
// 400 KB less its margin.
const maxItemBytes = 400*1024 - 4*1024

// removalSize is the project of the main removal test and the role's
// pages: in the unit tier 3,000 members on page 0 and one managed page
// (965 narrowings), so that two thirds fall back in a few seconds under
// -race; CREDBROKER_REMOVAL_MEMBERS=100000 runs the size of the contract
// at default quotas (4,069 narrowings; BenchmarkRemovalFallback times it).
func removalSize(t testing.TB) (members int, budgets []int) {
	s := os.Getenv("CREDBROKER_REMOVAL_MEMBERS")
	if s == "" {
		return 3000, defaultBudgets[:2]
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < revocationBatch {
		t.Fatalf("CREDBROKER_REMOVAL_MEMBERS=%q: want a number of members of at least %d", s, revocationBatch)
	}
	return n, defaultBudgets
}

// removal is a bucket removed from a project through which every member
// reaches it: each member's item loses the grant, and the projector's
// fan-out narrows them one after the other.
type removal struct {
	project, bucket string
	version         string    // the members' new policy version
	started         time.Time // when the projector narrowed the first member
}

// event is the projector's PolicyChanged for member i's narrowing from
// cutoff prev (zero: none) to cutoff, as its changeEvent writes it, in the
// bus rule's envelope.
func (r removal) event(i int, prev, cutoff time.Time) string {
	u := user(i)
	d := broker.PolicyChangedDetail{
		SchemaVersion: broker.AuditSchemaVersion, ChangeID: fmt.Sprintf("%s/%s/%d", u, r.version, i), UserID: u,
		PolicyVersion: r.version, Added: []broker.Grant{}, Sets: 1, Causes: []string{"project/" + r.project},
		Removed:      []broker.Grant{{Bucket: r.bucket, Access: broker.Read, Projects: []string{r.project}}},
		RemovedCount: 1, ChangedAt: cutoff.Add(-4 * time.Second), RevokeBefore: &cutoff,
		RevokedCutoffTags: []string{broker.CutoffTag(u, prev)},
	}
	if !prev.IsZero() {
		p := prev.UTC()
		d.PreviousRevokeBefore = &p
	}
	b, err := json.Marshal(d)
	if err != nil {
		panic(err)
	}
	return fmt.Sprintf(`{"version":"0","id":%q,"detail-type":"PolicyChanged","source":%q,"account":"1","time":%q,"region":"us-east-1","resources":[],"detail":%s}`,
		d.ChangeID, broker.SourceProjector, d.ChangedAt.Format(time.RFC3339), b)
}

// deliver narrows the project's members, whose cutoffs are prev (zero:
// none), as the fan-out does: member i's write starts i/fanoutRate s after
// the first and takes the next cutoff. The revocation queue hands the
// narrowings to the revoker in batches of revocationBatch, each once its
// last write landed and the batching window (1 s) passed. After each batch
// it calls check. It returns the members' new cutoffs.
func (r removal) deliver(t testing.TB, w *world, prev []time.Time, check func(batch int)) []time.Time {
	t.Helper()
	h := &revoker.Handler{Service: w.svc, Now: func() time.Time { return w.now }, Logger: w.svc.Logger}
	cutoffs := make([]time.Time, len(prev))
	for first := 0; first < len(prev); first += revocationBatch {
		var batch events.SQSEvent
		var landed time.Time
		for i := first; i < min(first+revocationBatch, len(prev)); i++ {
			start := r.started.Add(time.Duration(i) * time.Second / fanoutRate)
			cutoffs[i] = broker.NextCutoff(prev[i], broker.RevokeBefore(start))
			batch.Records = append(batch.Records, events.SQSMessage{MessageId: fmt.Sprintf("%s-%d", r.version, i), EventSource: "aws:sqs",
				Body: r.event(i, prev[i], cutoffs[i])})
			landed = start.Add(broker.CommitWindow)
		}
		w.now = latest(w.now, landed.Add(time.Second))
		if resp := h.Batch(context.Background(), batch); len(resp.BatchItemFailures) != 0 {
			t.Fatalf("the batch of members %d on: %d messages failed", first, len(resp.BatchItemFailures))
		}
		if check != nil {
			check(first / revocationBatch)
		}
	}
	return cutoffs
}

// removalWorld is a revoker at AWS's default quotas (page 0 and 9 managed
// pages) whose warnings of fallbacks go nowhere: a removal past capacity
// logs one a batch.
func removalWorld() *world {
	w := newWorld()
	w.role.budgets = defaultBudgets
	w.svc.Logger = slog.New(slog.DiscardHandler)
	return w
}

// bounded checks, after a batch, what must hold at every step: no
// fallback for everything, no more entries than the pages hold, every
// page within its budget: a batch's work follows the pages, not the
// members narrowed so far.
func bounded(t testing.TB, w *world, batch int) revoker.List {
	t.Helper()
	l, err := w.store.LoadDenyList(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !l.All.Before.IsZero() {
		t.Fatalf("batch %d: a fallback for everything, before %v", batch, l.All.Before)
	}
	if n, most := len(l.Revoked)+len(l.Users), revoker.Capacity(w.role.budgets); n > most {
		t.Fatalf("batch %d: %d entries listed, more than the %d the pages hold", batch, n, most)
	}
	for i, doc := range w.role.current() {
		if broker.PolicySize(doc) > w.role.budgets[i] {
			t.Fatalf("batch %d: page %d takes %d characters of %d", batch, i, broker.PolicySize(doc), w.role.budgets[i])
		}
	}
	return l
}

// fitsTheItem checks that the list fits the deny-list item as ddbstore
// stores it (gzipped JSON), and has not grown since it first fell back
// (then of size first): what falls back leaves nothing behind that grows
// with the members narrowed, which each run would read, write and sort.
func fitsTheItem(t testing.TB, l revoker.List, first int) {
	t.Helper()
	n := itemBytes(t, l)
	if n > maxItemBytes {
		t.Fatalf("the deny list takes %d bytes gzipped, past the item's %d", n, maxItemBytes)
	}
	if n > first+1024 {
		t.Errorf("the deny list took %d bytes gzipped when it first fell back, and %d now", first, n)
	}
}

func itemBytes(t testing.TB, l revoker.List) int {
	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	_, _ = zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return z.Len()
}

// reaches judges, as IAM would, whether the role's pages let a session
// make a call.
func reaches(t testing.TB, pages []string, s rolesession.Session, action, resource string) bool {
	t.Helper()
	pol, err := rolesession.RevocationPolicy(pages...)
	if err != nil {
		t.Fatalf("the role's pages do not parse: %v", err)
	}
	return pol.Allows(iameval.Request{Action: action, Resource: resource, Context: s.Context()})
}

// fellBack splits the members by whether the list still names the tag
// their narrowing revoked: those it does not fell back.
func fellBack(l revoker.List, prev []time.Time) (listed, fell []int) {
	for i := range prev {
		if _, ok := l.Revoked[broker.CutoffTag(user(i), prev[i])]; ok {
			listed = append(listed, i)
		} else {
			fell = append(fell, i)
		}
	}
	return listed, fell
}

// deniedBefore maps each resource the list's fallbacks deny to the time
// before which they deny it.
func deniedBefore(l revoker.List) map[string]time.Time {
	out := map[string]time.Time{}
	for r, c := range l.Resource {
		out[r] = c.Before
	}
	return out
}

func arns(bucket string) []string {
	return []string{"arn:aws:s3:::" + bucket, "arn:aws:s3:::" + bucket + "/*"}
}

// A bucket removed from a project far past what the pages hold narrows
// every member at once: the narrowings that fit are listed by tag (scope
// user), the others fall back to denying that bucket and its objects to
// every session issued before the latest of their cutoffs (scope
// resource), and nothing falls back to everything, at any batch. Other
// buckets stay reachable, sessions issued after the cutoff reach the
// bucket, every member is announced once, and the list stays within the
// pages and the item whatever the number of members.
func TestABucketRemovedFromAProjectPastCapacityIsDeniedAloneNotEveryone(t *testing.T) {
	members, budgets := removalSize(t)
	w := removalWorld()
	w.role.budgets = budgets
	lake := removal{project: "atlas", bucket: "lake", version: "v2", started: t0}
	prev := make([]time.Time, members)
	for i := range prev {
		if i%3 == 0 {
			prev[i] = t0.Add(-2 * time.Hour) // narrowed before, long expired
		}
	}
	firstFallback := 0 // the list's size when it first fell back
	cutoffs := lake.deliver(t, w, prev, func(batch int) {
		if l := bounded(t, w, batch); len(l.Resource) > 0 && firstFallback == 0 {
			firstFallback = itemBytes(t, l)
		}
	})

	l := bounded(t, w, -1)
	fitsTheItem(t, l, firstFallback)
	listed, fell := fellBack(l, prev)
	if want := revoker.Capacity(budgets); len(listed) != want || len(fell) != members-want {
		t.Fatalf("%d members listed by tag and %d fallen back; want the %d the pages hold and the rest", len(listed), len(fell), want)
	}
	var cutoff time.Time // the latest of the fallen-back narrowings'
	for _, i := range fell {
		cutoff = latest(cutoff, cutoffs[i])
	}
	if diff := cmp.Diff(map[string]time.Time{arns("lake")[0]: cutoff, arns("lake")[1]: cutoff}, deniedBefore(l)); diff != "" {
		t.Fatalf("the resources denied, and before when (-want +got):\n%s", diff)
	}

	pages := w.role.current()
	at := cutoff.Truncate(time.Second).Add(time.Second) // the deny's whole second
	old := t0.Add(-time.Minute)
	fallen, kept := user(fell[len(fell)-1]), user(listed[0])
	for _, c := range []struct {
		name      string
		s         rolesession.Session
		lake      bool
		elsewhere bool
	}{
		{"a bystander's session from before the removal reaches other buckets only", session("bystander", time.Time{}, old), false, true},
		{"a fallen-back member's old session reaches other buckets only", session(fallen, prev[fell[len(fell)-1]], old), false, true},
		{"a listed member's old session reaches nothing (its tag is revoked)", session(kept, prev[listed[0]], old), false, false},
		{"a bystander's session of the second before the cutoff's is denied the bucket", session("bystander", time.Time{}, at.Add(-time.Second)), false, true},
		{"a bystander's session of the cutoff's second reaches the bucket", session("bystander", time.Time{}, at), true, true},
		{"a fallen-back member's session minted from its narrowed item reaches both", session(fallen, cutoffs[fell[len(fell)-1]], at), true, true},
	} {
		for _, call := range []struct {
			action, resource string
			want             bool
		}{
			{"s3:GetObject", "arn:aws:s3:::lake/raw/k", c.lake},
			{"s3:ListBucket", "arn:aws:s3:::lake", c.lake},
			{"s3:GetObject", "arn:aws:s3:::other/k", c.elsewhere},
		} {
			if got := reaches(t, pages, c.s, call.action, call.resource); got != call.want {
				t.Errorf("%s: %s on %s allowed %v", c.name, call.action, call.resource, got)
			}
		}
	}

	member := map[string]int{}
	for i := range members {
		member[user(i)] = i
	}
	announced := map[string]int{}
	for _, ev := range w.revoked() {
		if ev.Scope != broker.ScopeUser && ev.Scope != broker.ScopeResource {
			t.Fatalf("an event of scope %q: %+v", ev.Scope, ev)
		}
		if ev.Scope == broker.ScopeResource && (!slices.Equal(ev.Resources, arns("lake")) || ev.IssuedBefore.After(at)) {
			t.Errorf("a resources' event names %v before %v; want the bucket and its objects, before %v at the latest", ev.Resources, ev.IssuedBefore, at)
		}
		for _, u := range ev.UserIDs {
			i, ok := member[u]
			if !ok {
				t.Fatalf("%s announced, not a member", u)
			}
			announced[u]++
			want := broker.ScopeResource
			if _, listed := l.Revoked[broker.CutoffTag(u, prev[i])]; listed {
				want = broker.ScopeUser
			}
			if ev.Scope != want {
				t.Fatalf("member %d announced with scope %s, want %s", i, ev.Scope, want)
			}
		}
	}
	for i := range members {
		if announced[user(i)] != 1 {
			t.Fatalf("member %d announced %d times, want once", i, announced[user(i)])
		}
	}
}

// Two buckets removed from the same project, one change after the other.
// After the first's sessions expired, the second falls back to its own
// bucket alone. While the first's fallback holds, the second's narrowings
// of the members whose first narrowing fell back cannot tell that one
// from a narrowing still on its way (the list forgot it), so their entries
// by time fall back to everything, before the first removal's cutoff:
// sessions issued since it lose the second bucket alone.
func TestWhatASecondBucketRemovedFromTheProjectFallsBackTo(t *testing.T) {
	const members = 1500 // past the 965 narrowings of page 0 and one managed page
	for _, c := range []struct {
		name  string
		after time.Duration // from the first removal to the second
		// firstHeld: the first's fallback still holds, and the members
		// whose first narrowing fell back are denied everything before it.
		firstHeld bool
	}{
		{"after the first removal's sessions expired, its bucket alone", 17 * time.Minute, false},
		{"while the first removal's fallback holds, both buckets, and everything before the first's cutoff", 2 * time.Minute, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := removalWorld()
			w.role.budgets = defaultBudgets[:2]
			none := make([]time.Time, members)
			c1 := removal{project: "atlas", bucket: "lake", version: "v2", started: t0}.deliver(t, w, none, nil)
			l, _ := w.store.LoadDenyList(context.Background())
			_, fell1 := fellBack(l, none)
			first := l.Resource[arns("lake")[0]].Before
			w.now = t0.Add(c.after)
			c2 := removal{project: "atlas", bucket: "sea", version: "v3", started: w.now}.deliver(t, w, c1, nil)
			l, _ = w.store.LoadDenyList(context.Background())
			_, fell2 := fellBack(l, c1)
			var second time.Time
			for _, i := range fell2 {
				second = latest(second, c2[i])
			}
			if len(fell1) == 0 || len(fell2) == 0 || second.IsZero() {
				t.Fatalf("setup: %d and %d members fell back", len(fell1), len(fell2))
			}

			want := map[string]time.Time{arns("sea")[0]: second, arns("sea")[1]: second}
			wantAll := time.Time{}
			if c.firstHeld {
				want[arns("lake")[0]], want[arns("lake")[1]] = first, first
				wantAll = first
			}
			if diff := cmp.Diff(want, deniedBefore(l)); diff != "" || !l.All.Before.Equal(wantAll) {
				t.Fatalf("resources denied (-want +got):\n%s\neverything denied before %v, want %v", diff, l.All.Before, wantAll)
			}

			pages := w.role.current()
			ceil := func(at time.Time) time.Time { return at.Truncate(time.Second).Add(time.Second) }
			sinceFirst := session("bystander", time.Time{}, ceil(first))
			if !reaches(t, pages, sinceFirst, "s3:GetObject", "arn:aws:s3:::other/k") ||
				reaches(t, pages, sinceFirst, "s3:GetObject", "arn:aws:s3:::sea/k") {
				t.Errorf("a session issued since the first removal's cutoff: want other buckets reached and the second's denied\n%q", pages)
			}
			beforeFirst := session("bystander", time.Time{}, ceil(first).Add(-time.Second))
			if got := reaches(t, pages, beforeFirst, "s3:GetObject", "arn:aws:s3:::other/k"); got != !c.firstHeld {
				t.Errorf("a session issued before the first removal's cutoff reaches other buckets: %v, want %v\n%q", got, !c.firstHeld, pages)
			}
			// The trail tells what the pages do: everything before the
			// first's cutoff denied, when it is.
			alls := 0
			for _, ev := range w.revoked() {
				if ev.Scope == broker.ScopeAll {
					if !c.firstHeld || !ev.IssuedBefore.Equal(ceil(first)) {
						t.Fatalf("an event of scope all, before %v", ev.IssuedBefore)
					}
					alls++
				}
			}
			if c.firstHeld && alls == 0 {
				t.Errorf("everything before %v denied, and no CredentialsRevoked of scope all says so", ceil(first))
			}
		})
	}
}

// The fallbacks share page 0's reserve (1,000 characters). A removal that
// falls back at its own second takes a statement of its own: the reserve
// holds four buckets of 20-character names; a fifth turns them into one
// fallback for everything, at the latest of their cutoffs. Within one
// second they share a statement, and eleven fit.
func TestTheFallbacksReserveHoldsTheDocumentedBuckets(t *testing.T) {
	for _, c := range []struct {
		name       string
		sameSecond bool
		fit        int
	}{
		{"each removal at its own second", false, 4},
		{"every removal within one second", true, 11},
	} {
		t.Run(c.name, func(t *testing.T) {
			lim := revoker.Limits{MaxSession: 15 * time.Minute, Margin: time.Minute, Budgets: defaultBudgets[:1]}
			var full []revoker.Entry
			for i := range revoker.Capacity(lim.Budgets) {
				full = append(full, narrowed(user(i), time.Time{}, t0.Add(4*time.Second)))
			}
			l, _, _ := revoker.Apply(revoker.List{}, full, t0, lim)
			var last time.Time
			for k := 1; k <= c.fit+1; k++ {
				at := t0.Add(time.Duration(k) * time.Second)
				if c.sameSecond {
					at = t0.Add(time.Second)
				}
				e := narrowed(user(1000+k), time.Time{}, at.Add(4*time.Second))
				e.Resources = arns(fmt.Sprintf("analytics-raw-%06d", k))
				last = latest(last, e.Before)
				var pages []string
				l, pages, _ = revoker.Apply(l, []revoker.Entry{e}, at, lim)
				if broker.PolicySize(pages[0]) > lim.Budgets[0] {
					t.Fatalf("bucket %d: page 0 takes %d characters of %d", k, broker.PolicySize(pages[0]), lim.Budgets[0])
				}
				switch {
				case k <= c.fit && (len(l.Resource) != 2*k || !l.All.Before.IsZero()):
					t.Fatalf("bucket %d: %d resources denied, everything before %v; want %d resources and nothing else", k, len(l.Resource), l.All.Before, 2*k)
				case k > c.fit && (len(l.Resource) != 0 || !l.All.Before.Equal(last)):
					t.Fatalf("bucket %d: %d resources denied, everything before %v; want everything before %v", k, len(l.Resource), l.All.Before, last)
				}
			}
		})
	}
}

// The 100,000-member removal of the contract, through the handler as
// TestABucketRemovedFromAProjectPastCapacityIsDeniedAloneNotEveryone feeds
// it: the whole run, and each batch's run (of 1,000 narrowings), the mean
// of the first ten batches that fell back and of the last ten, which would
// differ should a run's work grow with the members narrowed so far.
func BenchmarkRemovalFallback(b *testing.B) {
	const members = 100000
	for b.Loop() {
		w := removalWorld()
		var batches []time.Duration
		var allocs []float64 // MB a batch allocates: its work, whatever the machine's load
		var mem runtime.MemStats
		runtime.ReadMemStats(&mem)
		start, was := time.Now(), mem.TotalAlloc
		last := start
		removal{project: "atlas", bucket: "lake", version: "v2", started: t0}.deliver(b, w, make([]time.Time, members), func(int) {
			batches = append(batches, time.Since(last))
			runtime.ReadMemStats(&mem)
			allocs = append(allocs, float64(mem.TotalAlloc-was)/(1<<20))
			was = mem.TotalAlloc
			last = time.Now()
		})
		b.ReportMetric(time.Since(start).Seconds(), "s/removal")
		mean := func(d []time.Duration) float64 {
			var sum time.Duration
			for _, x := range d {
				sum += x
			}
			return float64(sum.Milliseconds()) / float64(len(d))
		}
		b.ReportMetric(mean(batches[5:15]), "ms/batch-first-fallen")
		b.ReportMetric(mean(batches[len(batches)-10:]), "ms/batch-last")
		b.ReportMetric(float64(slices.Max(batches).Milliseconds()), "ms/batch-max")
		b.ReportMetric(allocs[5], "MB/batch-first-fallen")
		b.ReportMetric(allocs[len(allocs)-1], "MB/batch-last")
		l, _ := w.store.LoadDenyList(context.Background())
		if !l.All.Before.IsZero() {
			b.Fatal("fell back to everything")
		}
	}
}
