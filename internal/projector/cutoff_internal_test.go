package projector

import (
	"testing"
	"time"

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
