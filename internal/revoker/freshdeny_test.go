package revoker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/revoker"
	"github.com/credbroker/credbroker/internal/testkit/rolesession"
)

// narrowingEvent is the projector's PolicyChanged for a narrowing of
// user's item from cutoff prev (zero: none) to cutoff, as the bus rule
// hands it to the revoker.
func narrowingEvent(user, changeID string, prev, cutoff time.Time) json.RawMessage {
	detail := map[string]any{
		"schemaVersion": broker.AuditSchemaVersion, "changeId": changeID, "userId": user, "policyVersion": changeID,
		"added": []any{}, "removed": []any{}, "revokeBefore": cutoff,
		"revokedCutoffTags": []string{broker.CutoffTag(user, prev)},
	}
	if !prev.IsZero() {
		detail["previousRevokeBefore"] = prev
	}
	b, _ := json.Marshal(detail)
	return json.RawMessage(fmt.Sprintf(`{"version":"0","id":%q,"detail-type":"PolicyChanged","source":%q,"account":"1","time":"2026-11-30T12:00:00Z","region":"us-east-1","resources":[],"detail":%s}`,
		changeID, broker.SourceProjector, b))
}

// session is a session the endpoint minted for user from an item whose
// cutoff was cutoff (zero: none), stamped by STS at issued.
func session(user string, cutoff, issued time.Time) rolesession.Session {
	return rolesession.Session{User: user, UserTag: broker.UserTag(user), Tag: broker.CutoffTag(user, cutoff), Issued: issued}
}

// allowed judges a session against the role's revocation pages, as IAM
// would on its next request.
func allowed(t *testing.T, pages []string, s rolesession.Session) bool {
	t.Helper()
	pol, err := rolesession.RevocationPolicy(pages...)
	if err != nil {
		t.Fatalf("the role's pages do not parse: %v\n%q", err, pages)
	}
	return s.AllowedBy(pol)
}

// A user narrowed twice in a row: the credentials the endpoint mints from
// the item of the second narrowing work at once, before the revoker has
// applied it (its batch window, its run, IAM's propagation), because no
// revocation that predates them names their cutoff; the credentials
// minted before each narrowing are denied once the revoker applies it.
// (The deny of "every session of the user but those of the cutoff it
// knows" denied them until the revoker caught up: 52 % of make load's
// answers.)
func TestCredentialsMintedAfterASecondNarrowingWorkBeforeTheRevokerAppliesIt(t *testing.T) {
	w := newWorld()
	h := &revoker.Handler{Service: w.svc, Now: func() time.Time { return w.now }}
	ctx := context.Background()
	pages := func() []string { return w.role.current() }

	// Before: alice was never revoked, bob neither.
	beforeAll := session("alice", time.Time{}, t0.Add(-time.Minute))
	bob := session("bob", time.Time{}, t0.Add(-time.Minute))

	// The first narrowing: the projector moves alice's item to c1; a
	// request that read the old item just before mints just after.
	c1 := broker.RevokeBefore(t0)
	if _, err := w.store.AdvanceCutoff(ctx, "alice", c1); err != nil {
		t.Fatal(err)
	}
	racing1 := session("alice", time.Time{}, t0.Add(2*time.Second))
	w.now = t0.Add(time.Second)
	if _, err := h.Invoke(ctx, narrowingEvent("alice", "alice/v2/1", time.Time{}, c1)); err != nil {
		t.Fatal(err)
	}
	betweenNarrowings := session("alice", c1, t0.Add(1500*time.Millisecond))
	judge(t, "after the first narrowing is applied", pages(), []judged{
		{"a session minted before the first narrowing is denied", beforeAll, false},
		{"a session minted from the old item as the first narrowing landed is denied", racing1, false},
		{"a session minted from the first narrowing's item works", betweenNarrowings, true},
		{"bob's session works", bob, true},
	})

	// The second narrowing: the item moves to c2, and the endpoint mints
	// from it at once, while the revoker has yet to apply it.
	w.now = t0.Add(2 * time.Second)
	c2 := broker.RevokeBefore(w.now)
	if _, err := w.store.AdvanceCutoff(ctx, "alice", c2); err != nil {
		t.Fatal(err)
	}
	racing2 := session("alice", c1, w.now.Add(1500*time.Millisecond))
	fresh := session("alice", c2, w.now.Add(500*time.Millisecond))
	if !allowed(t, pages(), fresh) {
		t.Errorf("credentials minted from the second narrowing's item are denied before the revoker applies it:\n%q", pages())
	}

	w.now = t0.Add(3 * time.Second)
	if _, err := h.Invoke(ctx, narrowingEvent("alice", "alice/v3/2", c1, c2)); err != nil {
		t.Fatal(err)
	}
	judge(t, "after the second narrowing is applied", pages(), []judged{
		{"a session minted before the first narrowing is denied", beforeAll, false},
		{"a session minted between the narrowings is denied", betweenNarrowings, false},
		{"a session minted from the first narrowing's item as the second landed is denied", racing2, false},
		{"a session minted from the second narrowing's item works", fresh, true},
		{"a later session of that item works", session("alice", c2, t0.Add(time.Hour)), true},
		{"bob's session works", bob, true},
	})
}

// judged is a session and whether the role's pages should allow it.
type judged struct {
	name    string
	s       rolesession.Session
	allowed bool
}

func judge(t *testing.T, when string, pages []string, cases []judged) {
	t.Helper()
	for _, c := range cases {
		if got := allowed(t, pages, c.s); got != c.allowed {
			t.Errorf("%s: %s: allowed %v\n%q", when, c.name, got, pages)
		}
	}
}
