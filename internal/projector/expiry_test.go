package projector_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/projector"
	"github.com/credbroker/credbroker/internal/testkit/brokertest"
	"github.com/credbroker/credbroker/internal/testkit/memstore"
)

// memberUntil writes a membership record bounded by expiresAt (a raw
// string, so that tests can write malformed ones too).
func (f *fixture) memberUntil(user, project, role, expiresAt string) {
	f.t.Helper()
	item := key("USER#"+user, "PROJECT#"+project)
	if role != "" {
		item["role"] = s(role)
	}
	item["expiresAt"] = s(expiresAt)
	f.put(item)
}

// Giving a live membership an expiry, or an earlier one, narrows and
// revokes; lengthening or removing one widens and revokes nothing
// (docs/contract.md "Source records", expiresAt).
func TestAnExpiryGivenOrShortenedRevokesAndOneLengthenedOrRemovedDoesNot(t *testing.T) {
	f := newFixture(t)
	now := time.Date(2026, 11, 30, 12, 0, 0, 300_000_000, time.UTC)
	f.proj.Now = func() time.Time { return now }
	f.bucket("p1", "lake", "")
	f.member("alice", "p1", "write")
	f.deliver(f.streamRecords())

	in := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	steps := []struct {
		name   string
		change func()
		narrow bool
		expiry time.Duration // of the grant afterwards; 0 for none
	}{
		{"an expiry given revokes", func() { f.memberUntil("alice", "p1", "write", in(8*time.Hour)) }, true, 8 * time.Hour},
		{"a later expiry revokes nothing", func() { f.memberUntil("alice", "p1", "write", in(10*time.Hour)) }, false, 10 * time.Hour},
		{"an earlier expiry revokes", func() { f.memberUntil("alice", "p1", "write", in(2*time.Hour)) }, true, 2 * time.Hour},
		{"a removed expiry revokes nothing", func() { f.member("alice", "p1", "write") }, false, 0},
		{"an expiry given with another unbounded membership revokes nothing", func() {
			f.bucket("p2", "lake", "")
			f.member("alice", "p2", "write")
			f.memberUntil("alice", "p1", "write", in(time.Hour))
		}, false, 0},
	}
	var want, prevExpiry time.Time
	for _, step := range steps {
		now = now.Add(time.Minute)
		n := len(f.streamRecords())
		step.change()
		if resp := f.deliver(f.streamRecords()[n:]); len(resp.BatchItemFailures) != 0 {
			t.Fatalf("%s: batch failures %v", step.name, seqs(resp))
		}
		if step.narrow {
			want = broker.RevokeBefore(now)
		}
		item := f.item("alice")
		if got := item.RevokedBefore; !got.Equal(want) {
			t.Errorf("%s: cutoff %v, want %v", step.name, got, want)
		}
		var wantExpiry time.Time
		if step.expiry != 0 {
			wantExpiry = now.Add(step.expiry).Truncate(time.Second)
		}
		if len(item.Grants) != 1 || !item.Grants[0].ExpiresAt.Equal(wantExpiry) {
			t.Errorf("%s: grants %+v, want one ending at %v", step.name, item.Grants, wantExpiry)
		}
		// The event says what changed: the grant with its old expiry
		// removed, with its new one added.
		events := f.audit.Of(broker.DetailPolicyChanged)
		d := events[len(events)-1].Detail.(broker.PolicyChangedDetail)
		if moved := !wantExpiry.Equal(prevExpiry); moved && (len(d.Added) != 1 || !d.Added[0].ExpiresAt.Equal(wantExpiry) ||
			len(d.Removed) != 1 || !d.Removed[0].ExpiresAt.Equal(prevExpiry)) {
			t.Errorf("%s: event added %+v removed %+v, want lake until %v added and until %v removed", step.name, d.Added, d.Removed, wantExpiry, prevExpiry)
		} else if !moved && (len(d.Added) != 0 || len(d.Removed) != 0) {
			t.Errorf("%s: event added %+v removed %+v, want neither", step.name, d.Added, d.Removed)
		}
		prevExpiry = wantExpiry
	}
}

// A membership whose expiry has passed grants nothing, and is no error;
// a malformed expiry makes the record invalid: rejected, reported, and
// what it granted is revoked.
func TestPastAndMalformedExpiries(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		expiresAt string
		rejected  bool
	}{
		{"a past expiry grants nothing and is not rejected", "2026-11-30T11:59:59Z", false},
		{"an expiry at this instant grants nothing", "2026-11-30T12:00:00Z", false},
		{"an expiry without offset is rejected", "2026-12-30T12:00:00", true},
		{"a date for an expiry is rejected", "2026-12-30", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.proj.Now = func() time.Time { return now }
			f.bucket("p1", "lake", "")
			f.member("alice", "p1", "read")
			f.deliver(f.streamRecords())
			n := len(f.streamRecords())
			f.memberUntil("alice", "p1", "read", tc.expiresAt)
			f.deliver(f.streamRecords()[n:])
			if got := f.item("alice"); !got.Empty() {
				t.Errorf("grants %+v, want none", got.Grants)
			}
			rejected := len(f.audit.Of(broker.DetailProjectionRejected)) > 0
			if rejected != tc.rejected {
				t.Errorf("rejected = %v, want %v", rejected, tc.rejected)
			}
			if got := f.item("alice").RevokedBefore; got.IsZero() {
				t.Error("removing a live grant must revoke, whatever the reason")
			}
		})
	}
}

// expiryTimerFunc is a function-field fake of broker.ExpiryTimer.
type expiryTimerFunc func(ctx context.Context, userID string, at time.Time) error

func (f expiryTimerFunc) Arm(ctx context.Context, userID string, at time.Time) error {
	return f(ctx, userID, at)
}

// Reaching an expiry needs no revocation: the recompute the timer runs at
// it (the payload the function gets) removes the grant, announces it in
// removed with the expiry as its cause, and leaves the cutoff alone, since
// the credentials stopped at the expiry. Each recompute arms the timer
// with the user's next expiry; a failure to arm hands the change back.
func TestReachingAnExpiryRemovesTheGrantWithoutRevoking(t *testing.T) {
	f := newFixture(t)
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	f.proj.Now = func() time.Time { return now }
	var armed []string
	armFail := false
	f.proj.Expiries = expiryTimerFunc(func(_ context.Context, userID string, at time.Time) error {
		if armFail {
			return broker.Errorf(broker.Transient, "arm", "scheduler throttled")
		}
		armed = append(armed, userID+"@"+at.Format(time.RFC3339))
		return nil
	})
	first, second := now.Add(8*time.Hour), now.Add(24*time.Hour)
	f.bucket("p1", "lake", "")
	f.bucket("p2", "pond", "")
	f.bucket("p3", "sea", "")
	f.memberUntil("alice", "p1", "write", first.Format(time.RFC3339))
	f.memberUntil("alice", "p3", "read", second.Format(time.RFC3339))
	f.member("alice", "p2", "read")
	f.deliver(f.streamRecords())
	before := f.item("alice")
	if len(before.Grants) != 3 || len(armed) == 0 || armed[len(armed)-1] != "alice@"+first.Format(time.RFC3339) {
		t.Fatalf("grants %+v, timers armed %v; want three grants and alice armed for %v", before.Grants, armed, first)
	}

	now = first
	events := len(f.audit.Of(broker.DetailPolicyChanged))
	payload := `{"expiry":{"userId":"alice","at":"` + first.Format(time.RFC3339) + `"}}`
	if _, err := f.handleRaw(payload); err != nil {
		t.Fatalf("expiry payload: %v", err)
	}
	after := f.item("alice")
	if len(after.Grants) != 2 || after.Grants[0].Bucket != "pond" || after.Grants[1].Bucket != "sea" {
		t.Errorf("grants after the expiry %+v, want pond and sea", after.Grants)
	}
	if !after.RevokedBefore.Equal(before.RevokedBefore) {
		t.Errorf("cutoff moved to %v: reaching an expiry must revoke nothing", after.RevokedBefore)
	}
	got := f.audit.Of(broker.DetailPolicyChanged)[events:]
	if len(got) != 1 {
		t.Fatalf("%d PolicyChanged events, want 1", len(got))
	}
	d := got[0].Detail.(broker.PolicyChangedDetail)
	if len(d.Removed) != 1 || d.Removed[0].Bucket != "lake" || d.RevokeBefore != nil || len(d.Causes) != 1 || d.Causes[0] != broker.ExpiryCause(first) {
		t.Errorf("event removed %+v, revokeBefore %v, causes %v; want lake removed, no revocation, %q", d.Removed, d.RevokeBefore, d.Causes, broker.ExpiryCause(first))
	}
	if want := "alice@" + second.Format(time.RFC3339); armed[len(armed)-1] != want {
		t.Errorf("armed %v, want the next expiry %s last", armed, want)
	}

	// A duplicate or late firing, as a retry or a replay gives: nothing changes.
	if _, err := f.handleRaw(payload); err != nil || len(f.audit.Of(broker.DetailPolicyChanged)) != events+1 {
		t.Errorf("a second firing: err %v, %d new events; want none", err, len(f.audit.Of(broker.DetailPolicyChanged))-events)
	}
	// A timer for an instant far ahead of the clock is refused, not waited for.
	if _, err := f.handleRaw(`{"expiry":{"userId":"alice","at":"` + second.Format(time.RFC3339) + `"}}`); broker.KindOf(err) != broker.Invalid {
		t.Errorf("a firing a day early: err %v, want Invalid", err)
	}
	// An arm that fails is a failure of the recompute: the record comes back.
	armFail = true
	n := len(f.streamRecords())
	f.member("alice", "p1", "read")
	if resp := f.deliver(f.streamRecords()[n:]); len(resp.BatchItemFailures) != 1 {
		t.Errorf("batch failures %v, want the change handed back when the timer cannot be armed", seqs(resp))
	}
}

// slowBuckets makes each bucket read take 2 s of the projector's clock, as
// a throttled and retried Query can.
type slowBuckets struct {
	*memstore.Store
	clock *atomic.Int64
}

func (s slowBuckets) ProjectBuckets(ctx context.Context, project string) ([]broker.SourceItem, error) {
	out, err := s.Store.ProjectBuckets(ctx, project)
	s.clock.Add(int64(2 * time.Second))
	return out, err
}

// A membership read while live whose expiry passes before the recompute
// commits is in the new item: its timer must still be armed (it fires at
// once), or the grant stays in the item until some other change.
func TestAnExpiryPassingDuringTheRecomputeIsStillArmed(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var clock atomic.Int64
	clock.Store(start.UnixNano())
	mem := memstore.New()
	var armed []time.Time
	p := &projector.Projector{Source: slowBuckets{mem, &clock}, Store: mem, Index: mem, Checkpoints: mem,
		Auditor: &brokertest.Auditor{}, Now: func() time.Time { return time.Unix(0, clock.Load()).UTC() },
		Expiries: expiryTimerFunc(func(_ context.Context, _ string, at time.Time) error {
			armed = append(armed, at)
			return nil
		})}
	mem.PutSource(bucketItem("p1", "lake", ""))
	expires := start.Add(time.Second)
	it := broker.SourceItem{PK: "USER#alice", SK: "PROJECT#p1", Role: broker.StringAttr("read"), ExpiresAt: broker.StringAttr(expires.Format(time.RFC3339))}
	mem.PutSource(it)
	out := p.Process(ctx, []projector.Change{{EventID: "e1", EventName: "INSERT", SequenceNumber: "1", Keys: broker.SourceItem{PK: it.PK, SK: it.SK}, New: &it}})
	if len(out.Failed) > 0 {
		t.Fatalf("failed: %+v", out)
	}
	got, err := mem.GetPolicy(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.ByProject["p1"]) == 0 {
		t.Fatalf("setup: the recompute did not read the membership as live")
	}
	if len(armed) != 1 || !armed[0].Equal(expires) {
		t.Errorf("armed %v; want the passed expiry %v, which the item still holds", armed, expires)
	}
}
