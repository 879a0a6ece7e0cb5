package broker_test

import (
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/revoker"
	"github.com/credbroker/credbroker/internal/testkit/iameval"
)

var (
	allow   = mustParse(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}`)
	session = mustParse(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::lake/*"}]}`)
)

func mustParse(doc string) iameval.Policy {
	p, err := iameval.Parse(doc)
	if err != nil {
		panic(err)
	}
	return p
}

// works reports whether a session of user, stamped by STS at stamped and
// tagged with the user's tag and tag, may read from the lake under the
// deny's pages.
func works(t *rapid.T, deny []string, user string, stamped time.Time, tag string) bool {
	role := []iameval.Policy{allow}
	for _, doc := range deny {
		if doc == "" {
			continue
		}
		p, err := iameval.Parse(doc)
		if err != nil {
			t.Fatalf("deny does not parse: %v", err)
		}
		role = append(role, p)
	}
	ctx := map[string]string{"aws:SourceIdentity": user, "aws:TokenIssueTime": stamped.UTC().Truncate(time.Second).Format(time.RFC3339),
		"aws:PrincipalTag/" + broker.UserTagKey: broker.UserTag(user), "aws:PrincipalTag/" + broker.CutoffTagKey: tag}
	return iameval.Session(role, session, iameval.Request{Action: "s3:GetObject", Resource: "arn:aws:s3:::lake/k", Context: ctx})
}

// Two narrowings of alice's grants follow each other, the second any time
// from at once to a few seconds later. For each, a request reads the item
// just before the narrowing commits and mints just after: whatever the
// timing within the endpoint's issue window and whatever the clocks'
// differences within the margin, its session is denied once the revoker
// has applied the narrowing. A session minted from the narrowed item, at
// any time after the commit and so tagged with its cutoff, is not; nor is
// another user's.
func TestPropertyARemovalRacingARequestLeavesNoSessionWithTheOldPolicy(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ms := func(label string, lo, hi time.Duration) time.Duration {
			return time.Duration(rapid.Int64Range(int64(lo/time.Millisecond), int64(hi/time.Millisecond)).Draw(t, label)) * time.Millisecond
		}
		// Each clock is off real time by less than half the margin, so any
		// two differ by less than the margin.
		half := broker.ClockMargin/2 - time.Millisecond
		projectorOff, stsOff := ms("projector", -half, half), ms("sts", -half, half)
		base := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC).Add(ms("base", 0, time.Hour))

		list := revoker.List{}
		var cutoff time.Time // in alice's item
		started := base
		for n := range 2 {
			if n > 0 {
				started = started.Add(ms("between the narrowings", 0, 3*time.Second))
			}
			// The projector reads its clock at started, and its write
			// lands within the commit window; the racing request read the
			// item (with the previous cutoff) just before it landed, and
			// STS stamps its session within the issue window of the read.
			commit := started.Add(ms("write latency", 0, broker.CommitWindow))
			read := commit.Add(-ms("read before the write landed", 1, broker.IssueWindow))
			stale := read.Add(ms("issue latency", 0, broker.IssueWindow)).Add(stsOff)
			prev, staleTag := cutoff, broker.CutoffTag("alice", cutoff)
			cutoff = broker.NextCutoff(cutoff, broker.RevokeBefore(started.Add(projectorOff)))

			// The narrowing's event names the cutoff it replaced, as the
			// projector read it under its claim.
			var deny []string
			list, deny, _ = revoker.Apply(list, []revoker.Entry{{UserID: "alice", Before: cutoff, Revoked: []string{staleTag}, Previous: prev}},
				commit, revoker.Limits{MaxSession: time.Hour, Budgets: []int{10000}})
			if works(t, deny, "alice", stale, staleTag) {
				t.Fatalf("narrowing %d: the racing session stamped %v survives the cutoff %v (commit %v)", n+1, stale, cutoff, commit)
			}
			fresh := commit.Add(ms("a request after the commit", 1, 10*time.Second)).Add(stsOff)
			if !works(t, deny, "alice", fresh, broker.CutoffTag("alice", cutoff)) {
				t.Fatalf("narrowing %d: a session minted from the narrowed item, stamped %v, is denied by the cutoff %v", n+1, fresh, cutoff)
			}
			if !works(t, deny, "bob", stale, broker.CutoffTag("bob", time.Time{})) {
				t.Fatal("another user's session is denied")
			}
		}
	})
}

func TestRevokeBeforeIsTheWindowsAndMarginLaterToTheMillisecond(t *testing.T) {
	c := time.Date(2026, 11, 30, 12, 0, 0, 300_456_789, time.UTC)
	if got, want := broker.RevokeBefore(c), time.Date(2026, 11, 30, 12, 0, 4, 300_000_000, time.UTC); !got.Equal(want) {
		t.Errorf("RevokeBefore(%v) = %v, want %v", c, got, want)
	}
}

// Every revocation of a user gets a cutoff of its own, never earlier than
// the last: the tag of the last one must not spare sessions the new one
// denies.
func TestNextCutoffIsTheWantedOneOrJustAfterThePrevious(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 5, 0, time.UTC)
	for _, tc := range []struct {
		name             string
		prev, want, next time.Time
	}{
		{"no previous cutoff: the wanted one", time.Time{}, t0, t0},
		{"a later one wanted: it", t0, t0.Add(time.Second), t0.Add(time.Second)},
		{"the same one wanted: a millisecond after", t0, t0, t0.Add(time.Millisecond)},
		{"an earlier one wanted: a millisecond after the previous", t0, t0.Add(-time.Second), t0.Add(time.Millisecond)},
		{"sub-millisecond wanted: truncated", time.Time{}, t0.Add(999 * time.Microsecond), t0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := broker.NextCutoff(tc.prev, tc.want); !got.Equal(tc.next) {
				t.Errorf("NextCutoff(%v, %v) = %v, want %v", tc.prev, tc.want, got, tc.next)
			}
		})
	}
}

// The tag names the user and the cutoff to the millisecond: no other
// user's cutoff and no other cutoff of the same user shares it.
func TestCutoffTagsDifferByUserAndCutoff(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 5, 0, time.UTC)
	tags := map[string]string{}
	for _, u := range []string{"alice", "bob", "alice\x00"} {
		for _, c := range []time.Time{t0, t0.Add(time.Millisecond), t0.Add(time.Second)} {
			tag := broker.CutoffTag(u, c)
			if prev, dup := tags[tag]; dup {
				t.Errorf("%s at %v has the tag of %s", u, c, prev)
			}
			tags[tag] = u + "@" + c.String()
		}
	}
	if none := broker.CutoffTag("alice", time.Time{}); none == "" || tags[none] != "" {
		t.Errorf("a user never revoked has tag %q, which must be a tag of its own", none)
	}
}
