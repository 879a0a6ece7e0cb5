package projector_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
)

// A change that takes something away moves the user's cutoff to
// RevokeBefore of the projector's clock and says so in its event, with the
// tag and the time of the cutoff it replaced (the revoker denies the
// sessions of that tag); one that only adds keeps the cutoff and revokes
// nothing (docs/security.md "Revocation").
func TestANarrowingMovesTheCutoffAndAnAdditionDoesNot(t *testing.T) {
	f := newFixture(t)
	now := time.Date(2026, 11, 30, 12, 0, 0, 300_000_000, time.UTC)
	f.proj.Now = func() time.Time { return now }
	f.bucket("p1", "lake", "")
	f.bucket("p2", "sea", "")
	f.member("alice", "p1", "write")
	f.deliver(f.streamRecords())
	if got := f.item("alice").RevokedBefore; !got.IsZero() {
		t.Fatalf("a first grant set the cutoff to %v", got)
	}

	steps := []struct {
		name   string
		change func()
		narrow bool
	}{
		{"an added project revokes nothing", func() { f.member("alice", "p2", "read") }, false},
		{"a lowered role revokes", func() { f.member("alice", "p1", "read") }, true},
		{"an added bucket revokes nothing", func() { f.bucket("p1", "pond", "") }, false},
		{"a removed bucket revokes", func() { f.unbucket("p2", "sea") }, true},
		{"leaving the last project revokes", func() { f.leave("alice", "p1"); f.leave("alice", "p2") }, true},
	}
	want := time.Time{}
	for _, step := range steps {
		now = now.Add(time.Minute)
		n, events := len(f.streamRecords()), len(f.audit.Of(broker.DetailPolicyChanged))
		step.change()
		if resp := f.deliver(f.streamRecords()[n:]); len(resp.BatchItemFailures) != 0 {
			t.Fatalf("%s: batch failures %v", step.name, seqs(resp))
		}
		prev := want
		if step.narrow {
			want = broker.RevokeBefore(now)
		}
		if got := f.item("alice").RevokedBefore; !got.Equal(want) {
			t.Errorf("%s: cutoff %v, want %v", step.name, got, want)
		}
		changes := f.audit.Of(broker.DetailPolicyChanged)[events:]
		if len(changes) != 1 {
			t.Fatalf("%s: %d PolicyChanged events, want 1", step.name, len(changes))
		}
		d := changes[0].Detail.(broker.PolicyChangedDetail)
		got := d.RevokeBefore
		switch {
		case step.narrow && (got == nil || !got.Equal(want)):
			t.Errorf("%s: event revokeBefore %v, want %v", step.name, got, want)
		case !step.narrow && got != nil:
			t.Errorf("%s: event revokeBefore %v, want none", step.name, *got)
		}
		var wantTags []string
		var wantPrev *time.Time
		if step.narrow {
			wantTags = []string{broker.CutoffTag("alice", prev)}
			if !prev.IsZero() {
				wantPrev = &prev
			}
		}
		if !slices.Equal(d.RevokedCutoffTags, wantTags) || (d.PreviousRevokeBefore == nil) != (wantPrev == nil) ||
			(wantPrev != nil && !d.PreviousRevokeBefore.Equal(*wantPrev)) {
			t.Errorf("%s: event revokes tags %v after %v, want %v after %v", step.name, d.RevokedCutoffTags, d.PreviousRevokeBefore, wantTags, wantPrev)
		}
	}
}

// slowCommits is a fault-injecting PolicyStore (DynamoDB cannot be made
// slow on demand): the first commit that narrows lands only after three
// commit windows, unless its context gives up first.
type slowCommits struct {
	broker.PolicyStore
	stalled bool
}

func (s *slowCommits) Commit(ctx context.Context, c broker.Claim, pol broker.UserPolicy, outbox []broker.PolicyChangedDetail) error {
	if !s.stalled && broker.Narrows(c.Prev.Grants, pol.Grants) {
		s.stalled = true
		select {
		case <-ctx.Done():
			return broker.Wrap(broker.Transient, "commit", ctx.Err())
		case <-time.After(3 * broker.CommitWindow):
			return s.PolicyStore.Commit(context.WithoutCancel(ctx), c, pol, outbox)
		}
	}
	return s.PolicyStore.Commit(ctx, c, pol, outbox)
}

// The cutoff counts on the narrowed item landing within CommitWindow of the
// clock reading it came from. A write that cannot must not land later with
// that cutoff: it fails, the record is retried, and the retry's cutoff is
// taken from its own clock reading. That holds too for a second narrowing
// in the same second, whose cutoff is the first one's.
func TestANarrowingThatMissesItsCommitWindowIsRetriedWithALaterCutoff(t *testing.T) {
	for _, earlier := range []bool{false, true} {
		name := "first narrowing"
		if earlier {
			name = "second narrowing in the same second"
		}
		t.Run(name, func(t *testing.T) { missCommitWindow(t, earlier) })
	}
}

func missCommitWindow(t *testing.T, earlierNarrowing bool) {
	f := newFixture(t)
	f.bucket("p1", "lake", "")
	f.bucket("p1", "pond", "")
	f.member("alice", "p1", "write")
	f.deliver(f.streamRecords())
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	f.proj.Now = func() time.Time { return now }
	var first time.Time
	if earlierNarrowing {
		n := len(f.streamRecords())
		f.unbucket("p1", "pond")
		f.deliver(f.streamRecords()[n:])
		first = f.item("alice").RevokedBefore
		if !first.Equal(broker.RevokeBefore(now)) {
			t.Fatalf("setup: cutoff %v after the first narrowing", first)
		}
	}
	n := len(f.streamRecords())

	slow := &slowCommits{PolicyStore: f.store}
	f.proj.Store = slow
	f.leave("alice", "p1")
	removal := f.streamRecords()[n:]
	if resp := f.deliver(removal); len(resp.BatchItemFailures) != len(removal) {
		t.Fatalf("a narrowing that missed its window was not reported for retry: %d of %d records failed", len(resp.BatchItemFailures), len(removal))
	}
	if !slow.stalled {
		t.Fatal("the narrowing's commit never reached the store")
	}
	if got := f.item("alice"); got.Empty() || !got.RevokedBefore.Equal(first) {
		t.Fatalf("after the failed commit the item is %v (cutoff %v), want the old grants and cutoff %v", places(got), got.RevokedBefore, first)
	}

	now = now.Add(10 * time.Second)
	if resp := f.deliver(removal); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("retry failed: %v", seqs(resp))
	}
	got := f.item("alice")
	if !got.Empty() || !got.RevokedBefore.Equal(broker.RevokeBefore(now)) {
		t.Errorf("after the retry: grants %v, cutoff %v, want none and %v", places(got), got.RevokedBefore, broker.RevokeBefore(now))
	}
}

// Changes that take nothing away revoke nothing, even when the compiled
// grants list a covered grant as removed.
func TestAWideningRevokesNothing(t *testing.T) {
	for _, tc := range []struct {
		name          string
		setup, change func(f *fixture)
	}{
		{"raising read to write", func(f *fixture) {
			f.bucket("p1", "lake", "")
			f.member("alice", "p1", "read")
		}, func(f *fixture) { f.member("alice", "p1", "write") }},
		{"the whole bucket replacing a folder of it", func(f *fixture) {
			f.bucket("p1", "lake", "runs/")
			f.member("alice", "p1", "read")
		}, func(f *fixture) {
			f.bucket("p2", "lake", "")
			f.member("alice", "p2", "read")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tc.setup(f)
			f.deliver(f.streamRecords())
			n, events := len(f.streamRecords()), len(f.audit.Of(broker.DetailPolicyChanged))
			tc.change(f)
			f.deliver(f.streamRecords()[n:])
			changes := f.audit.Of(broker.DetailPolicyChanged)[events:]
			if len(changes) != 1 {
				t.Fatalf("%d PolicyChanged events, want 1", len(changes))
			}
			d := changes[0].Detail.(broker.PolicyChangedDetail)
			if len(d.Removed) == 0 {
				t.Fatal("setup: the change lists no removed grant; the case tests nothing")
			}
			if got := f.item("alice").RevokedBefore; !got.IsZero() || d.RevokeBefore != nil {
				t.Errorf("cutoff %v, event revokeBefore %v: a widening revoked", got, d.RevokeBefore)
			}
		})
	}
}

// While the bus is down the outbox keeps only the newest events. A
// narrowing pushed out by later additions must still reach the revoker:
// the newest kept event carries its cutoff and the tag it revoked.
func TestANarrowingDroppedFromAFullOutboxStillRevokes(t *testing.T) {
	f := newFixture(t)
	f.proj.MaxOutbox = 2
	f.bucket("p1", "lake", "")
	f.member("alice", "p1", "write")
	f.deliver(f.streamRecords())
	f.audit.Fail = func([]broker.AuditEvent) error {
		return broker.Errorf(broker.Transient, "emit", "bus unavailable")
	}

	n := len(f.streamRecords())
	for _, change := range []func(){
		func() { f.member("alice", "p1", "read") }, // the narrowing
		func() { f.bucket("p1", "pond", "") },      // two additions push it out
		func() { f.bucket("p1", "sea", "") },
	} {
		m := len(f.streamRecords())
		change()
		f.deliver(f.streamRecords()[m:])
	}
	cutoff := f.item("alice").RevokedBefore
	if cutoff.IsZero() {
		t.Fatal("setup: the narrowing set no cutoff")
	}

	f.audit.Fail = nil
	f.deliver(f.streamRecords()[n:])
	var got *time.Time
	var tags []string
	for _, ev := range f.audit.Of(broker.DetailPolicyChanged) {
		if d := ev.Detail.(broker.PolicyChangedDetail); d.RevokeBefore != nil {
			got, tags = d.RevokeBefore, d.RevokedCutoffTags
		}
	}
	if got == nil || !got.Equal(cutoff) {
		t.Errorf("revokeBefore sent to the bus: %v, want the narrowing's %v", got, cutoff)
	}
	if want := []string{broker.CutoffTag("alice", time.Time{})}; !slices.Equal(tags, want) {
		t.Errorf("revoked tags sent to the bus: %v, want the narrowing's %v", tags, want)
	}
}
