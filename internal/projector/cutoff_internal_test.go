package projector

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
)

// Every narrowing gives the user a cutoff later than any the deny list may
// hold for that user, so that the sessions tagged with that one are denied:
// just after the item's cutoff when it is known, and past what any
// projector's clock could have set when the item was corrupt (docs/security.md
// "The cutoff").
func TestANarrowingsCutoffIsLaterThanAnyTheUserMayHave(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 250e6, time.UTC)
	p := &Projector{Now: func() time.Time { return now }}
	lake := broker.Grant{Bucket: "lake", Access: broker.Read}
	held := broker.UserPolicy{UserID: "alice", Grants: []broker.Grant{lake}}
	for _, tc := range []struct {
		name  string
		claim broker.Claim
		want  time.Time
	}{
		{"a first narrowing: the windows and margin ahead", broker.Claim{UserID: "alice", Prev: held}, broker.RevokeBefore(now)},
		{"a cutoff already further ahead: a millisecond after it",
			broker.Claim{UserID: "alice", Prev: withCutoff(held, broker.RevokeBefore(now).Add(300*time.Millisecond))},
			broker.RevokeBefore(now).Add(301 * time.Millisecond)},
		{"a corrupt item: another clock's cutoff is beaten too",
			broker.Claim{UserID: "alice", Prev: broker.UserPolicy{UserID: "alice"}, Corrupt: "bad doc"},
			broker.RevokeBefore(now).Add(broker.ClockMargin + time.Millisecond)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, started := p.cutoff(tc.claim, broker.UserPolicy{UserID: "alice"})
			if !got.Equal(tc.want) || started.IsZero() {
				t.Errorf("cutoff = %v (narrowing %v), want %v", got, !started.IsZero(), tc.want)
			}
		})
	}
}

func withCutoff(p broker.UserPolicy, c time.Time) broker.UserPolicy {
	p.RevokedBefore = c
	return p
}

// A narrowing dropped from a full outbox hands what it revoked to the
// newest event kept: every tag, the latest cutoff and the earliest
// previous one; should one of them not know its previous cutoff, the
// merged event knows none, and the revoker denies by time. Its lists
// are then marked truncated (what it removed is not all that was).
func TestTheNewestEventKeptCarriesWhatTheDroppedNarrowingsRevoked(t *testing.T) {
	c1 := time.Date(2026, 11, 30, 12, 0, 4, 0, time.UTC)
	c2, c3 := c1.Add(time.Minute), c1.Add(2*time.Minute)
	tag := func(c time.Time) string { return broker.CutoffTag("alice", c) }
	narrowing := func(prev, next time.Time, known bool) broker.PolicyChangedDetail {
		d := broker.PolicyChangedDetail{UserID: "alice", RevokeBefore: &next}
		if known {
			d.RevokedCutoffTags = []string{tag(prev)}
			if !prev.IsZero() {
				d.PreviousRevokeBefore = &prev
			}
		}
		return d
	}
	addition := broker.PolicyChangedDetail{UserID: "alice"}
	for _, tc := range []struct {
		name     string
		kept     broker.PolicyChangedDetail
		dropped  []broker.PolicyChangedDetail
		wantTags []string
		wantPrev time.Time
	}{
		{"an addition kept carries the narrowings dropped, back to none", addition,
			[]broker.PolicyChangedDetail{narrowing(time.Time{}, c1, true), narrowing(c1, c2, true)}, sortedTags(tag(time.Time{}), tag(c1)), time.Time{}},
		{"a narrowing kept adds the dropped ones' tags and their earliest previous cutoff", narrowing(c2, c3, true),
			[]broker.PolicyChangedDetail{narrowing(c1, c2, true)}, sortedTags(tag(c1), tag(c2)), c1},
		{"a dropped narrowing of unknown previous cutoff makes the merged one unknown", narrowing(c2, c3, true),
			[]broker.PolicyChangedDetail{narrowing(c1, c2, false)}, nil, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := carryNarrowings(tc.kept, tc.dropped)
			if got.RevokeBefore == nil || !got.RevokeBefore.Equal(latestOf(tc.kept, tc.dropped)) {
				t.Errorf("revokeBefore %v", got.RevokeBefore)
			}
			var prev time.Time
			if got.PreviousRevokeBefore != nil {
				prev = *got.PreviousRevokeBefore
			}
			if diff := cmp.Diff(tc.wantTags, got.RevokedCutoffTags); diff != "" || !prev.Equal(tc.wantPrev) {
				t.Errorf("tags (-want +got):\n%s\nprevious %v, want %v", diff, prev, tc.wantPrev)
			}
			// Its removed grants are not all the revocation took away: a
			// fallback for it must not name them alone.
			if !got.Truncated {
				t.Errorf("the event carrying dropped narrowings is not marked truncated")
			}
		})
	}
}

func sortedTags(tags ...string) []string {
	slices.Sort(tags)
	return tags
}

func latestOf(kept broker.PolicyChangedDetail, dropped []broker.PolicyChangedDetail) time.Time {
	var at time.Time
	for _, d := range append([]broker.PolicyChangedDetail{kept}, dropped...) {
		if d.RevokeBefore != nil && d.RevokeBefore.After(at) {
			at = *d.RevokeBefore
		}
	}
	return at
}
