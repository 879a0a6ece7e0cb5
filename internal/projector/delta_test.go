package projector_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"pgregory.net/rapid"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/projector"
	"github.com/credbroker/credbroker/internal/testkit/brokertest"
	"github.com/credbroker/credbroker/internal/testkit/memstore"
)

// fullReads counts the reads only a full recompute makes.
type fullReads struct {
	broker.SourceReader
	n atomic.Int64
}

func (f *fullReads) UserMemberships(ctx context.Context, user string) ([]broker.SourceItem, error) {
	f.n.Add(1)
	return f.SourceReader.UserMemberships(ctx, user)
}

// A bucket change that reaches a member on the delta path leaves the item
// a full recompute of the member would write, whatever the member's other
// projects, access levels and expiries, and whatever the change (a bucket
// added, removed, its folder changed): the same version, grants, sets,
// places per project and expiries, and a PolicyChanged event exactly when
// the version changes. A live member never takes the full path, whether
// the item held the project already or not (its first bucket).
func TestADeltaGivesTheItemAFullRecomputeGives(t *testing.T) {
	buckets := []string{"lake", "raw", "ref"}
	prefixes := []string{"", "a/", "a/b/", "c/"}
	now := time.Now().UTC()
	rapid.Check(t, func(rt *rapid.T) {
		mem := memstore.New()
		reads := &fullReads{SourceReader: mem}
		audit := &brokertest.Auditor{}
		p := &projector.Projector{Source: reads, Store: mem, Index: mem, Checkpoints: mem, Auditor: audit}
		projects := rapid.SliceOfNDistinct(rapid.SampledFrom([]string{"p1", "p2", "p3", "p4"}), 1, 4, rapid.ID).Draw(rt, "projects")
		for _, pr := range projects {
			it := broker.SourceItem{PK: "USER#alice", SK: "PROJECT#" + pr, Role: broker.StringAttr(rapid.SampledFrom([]string{"read", "write"}).Draw(rt, "role"))}
			if h := rapid.IntRange(0, 3).Draw(rt, "expiryHours"); h > 0 {
				it.ExpiresAt = broker.StringAttr(now.Add(time.Duration(h) * time.Hour).Format(time.RFC3339))
			}
			mem.PutSource(it)
			for _, b := range rapid.SliceOfDistinct(rapid.SampledFrom(buckets), rapid.ID).Draw(rt, "buckets") {
				mem.PutSource(bucketItem(pr, b, rapid.SampledFrom(prefixes).Draw(rt, "prefix")))
			}
		}
		join := broker.SourceItem{PK: "USER#alice", SK: "PROJECT#" + projects[0]}
		if out := p.Process(context.Background(), []projector.Change{{EventID: "join", EventName: "INSERT", SequenceNumber: "1", Keys: join, New: &join}}); len(out.Failed) > 0 {
			rt.Fatalf("join: %+v", out)
		}
		before, _ := mem.GetPolicy(context.Background(), "alice")

		changed := rapid.SampledFrom(projects).Draw(rt, "changed")
		b := rapid.SampledFrom(buckets).Draw(rt, "bucket")
		key := broker.SourceItem{PK: "PROJECT#" + changed, SK: "BUCKET#" + b}
		c := projector.Change{EventID: "change", EventName: "REMOVE", SequenceNumber: "2", Keys: key}
		if rapid.Bool().Draw(rt, "add") {
			it := bucketItem(changed, b, rapid.SampledFrom(prefixes).Draw(rt, "newPrefix"))
			mem.PutSource(it)
			c.EventName, c.New = "MODIFY", &it
		} else {
			mem.DeleteSource(key.PK, key.SK)
		}
		reads.n.Store(0)
		events := len(audit.Of(broker.DetailPolicyChanged))
		if out := p.Process(context.Background(), []projector.Change{c}); len(out.Failed) > 0 {
			rt.Fatalf("change: %+v", out)
		}
		if reads.n.Load() != 0 {
			rt.Errorf("a live member of %s took the full path", changed)
		}
		got, _ := mem.GetPolicy(context.Background(), "alice")
		want, err := p.Compute(context.Background(), "alice")
		if err != nil {
			rt.Fatal(err)
		}
		if !got.SameContent(want) {
			rt.Fatalf("delta item\n%+v\nfull recompute\n%+v", got, want)
		}
		sent := len(audit.Of(broker.DetailPolicyChanged)) - events
		if wantSent := btoi(got.Version != before.Version); sent != wantSent {
			rt.Errorf("%d PolicyChanged events for %s -> %s, want %d", sent, before.Version, got.Version, wantSent)
		}
	})
}

// bucketItem is a bucket record; prefix "" grants the whole bucket.
func bucketItem(project, bucket, prefix string) broker.SourceItem {
	it := broker.SourceItem{PK: "PROJECT#" + project, SK: "BUCKET#" + bucket}
	if prefix != "" {
		it.Prefix = broker.StringAttr(prefix)
	}
	return it
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// deltaPause stops the delta path of one member's fan-out at a point until
// the test lets it go.
type deltaPause struct {
	broker.SourceReader
	broker.PolicyStore
	at, user string
	paused   chan struct{}
	resume   chan struct{}
	once     sync.Once
}

func (d *deltaPause) pause(point string, users ...string) {
	for _, u := range users {
		if point == d.at && u == d.user {
			d.once.Do(func() { close(d.paused); <-d.resume })
		}
	}
}

func (d *deltaPause) ProjectMemberships(ctx context.Context, project string, users []string) (map[string]broker.SourceItem, error) {
	out, err := d.SourceReader.ProjectMemberships(ctx, project, users)
	d.pause("after reading the membership", users...)
	return out, err
}

func (d *deltaPause) Commit(ctx context.Context, c broker.Claim, pol broker.UserPolicy, outbox []broker.PolicyChangedDetail) error {
	d.pause("before committing", c.UserID)
	return d.PolicyStore.Commit(ctx, c, pol, outbox)
}

func (f *fixture) deltaPaused(at, user string) (*projector.Projector, *deltaPause) {
	d := &deltaPause{SourceReader: f.store, PolicyStore: f.store, at: at, user: user, paused: make(chan struct{}), resume: make(chan struct{})}
	p := *f.proj
	p.Source, p.Store = d, d
	return &p, d
}

// whilePaused delivers recs with a projector paused on alice's delta at
// the point, runs meanwhile (which projects other changes) and lets the
// paused delivery finish, which must not fail.
func (f *fixture) whilePaused(t *testing.T, at string, recs []events.DynamoDBEventRecord, meanwhile func()) {
	t.Helper()
	paused, d := f.deltaPaused(at, "alice")
	done := make(chan events.DynamoDBEventResponse)
	go func() { done <- f.deliverWith(paused, recs) }()
	<-d.paused
	meanwhile()
	close(d.resume)
	if resp := <-done; len(resp.BatchItemFailures) != 0 {
		t.Fatalf("paused fan-out failed instead of retrying: %v", seqs(resp))
	}
}

// A bucket added while a member leaves the project: the bucket's fan-out,
// paused on the delta path after it read the membership or just before it
// commits, must not give the departed member the bucket (nor keep the old
// one) once the departure is projected, however late it writes.
func TestADeltaNeverGrantsAMemberWhoLeft(t *testing.T) {
	for _, at := range []string{"after reading the membership", "before committing"} {
		t.Run("fan-out paused "+at, func(t *testing.T) {
			f := newFixture(t)
			f.bucket("p1", "lake", "")
			f.member("alice", "p1", "read")
			f.member("bob", "p1", "read")
			f.deliver(f.streamRecords())
			n := len(f.streamRecords())

			f.bucket("p1", "extra", "")
			added := f.streamRecords()[n:]
			f.whilePaused(t, at, added, func() {
				f.leave("alice", "p1")
				if resp := f.deliver(f.streamRecords()[n+len(added):]); len(resp.BatchItemFailures) != 0 {
					t.Fatalf("departure failed: %v", seqs(resp))
				}
			})
			if got := f.item("alice"); !got.Empty() {
				t.Errorf("alice keeps %v after leaving", places(got))
			}
			if got := places(f.item("bob")); len(got) != 2 {
				t.Errorf("bob has %v, want lake and extra", got)
			}
			f.assertConverged("alice", "bob")
		})
	}
}

// Two bucket changes of one project reach a member on the delta path in
// the wrong order: the first change's delta, paused after it read the
// membership, resumes after the second change was projected. It must not
// overwrite the newer item with the buckets it read: its commit loses its
// claim and the member ends with the project's buckets as they are.
func TestAStaleDeltaNeverOverwritesANewerOne(t *testing.T) {
	f := newFixture(t)
	f.bucket("p1", "lake", "")
	f.member("alice", "p1", "write")
	f.deliver(f.streamRecords())
	n := len(f.streamRecords())

	f.bucket("p1", "extra", "")
	first := f.streamRecords()[n:]
	f.whilePaused(t, "after reading the membership", first, func() {
		f.unbucket("p1", "extra")
		f.unbucket("p1", "lake")
		if resp := f.deliver(f.streamRecords()[n+len(first):]); len(resp.BatchItemFailures) != 0 {
			t.Fatalf("removals failed: %v", seqs(resp))
		}
	})
	if got := f.item("alice"); !got.Empty() {
		t.Errorf("alice keeps %v after both buckets were removed", places(got))
	}
	f.assertConverged("alice")
}

// A bucket removal that narrows members on the delta path gives each a new
// cutoff in the same commit and sends the narrowing PolicyChanged event,
// revokeBefore set, to the bus; a bucket added revokes nothing.
func TestADeltaNarrowingCarriesItsCutoffAndEvent(t *testing.T) {
	f := newFixture(t)
	f.bucket("p1", "lake", "")
	f.bucket("p1", "ref", "")
	users := f.members("p1", 250) // three chunks of the delta path
	f.unbucket("p1", "ref")
	before := len(f.audit.Of(broker.DetailPolicyChanged))
	// Delivered as Lambda would: again while members failed (on a busy
	// moto a commit can miss a narrowing's window), each time for the
	// failed members alone.
	rm := []projector.Change{{EventID: "rm", EventName: "REMOVE", SequenceNumber: "9",
		Keys: broker.SourceItem{PK: "PROJECT#p1", SK: "BUCKET#ref"}}}
	// A commit the client gave up on may still have landed, so the
	// members' items, not the deliveries' counts, say what changed.
	for attempt := 1; ; attempt++ {
		out := f.proj.Process(context.Background(), rm)
		if len(out.Failed) == 0 {
			break
		}
		if attempt == 5 {
			t.Fatalf("removal still failing after %d deliveries: %+v", attempt, out)
		}
	}
	for _, u := range users {
		if slices.ContainsFunc(places(f.item(u)), func(p string) bool { return strings.HasPrefix(p, "ref/") }) {
			t.Fatalf("%s still holds ref: %v", u, places(f.item(u)))
		}
	}
	evs := f.audit.Of(broker.DetailPolicyChanged)[before:]
	if len(evs) != len(users) {
		t.Fatalf("%d PolicyChanged events, want %d", len(evs), len(users))
	}
	for _, ev := range evs {
		d := ev.Detail.(broker.PolicyChangedDetail)
		item := f.item(d.UserID)
		if d.RevokeBefore == nil || item.RevokedBefore.IsZero() || !d.RevokeBefore.Equal(item.RevokedBefore) {
			t.Fatalf("%s: event cutoff %v, item cutoff %v", d.UserID, d.RevokeBefore, item.RevokedBefore)
		}
		if len(d.Removed) != 1 || d.Removed[0].Bucket != "ref" || d.Causes[0] != "rm" {
			t.Fatalf("%s: event %+v", d.UserID, d)
		}
	}
	// Every outbox was cleared once the bus took the events.
	for _, u := range []string{users[0], users[123], users[249]} {
		c, err := f.store.Claim(context.Background(), u, time.Now())
		if err != nil || len(c.Outbox) != 0 {
			t.Errorf("%s: outbox %d events left, %v", u, len(c.Outbox), err)
		}
	}
	f.bucket("p1", "new", "")
	before = len(f.audit.Of(broker.DetailPolicyChanged))
	f.proj.Process(context.Background(), []projector.Change{{EventID: "add", EventName: "INSERT", SequenceNumber: "10",
		Keys: broker.SourceItem{PK: "PROJECT#p1", SK: "BUCKET#new"}, New: &broker.SourceItem{PK: "PROJECT#p1", SK: "BUCKET#new"}}})
	for _, ev := range f.audit.Of(broker.DetailPolicyChanged)[before:] {
		if d := ev.Detail.(broker.PolicyChangedDetail); d.RevokeBefore != nil {
			t.Fatalf("an addition revoked %s's sessions", d.UserID)
		}
	}
}

// A member whose events the bus refuses keeps them in the item's outbox:
// the fan-out hands the change back for them alone, and the redelivery
// sends and clears them.
func TestADeltaKeepsEventsTheBusRefused(t *testing.T) {
	f := newFixture(t)
	f.bucket("p1", "lake", "")
	users := f.members("p1", 120)
	f.bucket("p1", "extra", "")
	f.audit.SetFail(func([]broker.AuditEvent) error { return fmt.Errorf("bus down") })
	c := projector.Change{EventID: "add", EventName: "INSERT", SequenceNumber: "5",
		Keys: broker.SourceItem{PK: "PROJECT#p1", SK: "BUCKET#extra"}, New: &broker.SourceItem{PK: "PROJECT#p1", SK: "BUCKET#extra"}}
	before := len(f.audit.Of(broker.DetailPolicyChanged))
	if out := f.proj.Process(context.Background(), []projector.Change{c}); len(out.Failed) != 1 {
		t.Fatalf("want the change handed back while the bus is down, got %+v", out)
	}
	for _, u := range []string{users[0], users[119]} {
		if got := places(f.item(u)); len(got) != 2 {
			t.Errorf("%s: %v, want the bucket committed despite the bus", u, got)
		}
	}
	f.audit.SetFail(nil)
	if out := f.proj.Process(context.Background(), []projector.Change{c}); len(out.Failed) != 0 {
		t.Fatalf("redelivery: %+v", out)
	}
	if sent := len(f.audit.Of(broker.DetailPolicyChanged)) - before; sent != len(users) {
		t.Errorf("%d PolicyChanged events sent, want one per member (%d)", sent, len(users))
	}
}
