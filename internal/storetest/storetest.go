// Package storetest is the conformance suite of the broker's store
// interfaces. ddbstore (on moto) and memstore both run it, so the in-memory
// fake used for scale tests behaves like the real adapter.
package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
)

// Store is everything the projector needs from the tables.
type Store interface {
	broker.SourceReader
	broker.PolicyStore
	broker.MemberIndex
	broker.Checkpoints
}

// Harness is a fresh, empty store and a way to write source items.
type Harness struct {
	Store        Store
	PutSource    func(broker.SourceItem)
	DeleteSource func(pk, sk string)
}

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
