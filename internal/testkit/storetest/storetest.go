// Package storetest is the conformance suite of the broker's store
// interfaces. ddbstore (on moto) and memstore both run it, so the in-memory
// fake used for scale tests behaves like the real adapter.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/revoker"
)

// Store is everything the projector needs from the tables.
type Store interface {
	broker.SourceReader
	broker.PolicyStore
	broker.MemberIndex
	broker.Checkpoints
}

// Scanner is the whole-table reads of the rebuild tool (rebuild's
// MembershipScanner and PolicyScanner).
type Scanner interface {
	ScanMemberships(ctx context.Context, segment, total int, fn func(broker.SourceItem) error) error
	ScanPolicyTable(ctx context.Context, segment, total int,
		user func(userID string, grants bool, checkedAt time.Time) error,
		entry func(projectID string, m broker.Member) error) error
}

// Harness is a fresh, empty store and a way to write source items.
type Harness struct {
	Store        Store
	PutSource    func(broker.SourceItem)
	DeleteSource func(pk, sk string)
	// Scanner is the store's scans; nil skips the scan cases.
	Scanner Scanner
	// PageSize, when set, makes later scans read at most n items per page
	// (0: the store's default); nil when the store has no pages.
	PageSize func(n int)
	// ScanPages, when set, counts the pages scans have read so far.
	ScanPages func() int
	// CorruptClaim damages the user's claim counter the given way, as a
	// hand edit or a bug could.
	CorruptClaim func(t *testing.T, userID string, how Corruption)
	// CorruptDocument breaks the JSON of the user's document, as a hand
	// edit could.
	CorruptDocument func(t *testing.T, userID string)
	// CheckedAt returns the stamp the scans report for the user's item.
	CheckedAt func(t *testing.T, userID string) time.Time
}

// Corruption is a way a claim counter can be damaged.
type Corruption string

const (
	// CounterAsString stores the counter as a string: ADD then fails.
	CounterAsString Corruption = "string"
	// CounterAsFraction stores a fraction: ADD works, the parse fails.
	CounterAsFraction Corruption = "fraction"
	// CounterBeyondInt64 stores a whole number too large for an int64.
	CounterBeyondInt64 Corruption = "huge"
)

// Corruptions lists every Corruption.
var Corruptions = []Corruption{CounterAsString, CounterAsFraction, CounterBeyondInt64}

// Run runs the suite; newHarness is called once per subtest.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

	t.Run("a missing policy item is NotFound", func(t *testing.T) {
		h := newHarness(t)
		if _, err := h.Store.GetPolicy(ctx, "nobody"); broker.KindOf(err) != broker.NotFound {
			t.Errorf("err = %v, want NotFound", err)
		}
	})

	t.Run("a commit under the newest claim is read back", func(t *testing.T) {
		h := newHarness(t)
		c, err := h.Store.Claim(ctx, "alice", now)
		if err != nil || c.Ticket < 1 || c.Prev.Version != "" || len(c.Outbox) != 0 {
			t.Fatalf("first claim = %+v, %v", c, err)
		}
		p := samplePolicy("alice", now)
		ob := []broker.PolicyChangedDetail{{ChangeID: "alice/v1/1", UserID: "alice", PolicyVersion: p.Version, Added: []broker.Grant{}, Removed: []broker.Grant{}, Causes: []string{"e1"}, ChangedAt: now}}
		if err := h.Store.Commit(ctx, c, p, ob); err != nil {
			t.Fatal(err)
		}
		got, err := h.Store.GetPolicy(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(p, got); diff != "" {
			t.Errorf("read back (-committed +read):\n%s", diff)
		}
		c2, err := h.Store.Claim(ctx, "alice", now)
		if err != nil {
			t.Fatal(err)
		}
		if c2.Ticket <= c.Ticket || c2.Prev.Version != p.Version {
			t.Errorf("second claim = ticket %d prev %q", c2.Ticket, c2.Prev.Version)
		}
		if diff := cmp.Diff(ob, c2.Outbox); diff != "" {
			t.Errorf("outbox (-committed +claimed):\n%s", diff)
		}
	})

	t.Run("a newer claim voids the older one", func(t *testing.T) {
		h := newHarness(t)
		old, _ := h.Store.Claim(ctx, "alice", now)
		newer, _ := h.Store.Claim(ctx, "alice", now)
		if err := h.Store.Commit(ctx, old, samplePolicy("alice", now), nil); broker.KindOf(err) != broker.Conflict {
			t.Errorf("commit under a voided claim: %v, want Conflict", err)
		}
		if err := h.Store.ClearOutbox(ctx, old); broker.KindOf(err) != broker.Conflict {
			t.Errorf("clear under a voided claim: %v, want Conflict", err)
		}
		if err := h.Store.Commit(ctx, newer, samplePolicy("alice", now), nil); err != nil {
			t.Errorf("commit under the newest claim: %v", err)
		}
		if err := h.Store.ClearOutbox(ctx, newer); err != nil {
			t.Errorf("clear under the newest claim: %v", err)
		}
	})

	t.Run("an advanced revocation cutoff voids earlier claims and always rises", func(t *testing.T) {
		h := newHarness(t)
		advancer, ok := h.Store.(interface {
			AdvanceCutoff(ctx context.Context, userID string, want time.Time) (time.Time, error)
			Cutoff(ctx context.Context, userID string) (time.Time, error)
		})
		if !ok {
			t.Fatal("the store keeps no revocation cutoffs")
		}
		c, _ := h.Store.Claim(ctx, "alice", now)
		if err := h.Store.Commit(ctx, c, samplePolicy("alice", now), nil); err != nil {
			t.Fatal(err)
		}
		racing, _ := h.Store.Claim(ctx, "alice", now)
		cutoff := now.Add(time.Minute).Truncate(time.Millisecond)
		if got, err := advancer.AdvanceCutoff(ctx, "alice", cutoff); err != nil || !got.Equal(cutoff) {
			t.Fatalf("a first cutoff: %v, %v; want %v", got, err, cutoff)
		}
		if err := h.Store.Commit(ctx, racing, samplePolicy("alice", now), nil); broker.KindOf(err) != broker.Conflict {
			t.Errorf("a recompute that claimed before the cutoff advanced committed over it: %v, want Conflict", err)
		}
		// Asked for an earlier cutoff, or the same one, the store still
		// gives a new one: a millisecond later, each time.
		for i, want := range []time.Time{now, cutoff} {
			got, err := advancer.AdvanceCutoff(ctx, "alice", want)
			if next := cutoff.Add(time.Duration(i+1) * time.Millisecond); err != nil || !got.Equal(next) {
				t.Errorf("asked for %v: %v, %v; want %v", want, got, err, next)
			}
		}
		got, err := h.Store.GetPolicy(ctx, "alice")
		if want := cutoff.Add(2 * time.Millisecond); err != nil || !got.RevokedBefore.Equal(want) || got.Version != samplePolicy("alice", now).Version {
			t.Errorf("item after the advances: cutoff %v, version %q (err %v), want %v and the committed version", got.RevokedBefore, got.Version, err, want)
		}
		if got, err := advancer.Cutoff(ctx, "alice"); err != nil || !got.Equal(cutoff.Add(2*time.Millisecond)) {
			t.Errorf("Cutoff of alice: %v, %v; want %v", got, err, cutoff.Add(2*time.Millisecond))
		}
		if got, err := advancer.Cutoff(ctx, "bob"); err != nil || !got.IsZero() {
			t.Errorf("Cutoff of a user with no item: %v, %v; want none", got, err)
		}
		if _, err := advancer.AdvanceCutoff(ctx, "bob", cutoff); err != nil {
			t.Fatal(err)
		}
		if got, err := h.Store.GetPolicy(ctx, "bob"); err != nil || !got.Empty() || !got.RevokedBefore.Equal(cutoff) {
			t.Errorf("a cutoff for a user with no item: %+v, %v; want an item that grants nothing with the cutoff", got, err)
		}
	})

	t.Run("the deny list's fallback cutoff reads back, and is zero without one", func(t *testing.T) {
		h := newHarness(t)
		// memstore keeps lists; ddbstore keeps their records, which
		// revoker.RecordStore encodes.
		var st struct {
			revoker.Store
			fallbackReader
		}
		switch s := h.Store.(type) {
		case interface {
			revoker.Store
			fallbackReader
		}:
			st.Store, st.fallbackReader = s, s
		case interface {
			revoker.Records
			fallbackReader
		}:
			st.Store, st.fallbackReader = revoker.RecordStore{Records: s}, s
		default:
			t.Fatal("the store keeps no deny list")
		}
		if got, err := st.FallbackCutoff(ctx); err != nil || !got.IsZero() {
			t.Errorf("no deny list: %v, %v; want the zero time", got, err)
		}
		users := revoker.List{Version: 1, Users: map[string]revoker.Cutoff{"alice": {Before: now, Until: now.Add(time.Hour)}}}
		if err := st.SaveDenyList(ctx, 0, users); err != nil {
			t.Fatal(err)
		}
		if got, err := st.FallbackCutoff(ctx); err != nil || !got.IsZero() {
			t.Errorf("a list without a fallback: %v, %v; want the zero time", got, err)
		}
		before := now.Add(4*time.Second + 250*time.Millisecond)
		all := revoker.List{Version: 2, All: revoker.Cutoff{Before: before, Until: now.Add(time.Hour)}}
		if err := st.SaveDenyList(ctx, 1, all); err != nil {
			t.Fatal(err)
		}
		if got, err := st.FallbackCutoff(ctx); err != nil || !got.Equal(before) {
			t.Errorf("a list that fell back: %v, %v; want %v", got, err, before)
		}
		if err := st.SaveDenyList(ctx, 2, revoker.List{Version: 3}); err != nil {
			t.Fatal(err)
		}
		if got, err := st.FallbackCutoff(ctx); err != nil || !got.IsZero() {
			t.Errorf("the fallback pruned: %v, %v; want the zero time", got, err)
		}
	})

	t.Run("one owner at a time holds the lease on the role's pages", func(t *testing.T) {
		h := newHarness(t)
		l, ok := h.Store.(revoker.PagesLease)
		if !ok {
			t.Fatal("the store keeps no lease on the role's pages")
		}
		at := func(s int) time.Time { return now.Add(time.Duration(s) * time.Second) }
		conflict := func(err error) bool { return broker.KindOf(err) == broker.Conflict }
		steps := []struct {
			name string
			do   func() error
			fail bool // with a Conflict
		}{
			{"a free lease is taken", func() error { return l.TakePages(ctx, "a", at(0), at(20)) }, false},
			{"a held lease is refused", func() error { return l.TakePages(ctx, "b", at(1), at(21)) }, true},
			{"its holder takes it again", func() error { return l.TakePages(ctx, "a", at(1), at(21)) }, false},
			{"its holder renews it", func() error { return l.RenewPages(ctx, "a", at(2), at(22)) }, false},
			{"another owner cannot renew it", func() error { return l.RenewPages(ctx, "b", at(2), at(22)) }, true},
			{"another owner's release leaves it alone", func() error { return l.ReleasePages(ctx, "b") }, false},
			{"so it is still refused", func() error { return l.TakePages(ctx, "b", at(2), at(22)) }, true},
			{"its holder releases it", func() error { return l.ReleasePages(ctx, "a") }, false},
			{"a released lease cannot be renewed", func() error { return l.RenewPages(ctx, "a", at(2), at(22)) }, true},
			{"a released lease is taken", func() error { return l.TakePages(ctx, "b", at(2), at(22)) }, false},
			{"a lease that ran out cannot be renewed", func() error { return l.RenewPages(ctx, "b", at(23), at(43)) }, true},
			{"a lease that ran out is taken", func() error { return l.TakePages(ctx, "c", at(23), at(43)) }, false},
			{"its holder from before cannot renew it", func() error { return l.RenewPages(ctx, "b", at(23), at(43)) }, true},
			{"the previous holder's late release leaves it alone", func() error { return l.ReleasePages(ctx, "b") }, false},
			{"so it is refused to others", func() error { return l.TakePages(ctx, "d", at(24), at(44)) }, true},
		}
		for _, st := range steps {
			if err := st.do(); (err != nil) != st.fail || (st.fail && !conflict(err)) {
				t.Errorf("%s: %v; want a conflict %v", st.name, err, st.fail)
			}
		}
	})

	t.Run("a tombstone reads as an empty policy with its version", func(t *testing.T) {
		h := newHarness(t)
		c, _ := h.Store.Claim(ctx, "alice", now)
		if err := h.Store.Commit(ctx, c, broker.UserPolicy{UserID: "alice", Version: "v1.empty", UpdatedAt: now}, nil); err != nil {
			t.Fatal(err)
		}
		got, err := h.Store.GetPolicy(ctx, "alice")
		if err != nil || !got.Empty() || got.Version != "v1.empty" {
			t.Errorf("tombstone = %+v, %v", got, err)
		}
	})

	t.Run("cleared outbox is gone from the next claim", func(t *testing.T) {
		h := newHarness(t)
		c, _ := h.Store.Claim(ctx, "alice", now)
		_ = h.Store.Commit(ctx, c, samplePolicy("alice", now), []broker.PolicyChangedDetail{{ChangeID: "x"}})
		if err := h.Store.ClearOutbox(ctx, c); err != nil {
			t.Fatal(err)
		}
		c2, _ := h.Store.Claim(ctx, "alice", now)
		if len(c2.Outbox) != 0 {
			t.Errorf("outbox after clear = %+v", c2.Outbox)
		}
	})

	t.Run("outboxes cleared together are gone, except those of voided claims", func(t *testing.T) {
		h := newHarness(t)
		// More users than one call takes, so that the calls' split is tested.
		var claims []broker.Claim
		for i := range 130 {
			u := fmt.Sprintf("user-%03d", i)
			c, _ := h.Store.Claim(ctx, u, now)
			if err := h.Store.Commit(ctx, c, samplePolicy(u, now), []broker.PolicyChangedDetail{{ChangeID: u}}); err != nil {
				t.Fatal(err)
			}
			claims = append(claims, c)
		}
		// user-007's and user-120's claims are voided: their outboxes belong to the newer holders.
		for _, u := range []string{"user-007", "user-120"} {
			if _, err := h.Store.Claim(ctx, u, now); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.Store.ClearOutboxes(ctx, claims); err != nil {
			t.Fatal(err)
		}
		for _, c := range claims {
			next, _ := h.Store.Claim(ctx, c.UserID, now)
			kept := c.UserID == "user-007" || c.UserID == "user-120"
			if got := len(next.Outbox) == 1; got != kept {
				t.Errorf("%s: outbox %+v, want kept=%v", c.UserID, next.Outbox, kept)
			}
		}
	})

	t.Run("a project's memberships are read for many users at once", func(t *testing.T) {
		h := newHarness(t)
		var users []string
		want := map[string]broker.SourceItem{}
		for i := range 130 {
			u := fmt.Sprintf("user-%03d", i)
			users = append(users, u)
			if i%3 == 0 {
				continue // not a member
			}
			it := broker.SourceItem{PK: "USER#" + u, SK: "PROJECT#p1", Role: broker.StringAttr("write"), ExpiresAt: broker.StringAttr("2027-01-01T00:00:00Z")}
			h.PutSource(it)
			want[u] = it
		}
		h.PutSource(broker.SourceItem{PK: "USER#user-000", SK: "PROJECT#p2"})
		got, err := h.Store.ProjectMemberships(ctx, "p1", users)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("memberships (-want +got):\n%s", diff)
		}
	})

	for _, how := range Corruptions {
		t.Run("a corrupt claim counter ("+string(how)+") is refused to readers and reset by the next claim", func(t *testing.T) {
			h := newHarness(t)
			old, _ := h.Store.Claim(ctx, "alice", now)
			if err := h.Store.Commit(ctx, old, samplePolicy("alice", now), nil); err != nil {
				t.Fatal(err)
			}
			h.CorruptClaim(t, "alice", how)
			if _, err := h.Store.GetPolicy(ctx, "alice"); !errors.Is(err, broker.ErrCorruptItem) {
				t.Fatalf("read of an item with a corrupt counter: %v, want ErrCorruptItem", err)
			}
			if err := h.Store.Commit(ctx, old, samplePolicy("alice", now), nil); broker.KindOf(err) != broker.Conflict {
				t.Errorf("commit under a claim taken before the corruption: %v, want Conflict", err)
			}
			c, err := h.Store.Claim(ctx, "alice", now)
			if err != nil {
				t.Fatalf("claim of a corrupt counter: %v", err)
			}
			if c.Corrupt == "" || !c.Prev.Empty() || c.Ticket <= old.Ticket {
				t.Errorf("reset claim = ticket %d (old %d), corrupt %q, prev %d grants", c.Ticket, old.Ticket, c.Corrupt, len(c.Prev.Grants))
			}
			got, err := h.Store.GetPolicy(ctx, "alice")
			if err != nil || !got.Empty() {
				t.Errorf("after the reset, before any commit: %+v, %v; want an item that grants nothing", got, err)
			}
			if err := h.Store.Commit(ctx, old, samplePolicy("alice", now), nil); broker.KindOf(err) != broker.Conflict {
				t.Errorf("commit under the pre-corruption claim after the reset: %v, want Conflict", err)
			}
			if err := h.Store.Commit(ctx, c, samplePolicy("alice", now), nil); err != nil {
				t.Fatalf("commit under the reset claim: %v", err)
			}
			next, err := h.Store.Claim(ctx, "alice", now)
			if err != nil || next.Ticket <= c.Ticket || next.Corrupt != "" || next.Prev.Version != "v1.sample" {
				t.Errorf("claim after the repair = %+v, %v", next, err)
			}
		})
	}

	t.Run("an undecodable document is refused to readers and replaced under the next claim", func(t *testing.T) {
		h := newHarness(t)
		old, _ := h.Store.Claim(ctx, "alice", now)
		if err := h.Store.Commit(ctx, old, samplePolicy("alice", now), nil); err != nil {
			t.Fatal(err)
		}
		h.CorruptDocument(t, "alice")
		if _, err := h.Store.GetPolicy(ctx, "alice"); !errors.Is(err, broker.ErrCorruptItem) {
			t.Fatalf("read of an item with an undecodable document: %v, want ErrCorruptItem", err)
		}
		if h.Scanner != nil {
			var grants bool
			err := h.Scanner.ScanPolicyTable(ctx, 0, 1,
				func(u string, g bool, _ time.Time) error { grants = grants || (u == "alice" && g); return nil },
				func(string, broker.Member) error { return nil })
			if err != nil || !grants {
				t.Errorf("scan: alice's item grants %v (err %v), want true: its document is there", grants, err)
			}
		}
		c, err := h.Store.Claim(ctx, "alice", now)
		if err != nil || c.Corrupt == "" || !c.Prev.Empty() || c.Ticket <= old.Ticket {
			t.Fatalf("claim of an undecodable item = ticket %d (old %d), corrupt %q, prev %d grants, err %v",
				c.Ticket, old.Ticket, c.Corrupt, len(c.Prev.Grants), err)
		}
		if err := h.Store.Commit(ctx, c, samplePolicy("alice", now), nil); err != nil {
			t.Fatalf("commit over the undecodable document: %v", err)
		}
		if got, err := h.Store.GetPolicy(ctx, "alice"); err != nil || got.Version != "v1.sample" {
			t.Errorf("after the commit: version %q, err %v", got.Version, err)
		}
	})

	t.Run("only commits and touches stamp checkedAt, claims do not", func(t *testing.T) {
		h := newHarness(t)
		c, _ := h.Store.Claim(ctx, "alice", now)
		if err := h.Store.Commit(ctx, c, samplePolicy("alice", now), nil); err != nil {
			t.Fatal(err)
		}
		if got := h.CheckedAt(t, "alice"); !got.Equal(now) {
			t.Errorf("after commit: checkedAt %v, want %v", got, now)
		}
		later := now.Add(time.Hour)
		c2, _ := h.Store.Claim(ctx, "alice", later)
		if got := h.CheckedAt(t, "alice"); !got.Equal(now) {
			t.Errorf("a claim stamped the item: checkedAt %v, want %v", got, now)
		}
		c3, _ := h.Store.Claim(ctx, "alice", later)
		if err := h.Store.Touch(ctx, c2, later); broker.KindOf(err) != broker.Conflict {
			t.Errorf("touch under a voided claim: %v, want Conflict", err)
		}
		if err := h.Store.Touch(ctx, c3, later); err != nil {
			t.Fatal(err)
		}
		if got := h.CheckedAt(t, "alice"); !got.Equal(later) {
			t.Errorf("after touch: checkedAt %v, want %v", got, later)
		}
	})

	t.Run("source queries return only their kind of item", func(t *testing.T) {
		h := newHarness(t)
		h.PutSource(broker.SourceItem{PK: "USER#alice", SK: "PROJECT#p1", Role: broker.StringAttr("write")})
		h.PutSource(broker.SourceItem{PK: "USER#alice", SK: "PROJECT#p2"})
		h.PutSource(broker.SourceItem{PK: "USER#alice", SK: "PROFILE"})
		h.PutSource(broker.SourceItem{PK: "PROJECT#p1", SK: "BUCKET#lake", Prefix: broker.StringAttr("raw/")})
		h.PutSource(broker.SourceItem{PK: "PROJECT#p1", SK: "SETTINGS"})
		h.PutSource(broker.SourceItem{PK: "USER#bob", SK: "PROJECT#p1"})
		h.DeleteSource("USER#alice", "PROJECT#p2")
		ms, err := h.Store.UserMemberships(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		want := []broker.SourceItem{{PK: "USER#alice", SK: "PROJECT#p1", Role: broker.StringAttr("write")}}
		if diff := cmp.Diff(want, ms); diff != "" {
			t.Errorf("memberships (-want +got):\n%s", diff)
		}
		bs, err := h.Store.ProjectBuckets(ctx, "p1")
		if err != nil {
			t.Fatal(err)
		}
		wantB := []broker.SourceItem{{PK: "PROJECT#p1", SK: "BUCKET#lake", Prefix: broker.StringAttr("raw/")}}
		if diff := cmp.Diff(wantB, bs); diff != "" {
			t.Errorf("buckets (-want +got):\n%s", diff)
		}
	})

	t.Run("index entries are removed only on their token", func(t *testing.T) {
		h := newHarness(t)
		if err := h.Store.PutMembers(ctx, "alice", []string{"p1", "p2"}, 7); err != nil {
			t.Fatal(err)
		}
		toks, err := h.Store.MemberTokens(ctx, "alice", []string{"p1", "p2", "p3"})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(map[string]int64{"p1": 7, "p2": 7}, toks); diff != "" {
			t.Errorf("tokens (-want +got):\n%s", diff)
		}
		_ = h.Store.PutMembers(ctx, "alice", []string{"p1"}, 9) // a re-join rewrites the token
		if ok, err := h.Store.RemoveMember(ctx, "p1", "alice", 7); ok || err != nil {
			t.Errorf("removal with a stale token: %v, %v", ok, err)
		}
		if ok, err := h.Store.RemoveMember(ctx, "p2", "alice", 7); !ok || err != nil {
			t.Errorf("removal with the current token: %v, %v", ok, err)
		}
		if ok, err := h.Store.RemoveMember(ctx, "p2", "alice", 7); ok || err != nil {
			t.Errorf("removal of a missing entry: %v, %v", ok, err)
		}
		toks, _ = h.Store.MemberTokens(ctx, "alice", []string{"p1", "p2"})
		if diff := cmp.Diff(map[string]int64{"p1": 9}, toks); diff != "" {
			t.Errorf("tokens after removals (-want +got):\n%s", diff)
		}
	})

	t.Run("project members come in pages that cover every member once", func(t *testing.T) {
		h := newHarness(t)
		var want []string
		for i := range 23 {
			u := fmt.Sprintf("user-%03d", i)
			want = append(want, u)
			_ = h.Store.PutMembers(ctx, u, []string{"p1"}, int64(i))
		}
		_ = h.Store.PutMembers(ctx, "other", []string{"p2"}, 1)
		var got []string
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatal("pagination does not end")
			}
			page, err := h.Store.ProjectMembers(ctx, "p1", cursor, 5)
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Members) > 5 {
				t.Fatalf("page of %d, limit 5", len(page.Members))
			}
			for _, m := range page.Members {
				got = append(got, m.UserID)
			}
			if page.Next == "" {
				break
			}
			cursor = page.Next
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("members (-want +got):\n%s", diff)
		}
	})

	t.Run("membership scans see every item once, whatever the segments and pages", func(t *testing.T) {
		h := newHarness(t)
		if h.Scanner == nil {
			t.Skip("the store has no scans")
		}
		var want []broker.SourceItem
		put := func(it broker.SourceItem) {
			h.PutSource(it)
			want = append(want, it)
		}
		for u := range 25 {
			for _, p := range []int{u % 7, (u + 3) % 7} {
				put(broker.SourceItem{PK: fmt.Sprintf("USER#user-%03d", u), SK: fmt.Sprintf("PROJECT#proj-%d", p), Role: broker.StringAttr("read")})
			}
		}
		for p := range 7 {
			put(broker.SourceItem{PK: fmt.Sprintf("PROJECT#proj-%d", p), SK: "BUCKET#lake-" + fmt.Sprint(p), Prefix: broker.StringAttr("raw/")})
			put(broker.SourceItem{PK: fmt.Sprintf("PROJECT#proj-%d", p), SK: "BUCKET#sea-" + fmt.Sprint(p)})
		}
		put(broker.SourceItem{PK: "USER#user-000", SK: "PROFILE"})
		slices.SortFunc(want, compareItems)
		for _, pages := range scanPageSizes(h) {
			for _, total := range []int{1, 3, 8} {
				t.Run(fmt.Sprintf("%d segments, %s", total, pageName(pages)), func(t *testing.T) {
					h.setPageSize(pages)
					before := h.pages()
					var got []broker.SourceItem
					for seg := range total {
						var items []broker.SourceItem
						err := h.Scanner.ScanMemberships(ctx, seg, total, func(it broker.SourceItem) error {
							items = append(items, it)
							return nil
						})
						if err != nil {
							t.Fatalf("segment %d: %v", seg, err)
						}
						checkPartitions(t, seg, items)
						got = append(got, items...)
					}
					slices.SortFunc(got, compareItems)
					if diff := cmp.Diff(want, got); diff != "" {
						t.Errorf("items over all segments (-want +got):\n%s", diff)
					}
					h.checkPages(t, pages, before, len(want))
				})
			}
		}
		h.setPageSize(0)
		calls := 0
		err := h.Scanner.ScanMemberships(ctx, 0, 1, func(broker.SourceItem) error {
			calls++
			return errStop
		})
		if !errors.Is(err, errStop) || calls != 1 {
			t.Errorf("a callback's error: scan returned %v after %d calls", err, calls)
		}
		for _, seg := range [][2]int{{0, 0}, {-1, 2}, {2, 2}} {
			if err := h.Scanner.ScanMemberships(ctx, seg[0], seg[1], func(broker.SourceItem) error { return nil }); broker.KindOf(err) != broker.Invalid {
				t.Errorf("segment %d of %d: %v, want Invalid", seg[0], seg[1], err)
			}
		}
	})

	t.Run("policy table scans see every item and entry once, whatever the segments and pages", func(t *testing.T) {
		h := newHarness(t)
		if h.Scanner == nil {
			t.Skip("the store has no scans")
		}
		type row struct {
			Grants    bool
			CheckedAt time.Time
		}
		wantUsers := map[string]row{}
		for u := range 18 {
			user := fmt.Sprintf("user-%03d", u)
			at := now.Add(time.Duration(u) * time.Millisecond)
			c, err := h.Store.Claim(ctx, user, at)
			if err != nil {
				t.Fatal(err)
			}
			switch u % 3 {
			case 0: // a policy
				p := samplePolicy(user, at.Add(time.Second))
				if err := h.Store.Commit(ctx, c, p, nil); err != nil {
					t.Fatal(err)
				}
				wantUsers[user] = row{true, p.UpdatedAt}
			case 1: // a tombstone
				p := broker.UserPolicy{UserID: user, Version: "v1.empty", UpdatedAt: at.Add(2 * time.Second)}
				if err := h.Store.Commit(ctx, c, p, nil); err != nil {
					t.Fatal(err)
				}
				wantUsers[user] = row{false, p.UpdatedAt}
			case 2: // a claim never committed: no stamp
				wantUsers[user] = row{false, time.Time{}}
			}
		}
		wantEntries := map[string]int64{}
		for u := range 20 {
			user := fmt.Sprintf("member-%03d", u)
			projects := []string{fmt.Sprintf("proj-%d", u%5), fmt.Sprintf("proj-%d", (u+2)%5)}
			if err := h.Store.PutMembers(ctx, user, projects, int64(100+u)); err != nil {
				t.Fatal(err)
			}
			for _, p := range projects {
				wantEntries[p+"/"+user] = int64(100 + u)
			}
		}
		if err := h.Store.SaveCheckpoint(ctx, "proj-1#e1", "member-004", now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		for _, pages := range scanPageSizes(h) {
			for _, total := range []int{1, 3, 8} {
				t.Run(fmt.Sprintf("%d segments, %s", total, pageName(pages)), func(t *testing.T) {
					h.setPageSize(pages)
					before := h.pages()
					users, entries := map[string]row{}, map[string]int64{}
					var dup []string
					for seg := range total {
						err := h.Scanner.ScanPolicyTable(ctx, seg, total,
							func(user string, grants bool, checkedAt time.Time) error {
								if _, ok := users[user]; ok {
									dup = append(dup, "user "+user)
								}
								users[user] = row{grants, checkedAt}
								return nil
							},
							func(project string, m broker.Member) error {
								k := project + "/" + m.UserID
								if _, ok := entries[k]; ok {
									dup = append(dup, "entry "+k)
								}
								entries[k] = m.Token
								return nil
							})
						if err != nil {
							t.Fatalf("segment %d: %v", seg, err)
						}
					}
					if len(dup) > 0 {
						t.Errorf("seen more than once: %v", dup)
					}
					if diff := cmp.Diff(wantUsers, users); diff != "" {
						t.Errorf("policy items (-want +got):\n%s", diff)
					}
					if diff := cmp.Diff(wantEntries, entries); diff != "" {
						t.Errorf("index entries (-want +got):\n%s", diff)
					}
					h.checkPages(t, pages, before, len(wantUsers)+len(wantEntries))
				})
			}
		}
		h.setPageSize(0)
		err := h.Scanner.ScanPolicyTable(ctx, 0, 1,
			func(string, bool, time.Time) error { return nil },
			func(string, broker.Member) error { return errStop })
		if !errors.Is(err, errStop) {
			t.Errorf("a callback's error: scan returned %v", err)
		}
	})

	t.Run("checkpoints are saved, loaded and deleted", func(t *testing.T) {
		h := newHarness(t)
		if c, err := h.Store.LoadCheckpoint(ctx, "p1#e1"); c != "" || err != nil {
			t.Errorf("missing checkpoint = %q, %v", c, err)
		}
		_ = h.Store.SaveCheckpoint(ctx, "p1#e1", "user-042", now.Add(time.Hour))
		if c, _ := h.Store.LoadCheckpoint(ctx, "p1#e1"); c != "user-042" {
			t.Errorf("checkpoint = %q", c)
		}
		_ = h.Store.DeleteCheckpoint(ctx, "p1#e1")
		if c, _ := h.Store.LoadCheckpoint(ctx, "p1#e1"); c != "" {
			t.Errorf("deleted checkpoint = %q", c)
		}
	})
}

func samplePolicy(user string, now time.Time) broker.UserPolicy {
	return broker.UserPolicy{
		UserID:  user,
		Version: "v1.sample",
		Grants:  []broker.Grant{{Bucket: "lake", Prefix: "raw/", Access: broker.Write, Projects: []string{"p1"}}},
		Sets:    []broker.PolicySet{{Policy: `{"Version":"2012-10-17","Statement":[]}`, Grants: []int{0}}},
		ByProject: map[string][]broker.Place{
			"p1": {{Bucket: "lake", Prefix: "raw/", Access: broker.Write}},
		},
		UpdatedAt: now,
	}
}

var errStop = errors.New("stop")

func compareItems(a, b broker.SourceItem) int {
	if c := strings.Compare(a.PK, b.PK); c != 0 {
		return c
	}
	return strings.Compare(a.SK, b.SK)
}

// scanPageSizes are the page sizes to scan with: the default and, when the
// store has pages, pages far smaller than a segment.
func scanPageSizes(h Harness) []int {
	if h.PageSize == nil {
		return []int{0}
	}
	return []int{0, 3}
}

func pageName(n int) string {
	if n == 0 {
		return "default pages"
	}
	return fmt.Sprintf("pages of %d", n)
}

func (h Harness) setPageSize(n int) {
	if h.PageSize != nil {
		h.PageSize(n)
	}
}

func (h Harness) pages() int {
	if h.ScanPages == nil {
		return 0
	}
	return h.ScanPages()
}

// checkPages checks that small pages were used: items of n items each
// cannot have come in fewer than items/n pages.
func (h Harness) checkPages(t *testing.T, n, before, items int) {
	t.Helper()
	if n == 0 || h.ScanPages == nil {
		return
	}
	if got := h.ScanPages() - before; got < items/n {
		t.Errorf("%d items in %d pages of at most %d: the paging was not exercised", items, got, n)
	}
}

// checkPartitions checks the scan order rebuild relies on: a partition's
// items come together, sorted by sort key.
func checkPartitions(t *testing.T, seg int, items []broker.SourceItem) {
	t.Helper()
	done := map[string]bool{}
	for i, it := range items {
		if i > 0 && items[i-1].PK == it.PK {
			if strings.Compare(items[i-1].SK, it.SK) >= 0 {
				t.Errorf("segment %d: %s: %s before %s", seg, it.PK, items[i-1].SK, it.SK)
			}
			continue
		}
		if done[it.PK] {
			t.Errorf("segment %d: partition %s split", seg, it.PK)
		}
		done[it.PK] = true
	}
}

// fallbackReader reads the deny list's fallback cutoff on its own, as the
// endpoint does.
type fallbackReader interface {
	FallbackCutoff(ctx context.Context) (time.Time, error)
}
