package projector_test

import (
	"context"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
)

// A change that takes something away moves the user's cutoff to
// RevokeBefore of the projector's clock and says so in its event; one that
// only adds keeps the cutoff and revokes nothing (README "Revocation").
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
		got := changes[0].Detail.(broker.PolicyChangedDetail).RevokeBefore
		switch {
		case step.narrow && (got == nil || !got.Equal(want)):
			t.Errorf("%s: event revokeBefore %v, want %v", step.name, got, want)
		case !step.narrow && got != nil:
			t.Errorf("%s: event revokeBefore %v, want none", step.name, *got)
		}
	}
}

// slowCommits is a fault-injecting PolicyStore (DynamoDB cannot be made
// slow on demand): the first commit that moves a cutoff lands only after
// three commit windows, unless its context gives up first.
type slowCommits struct {
	broker.PolicyStore
	stalled bool
}

func (s *slowCommits) Commit(ctx context.Context, c broker.Claim, pol broker.UserPolicy, outbox []broker.PolicyChangedDetail) error {
	if !s.stalled && !pol.RevokedBefore.Equal(c.Prev.RevokedBefore) {
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
// taken from its own clock reading.
func TestANarrowingThatMissesItsCommitWindowIsRetriedWithALaterCutoff(t *testing.T) {
	f := newFixture(t)
	f.bucket("p1", "lake", "")
	f.member("alice", "p1", "write")
	f.deliver(f.streamRecords())
	n := len(f.streamRecords())

	slow := &slowCommits{PolicyStore: f.store}
	f.proj.Store = slow
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	f.proj.Now = func() time.Time { return now }
	f.leave("alice", "p1")
	removal := f.streamRecords()[n:]
	if resp := f.deliver(removal); len(resp.BatchItemFailures) != len(removal) {
		t.Fatalf("a narrowing that missed its window was not reported for retry: %d of %d records failed", len(resp.BatchItemFailures), len(removal))
	}
	if !slow.stalled {
		t.Fatal("the narrowing's commit never reached the store")
	}
	if got := f.item("alice"); got.Empty() || !got.RevokedBefore.IsZero() {
		t.Fatalf("after the failed commit the item is %v (cutoff %v), want the old grants and no cutoff", places(got), got.RevokedBefore)
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
