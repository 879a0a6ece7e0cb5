package revoker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/revoker"
	"github.com/credbroker/credbroker/internal/testkit/memstore"
)

// counter collects the revoker's metrics.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) count(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[name]++
}

func (c *counter) get(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[name]
}

// loudHandler is a handler whose metrics and ERROR lines the test reads.
func loudHandler(w *world) (*revoker.Handler, *counter, *bytes.Buffer) {
	var logs bytes.Buffer
	m := &counter{}
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelError}))
	w.svc.Metric, w.svc.Logger = m.count, log
	return &revoker.Handler{Service: w.svc, Now: func() time.Time { return w.now }, Logger: log, Metric: m.count}, m, &logs
}

func busEvent(source string, d broker.PolicyChangedDetail) json.RawMessage {
	b, _ := json.Marshal(d)
	return json.RawMessage(fmt.Sprintf(`{"version":"0","id":"e1","detail-type":"PolicyChanged","source":%q,"account":"1","time":"2026-11-30T12:00:00Z","region":"us-east-1","resources":[],"detail":%s}`, source, b))
}

// A revocation that is not applied as asked is never silent: a refusal,
// a clamp and a failure each count a metric (which template.yaml alarms
// on) and log an ERROR that says why; and a narrowing whose cutoff the
// revoker cannot trust still ends the user's old sessions.
func TestRefusedNarrowingIsLoud(t *testing.T) {
	t.Run("a narrowing from another source is refused, counted and logged; the bus is not asked to retry", func(t *testing.T) {
		w := newWorld()
		h, m, logs := loudHandler(w)
		cut := t0.Add(4 * time.Second)
		res, err := h.Invoke(context.Background(), busEvent("credbroker.credentials", broker.PolicyChangedDetail{UserID: "alice", ChangeID: "c1", RevokeBefore: &cut}))
		if err != nil || res != nil {
			t.Errorf("Invoke = %v, %v; want success (retrying cannot help)", res, err)
		}
		if m.get(revoker.MetricRefused) != 1 || !strings.Contains(logs.String(), `"level":"ERROR"`) || !strings.Contains(logs.String(), "credbroker.credentials") {
			t.Errorf("refusal: %d %s metrics, log %q", m.get(revoker.MetricRefused), revoker.MetricRefused, logs.String())
		}
	})
	t.Run("an operator's refused call returns the error to the operator", func(t *testing.T) {
		w := newWorld()
		h, m, _ := loudHandler(w)
		if _, err := h.Invoke(context.Background(), json.RawMessage(`{"action":"revoke","userId":"a*"}`)); !errors.Is(err, revoker.ErrRefused) {
			t.Errorf("Invoke = %v, want ErrRefused", err)
		}
		if m.get(revoker.MetricRefused) != 1 {
			t.Errorf("%d refusals counted", m.get(revoker.MetricRefused))
		}
	})
	t.Run("a narrowing too far ahead still ends the user's old sessions, at the revoker's clock, loudly", func(t *testing.T) {
		w := newWorld()
		h, m, logs := loudHandler(w)
		// The projector's clock ran ten minutes ahead: the item's cutoff,
		// and the tag of what is minted from it, are that far ahead.
		ahead := broker.RevokeBefore(t0.Add(10 * time.Minute))
		if _, err := w.store.AdvanceCutoff(context.Background(), "alice", ahead); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Invoke(context.Background(), busEvent(broker.SourceProjector, broker.PolicyChangedDetail{UserID: "alice", ChangeID: "c1", RevokeBefore: &ahead})); err != nil {
			t.Fatal(err)
		}
		doc := w.role.current()
		if works(t, doc, "alice", t0.Add(-time.Second)) || worksTagged(t, doc, "alice", t0, broker.CutoffTag("alice", t0.Add(-time.Hour))) {
			t.Errorf("alice's sessions from before the narrowing still work:\n%q", doc)
		}
		if !worksTagged(t, doc, "alice", t0, broker.CutoffTag("alice", ahead)) || !works(t, doc, "bob", t0.Add(-time.Second)) {
			t.Errorf("the deny reaches alice's sessions minted from the narrowed item, or beyond alice:\n%q", doc)
		}
		if m.get(revoker.MetricClamped) != 1 || !strings.Contains(logs.String(), "too far ahead") {
			t.Errorf("clamp: %d %s metrics, log %q", m.get(revoker.MetricClamped), revoker.MetricClamped, logs.String())
		}
		// The entry is kept to the revoker's clock, not to the far cutoff.
		l, _ := w.store.LoadDenyList(context.Background())
		if until := l.Users["alice"].Until; until.After(t0.Add(w.svc.MaxSession + 2*time.Minute)) {
			t.Errorf("the entry stays until %v, %v past the revoker's clock", until, until.Sub(t0))
		}
	})
	t.Run("a failure of the work is counted, logged and returned for Lambda to retry", func(t *testing.T) {
		w := newWorld()
		w.svc.Store = unreachableStore{w.store}
		h, m, logs := loudHandler(w)
		if _, err := h.Invoke(context.Background(), json.RawMessage(`{"action":"revoke","userId":"alice"}`)); err == nil || errors.Is(err, revoker.ErrRefused) {
			t.Errorf("Invoke = %v, want an error to retry", err)
		}
		if _, err := h.Invoke(context.Background(), json.RawMessage(`{"action":"prune"}`)); err == nil {
			t.Error("a failed prune returned no error")
		}
		if m.get(revoker.MetricFailed) != 1 || m.get(revoker.MetricPruneFailed) != 1 || strings.Count(logs.String(), `"level":"ERROR"`) < 2 {
			t.Errorf("failures: %v, log %q", m.n, logs.String())
		}
	})
}

// The deny list fails closed: whatever happened to its item, the next run
// keeps every revocation that the role's policy still enforces, sparing
// the sessions minted under each user's cutoff as before.
func TestLostDenyListKeepsRevocations(t *testing.T) {
	cuts := map[string]time.Time{"alice": t0.Add(4 * time.Second), "bob": t0.Add(9500 * time.Millisecond)}
	for _, tc := range []struct {
		name string
		lose func(w *world, backup revoker.List)
	}{
		{"an item deleted by mistake", func(w *world, _ revoker.List) { w.store.DeleteDenyList() }},
		{"an item that cannot be read", func(w *world, _ revoker.List) { w.store.CorruptDenyList() }},
		{"an item restored from an older backup", func(w *world, backup revoker.List) { w.store.RestoreDenyList(backup) }},
	} {
		t.Run(tc.name+" loses none of the role's revocations", func(t *testing.T) {
			w := newWorld()
			_, m, logs := loudHandler(w)
			ctx := context.Background()
			var backup revoker.List
			for _, u := range []string{"alice", "bob"} {
				// The projector writes the cutoff to the item first.
				if _, err := w.store.AdvanceCutoff(ctx, u, cuts[u]); err != nil {
					t.Fatal(err)
				}
				if _, err := w.svc.Revoke(ctx, narrowing(u, cuts[u])); err != nil {
					t.Fatal(err)
				}
				if u == "alice" {
					backup, _ = w.store.LoadDenyList(ctx)
				}
			}
			tc.lose(w, backup)

			w.now = t0.Add(20 * time.Second)
			carol := t0.Add(24 * time.Second)
			if _, err := w.svc.Revoke(ctx, narrowing("carol", carol)); err != nil {
				t.Fatal(err)
			}
			doc := w.role.current()
			for u, cut := range cuts {
				if works(t, doc, u, cut.Add(-time.Second)) {
					t.Errorf("%s's older session works again:\n%q", u, doc)
				}
				if !worksTagged(t, doc, u, cut.Add(-time.Second), broker.CutoffTag(u, cut)) {
					t.Errorf("%s's session minted under the cutoff is denied after the recovery:\n%q", u, doc)
				}
			}
			if works(t, doc, "carol", carol.Add(-time.Second)) {
				t.Errorf("the new revocation is missing:\n%q", doc)
			}
			l, err := w.store.LoadDenyList(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// Entries put back from the role's pages alone name no user:
			// the pages do not.
			var users []string
			for _, c := range l.Revoked {
				users = append(users, c.User)
			}
			slices.Sort(users)
			if len(users) != 3 || !slices.Contains(users, "carol") {
				t.Errorf("stored list revokes the tags of %q, want alice's, bob's and carol's", users)
			}
			if m.get(revoker.MetricDenyListRecovered) != 1 || !strings.Contains(logs.String(), "deny-list item") {
				t.Errorf("recovery: %d %s metrics, log %q", m.get(revoker.MetricDenyListRecovered), revoker.MetricDenyListRecovered, logs.String())
			}
		})
	}
	t.Run("a backup restored after a recovery still reads as older than the role", func(t *testing.T) {
		w := newWorld()
		ctx := context.Background()
		var backup revoker.List
		for i, u := range []string{"alice", "bob", "carol", "dave"} {
			if _, err := w.svc.Revoke(ctx, narrowing(u, t0.Add(time.Duration(i+4)*time.Second))); err != nil {
				t.Fatal(err)
			}
			if u == "carol" {
				backup, _ = w.store.LoadDenyList(ctx) // a point-in-time backup without dave
			}
		}
		w.store.DeleteDenyList()
		w.now = t0.Add(20 * time.Second)
		if _, err := w.svc.Revoke(ctx, revoker.Request{Reason: broker.ReasonOperator}); err != nil { // the prune recovers
			t.Fatal(err)
		}
		w.store.RestoreDenyList(backup) // the operator answers the alarm with the backup
		w.now = t0.Add(30 * time.Second)
		if _, err := w.svc.Revoke(ctx, revoker.Request{Reason: broker.ReasonOperator}); err != nil {
			t.Fatal(err)
		}
		if works(t, w.role.current(), "dave", t0.Add(6*time.Second)) {
			t.Errorf("dave's revoked session works again after the backup was restored:\n%q", w.role.current())
		}
	})
	t.Run("an operator's revocation put back from the role's pages gives way to the user's own entry", func(t *testing.T) {
		w := newWorld()
		ctx := context.Background()
		h := &revoker.Handler{Service: w.svc, Now: func() time.Time { return w.now }}
		res, err := h.Handle(ctx, json.RawMessage(`{"action":"revoke","userId":"dave","requestId":"op-1"}`))
		if err != nil {
			t.Fatal(err)
		}
		opCut := res.IssuedBefore
		stolen := broker.CutoffTag("dave", time.Time{})
		w.store.DeleteDenyList()
		w.now = t0.Add(20 * time.Second)
		if _, err := w.svc.Revoke(ctx, revoker.Request{Reason: broker.ReasonOperator}); err != nil {
			t.Fatal(err)
		}
		l, _ := w.store.LoadDenyList(ctx)
		if _, raw := l.RawOf("dave"); !raw {
			t.Fatalf("recovered list %+v, want dave's entry put back by tag", l)
		}
		// dave is narrowed later: the projector moves the item on, and the
		// narrowing's run merges the entry put back into dave's own.
		next := broker.RevokeBefore(w.now)
		if _, err := w.store.AdvanceCutoff(ctx, "dave", next); err != nil {
			t.Fatal(err)
		}
		if _, err := w.svc.Revoke(ctx, narrowingFrom("dave", opCut, next)); err != nil {
			t.Fatal(err)
		}
		l, _ = w.store.LoadDenyList(ctx)
		if _, raw := l.RawOf("dave"); raw || l.Users["dave"].Before.IsZero() {
			t.Errorf("list %+v, want dave's own entry in place of the one put back", l)
		}
		doc := w.role.current()
		if worksTagged(t, doc, "dave", t0, stolen) || worksTagged(t, doc, "dave", t0.Add(10*time.Second), broker.CutoffTag("dave", opCut)) {
			t.Errorf("a session of dave's earlier cutoffs works:\n%q", doc)
		}
		if !worksTagged(t, doc, "dave", w.now, broker.CutoffTag("dave", next)) {
			t.Errorf("a session of dave's latest cutoff is denied:\n%q", doc)
		}
	})
	t.Run("a prune alone rewrites a deleted item from the role's policy", func(t *testing.T) {
		w := newWorld()
		if _, err := w.svc.Revoke(context.Background(), narrowing("alice", t0)); err != nil {
			t.Fatal(err)
		}
		w.store.DeleteDenyList()
		if _, err := w.svc.Revoke(context.Background(), revoker.Request{Reason: broker.ReasonOperator}); err != nil {
			t.Fatal(err)
		}
		if l, err := w.store.LoadDenyList(context.Background()); err != nil || len(l.Revoked) != 1 {
			t.Errorf("item after the prune: %+v, %v; want alice's entry back", l, err)
		}
	})
	t.Run("a role policy the revoker did not write is left alone and the run fails", func(t *testing.T) {
		w := newWorld()
		handEdited := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"s3:*","Resource":"*"}]}`
		w.role.pages = []string{handEdited}
		if _, err := w.svc.Revoke(context.Background(), narrowing("carol", t0)); err == nil {
			t.Error("Revoke replaced a policy it cannot read")
		}
		if got := w.role.current(); got[0] != handEdited {
			t.Errorf("role policy replaced:\n%q", got)
		}
	})
	t.Run("a healthy list is not reported as lost while a prune is being put", func(t *testing.T) {
		w := newWorld()
		_, m, _ := loudHandler(w)
		if _, err := w.svc.Revoke(context.Background(), narrowing("alice", t0)); err != nil {
			t.Fatal(err)
		}
		// Past alice's entry: the role still holds it, the list may drop it.
		w.now = t0.Add(17 * time.Minute)
		if _, err := w.svc.Revoke(context.Background(), revoker.Request{Reason: broker.ReasonOperator}); err != nil {
			t.Fatal(err)
		}
		if m.get(revoker.MetricDenyListRecovered) != 0 || !empty(w.role.current()) {
			t.Errorf("%d recoveries, role %q", m.get(revoker.MetricDenyListRecovered), w.role.current())
		}
	})
}

// unreachableStore is a fault-injecting deny-list store: DynamoDB cannot
// be reached.
type unreachableStore struct{ revoker.Store }

func (unreachableStore) LoadDenyList(context.Context) (revoker.List, error) {
	return revoker.List{}, broker.Errorf(broker.Transient, "load deny list", "connection refused")
}

// failingRole is a fault-injecting role: its puts fail while fail is set.
type failingRole struct {
	*role
	mu   sync.Mutex
	fail bool
}

func (f *failingRole) Apply(ctx context.Context, page int, doc string) error {
	f.mu.Lock()
	fail := f.fail
	f.mu.Unlock()
	if fail {
		return broker.Errorf(broker.Transient, "put revocation policy", "Throttling")
	}
	return f.role.Apply(ctx, page, doc)
}

// Every applied revocation is announced, once, whoever applied it and
// whatever retries it took.
func TestEveryAppliedRevocationIsAnnouncedOnce(t *testing.T) {
	ctx := context.Background()
	t.Run("a revocation saved by a run that failed is announced by its retry, or after every retry failed by a later run", func(t *testing.T) {
		w := newWorld()
		fr := &failingRole{role: w.role, fail: true}
		w.svc.Role = fr
		aliceCut := t0.Add(4 * time.Second)
		if _, err := w.svc.Revoke(ctx, narrowing("alice", aliceCut)); err == nil {
			t.Fatal("the put failed, yet Revoke succeeded")
		}
		fr.mu.Lock()
		fr.fail = false
		fr.mu.Unlock()
		if _, err := w.svc.Revoke(ctx, narrowing("bob", t0.Add(5*time.Second))); err != nil {
			t.Fatal(err)
		}
		if got := announcedUsers(w); !cmp.Equal(got, []string{"bob"}) {
			t.Errorf("announced %v, want bob's alone while alice's run may still be retried", got)
		}
		if doc := w.role.current(); works(t, doc, "alice", aliceCut.Add(-time.Second)) {
			t.Errorf("bob's run did not put alice's saved entry on the role:\n%q", doc)
		}
		// Every retry of alice's run failed (its event is in the dead-letter
		// queue): the next prune announces what bob's run applied.
		w.now = t0.Add(revoker.OrphanAge + time.Second)
		if _, err := w.svc.Revoke(ctx, revoker.Request{Reason: broker.ReasonOperator}); err != nil {
			t.Fatal(err)
		}
		if got := announcedUsers(w); !cmp.Equal(got, []string{"bob", "alice"}) {
			t.Errorf("announced %v, want alice's too", got)
		}
		// An operator replays the dead letter: already announced.
		if _, err := w.svc.Revoke(ctx, narrowing("alice", aliceCut)); err != nil {
			t.Fatal(err)
		}
		if got := announcedUsers(w); len(got) != 2 {
			t.Errorf("announced %v after the replay, want no second event", got)
		}
	})
	t.Run("an announcement the bus refused is sent by the retry", func(t *testing.T) {
		w := newWorld()
		w.audit.SetFail(func([]broker.AuditEvent) error { return errors.New("bus down") })
		if _, err := w.svc.Revoke(ctx, narrowing("alice", t0)); err == nil {
			t.Fatal("the announcement failed, yet Revoke succeeded")
		}
		w.audit.SetFail(nil)
		if _, err := w.svc.Revoke(ctx, narrowing("alice", t0)); err != nil {
			t.Fatal(err)
		}
		if got := announcedUsers(w); !cmp.Equal(got, []string{"alice"}) {
			t.Errorf("announced %v", got)
		}
	})
	t.Run("a narrowing delivered after its entry would have expired is still announced", func(t *testing.T) {
		w := newWorld()
		w.now = t0.Add(2 * time.Hour)
		if _, err := w.svc.Revoke(ctx, narrowing("alice", t0)); err != nil {
			t.Fatal(err)
		}
		if got := announcedUsers(w); !cmp.Equal(got, []string{"alice"}) {
			t.Errorf("announced %v", got)
		}
		if !empty(w.role.current()) {
			t.Errorf("an expired entry was put on the role: %q", w.role.current())
		}
	})
	t.Run("an older narrowing delivered after a newer one is announced too", func(t *testing.T) {
		w := newWorld()
		newer := narrowingFrom("alice", t0.Add(4*time.Second), t0.Add(8*time.Second))
		newer.Causes = []string{"alice/v3/9"}
		if _, err := w.svc.Revoke(ctx, newer); err != nil {
			t.Fatal(err)
		}
		if _, err := w.svc.Revoke(ctx, narrowing("alice", t0.Add(4*time.Second))); err != nil {
			t.Fatal(err)
		}
		var causes []string
		for _, ev := range w.revoked() {
			causes = append(causes, ev.Causes...)
		}
		if diff := cmp.Diff([]string{"alice/v3/9", "alice/v2/7"}, causes); diff != "" {
			t.Errorf("announced causes (-want +got):\n%s", diff)
		}
	})
}

func announcedUsers(w *world) []string {
	var out []string
	for _, d := range w.revoked() {
		out = append(out, d.UserIDs...)
	}
	return out
}

// A prune that finds nothing to prune writes nothing: no item, no IAM.
func TestAnIdlePruneWritesNothing(t *testing.T) {
	w := newWorld()
	if _, err := w.svc.Revoke(context.Background(), narrowing("alice", t0)); err != nil {
		t.Fatal(err)
	}
	before, _ := w.store.LoadDenyList(context.Background())
	puts := w.role.puts
	w.now = t0.Add(time.Minute)
	for range 3 {
		if _, err := w.svc.Revoke(context.Background(), revoker.Request{Reason: broker.ReasonOperator}); err != nil {
			t.Fatal(err)
		}
	}
	after, _ := w.store.LoadDenyList(context.Background())
	if after.Version != before.Version || w.role.puts != puts {
		t.Errorf("idle prunes wrote: list version %d -> %d, %d role puts", before.Version, after.Version, w.role.puts-puts)
	}
}

// An entry stays until every session it can match has expired, for the
// session duration the revoker is deployed with: the operator's call
// carries no duration (docs/security.md "Revocation"), and a prune at any moment of
// a stolen session's life leaves it denied.
func TestTheRevokersEntriesOutliveTheDeployedSessions(t *testing.T) {
	for _, session := range []time.Duration{15 * time.Minute, time.Hour} {
		t.Run(fmt.Sprintf("with %v sessions", session), func(t *testing.T) {
			w := newWorld()
			w.svc.MaxSession = session
			h := &revoker.Handler{Service: w.svc, Now: func() time.Time { return w.now }}
			res, err := h.Handle(context.Background(), json.RawMessage(`{"action":"revoke","userId":"alice","requestId":"op-1"}`))
			if err != nil {
				t.Fatal(err)
			}
			// The stolen session was minted the instant before the cutoff,
			// with the longest lifetime the endpoint gives.
			stolen := res.IssuedBefore.Add(-time.Millisecond)
			expires := stolen.Add(session)
			for w.now = t0; !w.now.After(expires); w.now = w.now.Add(5 * time.Minute) {
				if _, err := h.Handle(context.Background(), json.RawMessage(`{"action":"prune"}`)); err != nil {
					t.Fatal(err)
				}
				if worksTagged(t, w.role.current(), "alice", stolen, broker.CutoffTag("alice", t0.Add(-time.Hour))) {
					t.Fatalf("at %v, %v before it expires, the stolen session works again", w.now.Sub(t0), expires.Sub(w.now))
				}
			}
			w.now = expires.Add(2 * time.Minute)
			if _, err := h.Handle(context.Background(), json.RawMessage(`{"action":"prune"}`)); err != nil {
				t.Fatal(err)
			}
			if doc := w.role.current(); !empty(doc) {
				t.Errorf("the entry outlived every session it could match: %q", doc)
			}
		})
	}
	t.Run("an operator's call that names a duration is refused", func(t *testing.T) {
		w := newWorld()
		h := &revoker.Handler{Service: w.svc, Now: func() time.Time { return w.now }}
		if _, err := h.Handle(context.Background(), json.RawMessage(`{"action":"revoke","userId":"alice","sessionDuration":"0s"}`)); !errors.Is(err, revoker.ErrRefused) {
			t.Errorf("Handle = %v, want ErrRefused", err)
		}
	})
}

// A run writes only the pages whose document changes: on a fresh role the
// empty managed pages are left alone, and a run that finds page 0 at
// another generation than its list (another run still writing) reads the
// pages rather than write a new version of each unchanged one.
func TestUnchangedPagesAreNotWritten(t *testing.T) {
	w := newWorld()
	var puts []int
	w.role.apply = func(page int, _ string) { puts = append(puts, page) }
	if _, err := w.svc.Revoke(context.Background(), narrowing("alice", t0)); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(puts, []int{0}) {
		t.Errorf("first revocation wrote pages %v, want [0]", puts)
	}
	// Page 0 lags the list (as while another run writes it).
	if !strings.Contains(w.role.pages[0], `"Untagged1"`) {
		t.Fatalf("setup: page 0 is not at generation 1: %s", w.role.pages[0])
	}
	w.role.pages[0] = strings.Replace(w.role.pages[0], `"Untagged1"`, `"Untagged0"`, 1)
	puts = nil
	if _, err := w.svc.Revoke(context.Background(), narrowing("bob", t0)); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(puts, []int{0}) {
		t.Errorf("a run behind another wrote pages %v, want [0]", puts)
	}
}

// After an upgrade from the revoker that denied by issue time, the role
// still holds that revoker's policy and the list its entries: the first
// run reads the old policy, replaces it, and every session it denied (all
// minted before sessions carried their user's tag) stays denied.
func TestTheFirstRunAfterTheTagsReplacesTheOldPolicy(t *testing.T) {
	w := newWorld()
	old := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*","Condition":{` +
		`"DateLessThan":{"aws:TokenIssueTime":"2026-11-30T12:00:04Z"},"StringEquals":{"aws:SourceIdentity":["alice"]},` +
		`"StringNotEquals":{"aws:PrincipalTag/credbroker:cutoff":["9c41e0d27a5b8f13"]}}}]}`
	w.role.pages = []string{old}
	w.store.RestoreDenyList(revoker.List{Version: 3, Users: map[string]revoker.Cutoff{"alice": {Before: t0.Add(4 * time.Second), Until: t0.Add(16 * time.Minute)}}})
	if _, err := w.svc.Revoke(context.Background(), narrowing("bob", t0.Add(5*time.Second))); err != nil {
		t.Fatalf("the first run after the upgrade: %v", err)
	}
	doc := w.role.current()
	if worksTagged(t, doc, "alice", t0, "") || worksTagged(t, doc, "anyone", t0, "") {
		t.Errorf("an untagged session minted before the upgrade works:\n%q", doc)
	}
	if works(t, doc, "bob", t0) || !works(t, doc, "carol", t0) {
		t.Errorf("the new revocation is not exactly bob's:\n%q", doc)
	}
	if e, err := revoker.ParseEnforced([]string{old}); err != nil || e.All.Before.IsZero() {
		t.Errorf("the old policy read back as %+v, %v; want a fallback for everyone", e, err)
	}
}

// smallItemStore is a fault-injecting deny-list store (DynamoDB's 400 KB
// item limit cannot be lowered): it refuses a list of more than max
// entries as too large for an item.
type smallItemStore struct {
	*memstore.Store
	max int
}

func (s smallItemStore) SaveDenyList(ctx context.Context, prev int64, next revoker.List) error {
	if n := len(next.Revoked) + len(next.Users); n > s.max {
		return broker.Wrap(broker.Invalid, "save deny list", fmt.Errorf("%w: %d entries", broker.ErrItemTooLarge, n))
	}
	return s.Store.SaveDenyList(ctx, prev, next)
}

// A list that the store cannot hold falls back, as one the role's pages
// cannot: the revocation is applied, as everyone's, never left undone.
func TestAListTooLargeToStoreFallsBackRatherThanStall(t *testing.T) {
	w := newWorld()
	w.svc.Store = smallItemStore{w.store, 3}
	for i := range 5 {
		if _, err := w.svc.Revoke(context.Background(), narrowing(user(i), t0.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatalf("revocation %d: %v", i, err)
		}
	}
	doc := w.role.current()
	for i := range 5 {
		if works(t, doc, user(i), t0.Add(time.Duration(i)*time.Second-time.Second)) {
			t.Errorf("%s's old session works:\n%q", user(i), doc)
		}
	}
	fellBack := false
	for _, ev := range w.revoked() {
		fellBack = fellBack || ev.Scope == broker.ScopeAll
	}
	if l, _ := w.store.LoadDenyList(context.Background()); !fellBack || l.All.Before.IsZero() {
		t.Errorf("no fallback to revoking everyone: list %+v", l)
	}
}

// twoPages is a world whose page 0 holds 5 revoked tags and page 1 the
// rest, at t0 + 10 s.
func twoPages() *world {
	w := newWorld()
	w.role.budgets = []int{1400, 2000}
	w.now = t0.Add(10 * time.Second)
	return w
}

// cut is user(i)'s cutoff in the tests of two pages.
func cut(i int) time.Time { return t0.Add(time.Duration(i+4) * time.Second) }

// narrowUsers narrows users from to to-1, a batch each.
func narrowUsers(t *testing.T, w *world, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if _, err := w.svc.Revoke(context.Background(), narrowing(user(i), cut(i))); err != nil {
			t.Fatal(err)
		}
	}
}

// raceRole holds run A's put of page 1 until the test releases it, and
// throttles every put of page 0 at generation 6 (A's), as two concurrent
// batches can interleave on IAM.
type raceRole struct {
	*role
	mu    sync.Mutex
	hold  chan struct{} // closed to release A's put of page 1
	held  chan struct{} // closed when A reaches it
	armed bool
	// afterPut, when set, runs after each put that succeeded.
	afterPut func(page int, doc string)
}

func (r *raceRole) Apply(ctx context.Context, page int, doc string) error {
	r.mu.Lock()
	armed := r.armed && page == 1
	if armed {
		r.armed = false
	}
	r.mu.Unlock()
	if armed {
		close(r.held)
		<-r.hold
	}
	if page == 0 && strings.Contains(doc, `"Untagged6"`) {
		return broker.Errorf(broker.Transient, "put revocation policy", "Throttling")
	}
	err := r.role.Apply(ctx, page, doc)
	if err == nil && r.afterPut != nil {
		r.afterPut(page, doc)
	}
	return err
}

// Run A puts page 1 after run B has put pages 1 and 0 (newer), then fails
// on its page 0. Page 0 then says every page is at B's generation, while
// page 1 is A's, without B's entry. The runs that follow must find that
// out rather than trust page 0.
func TestAPagePutLateByAFailedRunIsRepaired(t *testing.T) {
	w := twoPages()
	narrowUsers(t, w, 0, 5)
	rr := &raceRole{role: w.role, hold: make(chan struct{}), held: make(chan struct{}), armed: true}
	lateRunThenRetry(t, w, rr, nil)
}

// lateRunThenRetry runs A (user 5's narrowing) until rr holds its put of
// page 1, then B (user 6's), then lets A go on unless B's puts already
// did; A must fail on its page 0 (rr throttles it) and closes doneA, if
// given, when it has. A's batch is then delivered again, after which
// neither user's revoked session may work.
func lateRunThenRetry(t *testing.T, w *world, rr *raceRole, doneA chan struct{}) {
	t.Helper()
	ctx := context.Background()
	w.svc.Role = rr
	errA := make(chan error, 1)
	go func() {
		_, err := w.svc.Revoke(ctx, narrowing(user(5), cut(5)))
		errA <- err
		if doneA != nil {
			close(doneA)
		}
	}()
	<-rr.held
	if _, err := w.svc.Revoke(ctx, narrowing(user(6), cut(6))); err != nil { // run B
		t.Fatal(err)
	}
	select {
	case <-rr.hold: // B's puts released A
	default:
		close(rr.hold)
	}
	if err := <-errA; err == nil {
		t.Fatal("run A: want its throttled page 0 to fail it")
	}
	if _, err := w.svc.Revoke(ctx, narrowing(user(5), cut(5))); err != nil { // A's batch again
		t.Fatal(err)
	}
	for _, i := range []int{5, 6} {
		if works(t, w.role.current(), user(i), cut(i).Add(-time.Second)) {
			t.Errorf("user %d's revoked session works after the retry succeeded:\n%q", i, w.role.current())
		}
	}
}

// pageZeroFails refuses every put of page 0 once armed (IAM throttling,
// or the function timing out there).
type pageZeroFails struct {
	*role
	armed bool
}

func (p *pageZeroFails) Apply(ctx context.Context, page int, doc string) error {
	if p.armed && page == 0 {
		return broker.Errorf(broker.Transient, "put revocation policy", "Throttling")
	}
	return p.role.Apply(ctx, page, doc)
}

// When a fallback on page 0 takes over what a managed page denied, page 0
// is put first: no revoked session works in between, nor while page 0's
// put fails and the batch waits for its retry.
func TestAFallbackIsOnTheRoleBeforeTheEntriesItCoversLeave(t *testing.T) {
	ctx := context.Background()
	w := twoPages()
	w.svc.Store = smallItemStore{w.store, 6}
	pz := &pageZeroFails{role: w.role}
	w.svc.Role = pz
	narrowUsers(t, w, 0, 6)
	if !strings.Contains(w.role.current()[1], broker.CutoffTag(user(5), time.Time{})) || works(t, w.role.current(), user(5), cut(5).Add(-time.Second)) {
		t.Fatalf("setup: user 5 not denied on page 1: %q", w.role.current())
	}
	lifted := false
	w.role.apply = func(int, string) {
		if works(t, w.role.current(), user(5), cut(5).Add(-time.Second)) {
			lifted = true
		}
	}
	pz.armed = true
	if _, err := w.svc.Revoke(ctx, narrowing(user(6), cut(6))); err == nil { // the seventh overflows the item: a fallback
		t.Fatal("want the run to fail on page 0")
	}
	if works(t, w.role.current(), user(5), cut(5).Add(-time.Second)) {
		t.Errorf("user 5's revoked session works while the batch waits for its retry:\n%q", w.role.current())
	}
	pz.armed = false
	if _, err := w.svc.Revoke(ctx, narrowing(user(6), cut(6))); err != nil {
		t.Fatal(err)
	}
	if works(t, w.role.current(), user(5), cut(5).Add(-time.Second)) || works(t, w.role.current(), user(6), cut(6).Add(-time.Second)) {
		t.Errorf("after the retry a revoked session works:\n%q", w.role.current())
	}
	if lifted {
		t.Errorf("user 5's revoked session worked between two puts of a run")
	}
}

// A recovery puts back what the pages deny and may place it on other pages
// than before: no revoked session works between the puts either.
func TestARecoveryMovesNoEntryOffTheRoleOnTheWay(t *testing.T) {
	ctx := context.Background()
	w := twoPages()
	narrowUsers(t, w, 0, 6)
	lifted := map[int]bool{}
	w.role.apply = func(int, string) {
		for i := range 6 {
			if works(t, w.role.current(), user(i), cut(i).Add(-time.Second)) {
				lifted[i] = true
			}
		}
	}
	w.store.DeleteDenyList()
	w.now = t0.Add(20 * time.Second)
	if _, err := w.svc.Revoke(ctx, narrowing(user(6), cut(16))); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if works(t, w.role.current(), user(i), cut(i).Add(-time.Second)) {
			t.Errorf("user %d's revoked session works after the recovery:\n%q", i, w.role.current())
		}
	}
	if len(lifted) > 0 {
		t.Errorf("revoked sessions of users %v worked between two puts of the recovery", slices.Sorted(maps.Keys(lifted)))
	}
}

// A fallback already on page 0, widened to a later time to take over the
// entries of page 1, goes on the role before page 1 is emptied.
func TestAWidenedFallbackIsOnTheRoleBeforeTheEntriesItCoversLeave(t *testing.T) {
	ctx := context.Background()
	w := twoPages()
	w.now = t0.Add(30 * time.Second)
	w.svc.Store = smallItemStore{w.store, 3}
	narrowUsers(t, w, 0, 4) // the 4th overflows: All before cut(3)
	l, _ := w.store.LoadDenyList(ctx)
	if l.All.Before.IsZero() {
		t.Fatalf("setup: no fallback %+v", l)
	}
	w.svc.Store = smallItemStore{w.store, 100}
	narrowUsers(t, w, 4, 11)
	if works(t, w.role.current(), user(9), cut(9).Add(-time.Second)) || w.role.current()[1] == "" {
		t.Fatalf("setup: user 9 not denied on page 1: %q", w.role.current())
	}
	lifted := false
	w.role.apply = func(page int, doc string) {
		if works(t, w.role.current(), user(9), cut(9).Add(-time.Second)) {
			lifted = true
		}
	}
	w.svc.Store = smallItemStore{w.store, 7} // the next one overflows: every entry to All
	if _, err := w.svc.Revoke(ctx, narrowing(user(11), cut(11))); err != nil {
		t.Fatal(err)
	}
	if works(t, w.role.current(), user(9), cut(9).Add(-time.Second)) {
		t.Fatalf("after the run user 9 works: %q", w.role.current())
	}
	if lifted {
		t.Errorf("user 9's revoked session worked between two puts of the run (page 1 emptied before page 0's widened fallback)")
	}
}

// The run whose last check finds a list saved after its own re-reads the
// pages: one put late by a failed run is rewritten, not hidden behind a new
// page 0.
func TestAConcurrentRunsLastCheckDoesNotHideAPagePutLate(t *testing.T) {
	w := twoPages()
	narrowUsers(t, w, 0, 5)
	// A's put of page 1 waits until B has put its page 0, and B's return
	// from that put until A has failed (and marked the pages for a full
	// read), so that B's last check finds the list A marked.
	rr := &raceRole{role: w.role, hold: make(chan struct{}), held: make(chan struct{}), armed: true}
	doneA := make(chan struct{})
	var once sync.Once
	rr.afterPut = func(page int, doc string) {
		if page == 0 && strings.Contains(doc, `"Untagged7"`) {
			once.Do(func() { close(rr.hold); <-doneA })
		}
	}
	lateRunThenRetry(t, w, rr, doneA)
}

// refusalSignal closes refused the first time the lease refuses a run.
type refusalSignal struct {
	revoker.PagesLease
	refused chan struct{}
	once    sync.Once
}

func (r *refusalSignal) TakePages(ctx context.Context, owner string, now, until time.Time) error {
	err := r.PagesLease.TakePages(ctx, owner, now, until)
	if broker.KindOf(err) == broker.Conflict {
		r.once.Do(func() { close(r.refused) })
	}
	return err
}

// With the lease, a run waits while another puts pages: the first run's
// slow put can no longer land after the second has put and announced a
// newer page (IAM has no conditional put).
func TestRunsTakeTurnsOnThePages(t *testing.T) {
	ctx := context.Background()
	w := twoPages()
	lease := &refusalSignal{PagesLease: w.store, refused: make(chan struct{})}
	w.svc.Lease = lease
	narrowUsers(t, w, 0, 5)
	rr := &raceRole{role: w.role, hold: make(chan struct{}), held: make(chan struct{}), armed: true}
	w.svc.Role = rr
	errA, errB := make(chan error, 1), make(chan error, 1)
	go func() { _, err := w.svc.Revoke(ctx, narrowing(user(5), cut(5))); errA <- err }()
	<-rr.held // run A is putting page 1
	go func() { _, err := w.svc.Revoke(ctx, narrowing(user(6), cut(6))); errB <- err }()
	select {
	case <-lease.refused: // run B waits for the pages
	case err := <-errB:
		t.Fatalf("run B finished while run A held the pages: %v", err)
	}
	close(rr.hold)
	if err := <-errA; err == nil {
		t.Fatal("run A: want its throttled page 0 to fail it")
	}
	if err := <-errB; err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{5, 6} {
		if works(t, w.role.current(), user(i), cut(i).Add(-time.Second)) {
			t.Errorf("user %d's revoked session works after both runs:\n%q", i, w.role.current())
		}
	}
}

// holdRenewal holds the first renewal of a lease until hold is closed;
// the others pass.
type holdRenewal struct {
	revoker.PagesLease
	held, hold chan struct{}
	first      atomic.Bool
}

func (h *holdRenewal) RenewPages(ctx context.Context, owner string, now, until time.Time) error {
	if h.first.CompareAndSwap(false, true) {
		close(h.held)
		<-h.hold
	}
	return h.PagesLease.RenewPages(ctx, owner, now, until)
}

// A run stalled past its lease (IAM throttling, SDK retries) while another
// run took the pages stops before its next put: put then, its older pages
// would take the other run's announced entries off the role.
func TestARunWhoseLeaseRanOutPutsNothingMore(t *testing.T) {
	ctx := context.Background()
	w := twoPages()
	w.svc.Lease = w.store
	narrowUsers(t, w, 0, 5)
	lease := &holdRenewal{PagesLease: w.store, held: make(chan struct{}), hold: make(chan struct{})}
	w.svc.Lease = lease
	errA := make(chan error, 1)
	go func() { _, err := w.svc.Revoke(ctx, narrowing(user(5), cut(5))); errA <- err }()
	select {
	case <-lease.held: // run A is about to put its first page
	case err := <-errA:
		t.Fatalf("run A finished (%v) without renewing its lease before a put", err)
	}
	w.now = w.now.Add(21 * time.Second)
	if _, err := w.svc.Revoke(ctx, narrowing(user(6), cut(6))); err != nil { // run B takes the lease A let run out
		t.Fatal(err)
	}
	w.role.mu.Lock()
	puts := w.role.puts
	w.role.mu.Unlock()
	close(lease.hold)
	if err := <-errA; err == nil {
		t.Fatal("run A: want it to stop, its lease gone")
	}
	w.role.mu.Lock()
	after := w.role.puts
	w.role.mu.Unlock()
	if after != puts {
		t.Errorf("run A put %d pages after its lease ran out", after-puts)
	}
	for _, i := range []int{5, 6} {
		if works(t, w.role.current(), user(i), cut(i).Add(-time.Second)) {
			t.Errorf("user %d's revoked session works:\n%q", i, w.role.current())
		}
	}
}
