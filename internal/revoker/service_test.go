package revoker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/revoker"
	"github.com/credbroker/credbroker/internal/testkit/brokertest"
	"github.com/credbroker/credbroker/internal/testkit/memstore"
)

// role is a hand-written base role (IAM is not in the unit tier): it keeps
// the pages it is given. apply, when set, runs before each put.
type role struct {
	mu      sync.Mutex
	pages   []string
	puts    int
	budgets []int
	apply   func(page int, doc string)
}

func (r *role) Budgets(context.Context) ([]int, error) { return r.budgets, nil }

func (r *role) Current(_ context.Context, page int) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if page < len(r.pages) {
		return r.pages[page], nil
	}
	return "", nil
}

func (r *role) Apply(_ context.Context, page int, doc string) error {
	if r.apply != nil {
		r.apply(page, doc)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.pages) <= page {
		r.pages = append(r.pages, "")
	}
	r.pages[page], r.puts = doc, r.puts+1
	return nil
}

func (r *role) current() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.pages)
}

type world struct {
	store *memstore.Store
	role  *role
	audit *brokertest.Auditor
	svc   *revoker.Service
	now   time.Time
}

func newWorld() *world {
	w := &world{store: memstore.New(), role: &role{budgets: []int{9000, 2000, 2000}}, audit: &brokertest.Auditor{}, now: t0}
	w.svc = &revoker.Service{Store: w.store, Cutoffs: w.store, Role: w.role, Auditor: w.audit,
		MaxSession: 15 * time.Minute, Now: func() time.Time { return w.now }}
	return w
}

func (w *world) revoked() []broker.CredentialsRevokedDetail {
	var out []broker.CredentialsRevokedDetail
	for _, e := range w.audit.Of(broker.DetailCredentialsRevoked) {
		out = append(out, e.Detail.(broker.CredentialsRevokedDetail))
	}
	return out
}

// narrowing is the user's first narrowing, to the cutoff before.
func narrowing(user string, before time.Time) revoker.Request {
	return narrowingFrom(user, time.Time{}, before)
}

// narrowingFrom is a narrowing of the user's item from cutoff prev (zero:
// none) to cutoff before.
func narrowingFrom(user string, prev, before time.Time) revoker.Request {
	return revoker.Request{Entries: []revoker.Entry{narrowed(user, prev, before)}, Reason: broker.ReasonNarrowed, Causes: []string{user + "/v2/7"}}
}

func TestANarrowingDeniesTheUsersOlderSessionsAndIsAudited(t *testing.T) {
	w := newWorld()
	cut := t0.Add(4 * time.Second)
	if _, err := w.svc.Revoke(context.Background(), narrowing("alice", cut)); err != nil {
		t.Fatal(err)
	}
	doc := w.role.current()
	if works(t, doc, "alice", cut.Add(-time.Second)) || !worksTagged(t, doc, "alice", cut, broker.CutoffTag("alice", cut)) || !works(t, doc, "bob", cut.Add(-time.Minute)) {
		t.Errorf("role policy does not deny exactly alice's older sessions:\n%q", doc)
	}
	want := []broker.CredentialsRevokedDetail{{SchemaVersion: "1", UserIDs: []string{"alice"}, IssuedBefore: cut, Scope: broker.ScopeUser,
		Reason: broker.ReasonNarrowed, Causes: []string{"alice/v2/7"}, DenyListUsers: 1, DenyListVersion: 1}}
	if diff := cmp.Diff(want, w.revoked()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}

	// Delivered again (Lambda retries a run whose answer was lost): the
	// same revocation is in force and was announced; nothing is written
	// and nothing is announced twice.
	puts := w.role.puts
	if _, err := w.svc.Revoke(context.Background(), narrowing("alice", cut)); err != nil {
		t.Fatal(err)
	}
	if got := w.revoked(); len(got) != 1 || !slices.Equal(w.role.current(), doc) || w.role.puts != puts {
		t.Errorf("redelivery: %d events (want 1), role changed %v, %d puts (want %d)", len(got), !slices.Equal(w.role.current(), doc), w.role.puts, puts)
	}
}

// barrierStore makes every revoker read the list before any of them writes:
// all but one write then lose their optimistic condition and must read
// again, the interleaving in which a careless write loses entries.
type barrierStore struct {
	*memstore.Store
	loads sync.WaitGroup
	once  sync.Map
}

func (b *barrierStore) LoadDenyList(ctx context.Context) (revoker.List, error) {
	l, err := b.Store.LoadDenyList(ctx)
	if _, loaded := b.once.LoadOrStore(ctx.Value(callerKey{}), true); !loaded {
		b.loads.Done()
		b.loads.Wait()
	}
	return l, err
}

type callerKey struct{}

func TestConcurrentRevocationsNeverLoseAnEntry(t *testing.T) {
	const n = 8
	w := newWorld()
	bs := &barrierStore{Store: w.store}
	bs.loads.Add(n)
	w.svc.Store = bs
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ctx := context.WithValue(context.Background(), callerKey{}, i)
			if _, err := w.svc.Revoke(ctx, narrowing(fmt.Sprintf("user-%d", i), t0.Add(time.Duration(i)*time.Second))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	l, _ := w.store.LoadDenyList(context.Background())
	doc := w.role.current()
	for i := range n {
		u := fmt.Sprintf("user-%d", i)
		if c, ok := l.Revoked[broker.CutoffTag(u, time.Time{})]; !ok || c.User != u {
			t.Errorf("%s lost from the deny list (version %d)", u, l.Version)
		}
		if works(t, doc, u, t0.Add(time.Duration(i)*time.Second-time.Second)) {
			t.Errorf("%s's older session still works under the role's policy", u)
		}
	}
	if len(l.Revoked) != n || len(l.Unannounced) != 0 {
		t.Errorf("list holds %d revoked tags and %d unannounced revocations after %d revocations", len(l.Revoked), len(l.Unannounced), n)
	}
	if got := w.revoked(); len(got) != n {
		t.Errorf("%d CredentialsRevoked events for %d revocations", len(got), n)
	}
}

// Two revokers save v1 then v2, but put them on the role in the other
// order: the one that puts last reads the list again and puts v2.
func TestTheRoleEndsWithTheNewestListWhateverTheOrderOfPuts(t *testing.T) {
	w := newWorld()
	firstPut, secondDone := make(chan struct{}), make(chan struct{})
	var puts atomic.Int32
	w.role.apply = func(int, string) {
		if puts.Add(1) == 1 {
			close(firstPut)
			<-secondDone // hold the first revoker's put until the second finished
		}
	}
	done := make(chan error)
	go func() { _, err := w.svc.Revoke(context.Background(), narrowing("alice", t0)); done <- err }()
	<-firstPut
	if _, err := w.svc.Revoke(context.Background(), narrowing("bob", t0.Add(time.Second))); err != nil {
		t.Fatal(err)
	}
	close(secondDone)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	doc := w.role.current()
	for _, u := range []string{"alice", "bob"} {
		if works(t, doc, u, t0.Add(-time.Second)) {
			t.Errorf("the role's final policy misses %s:\n%q", u, doc)
		}
	}
}

func TestAListTooLargeForTheRoleRevokesEveryoneBeforeATime(t *testing.T) {
	w := newWorld()
	w.role.budgets = []int{400} // room for two users besides the fallback's cutoff
	var users []string
	for i := range 5 {
		users = append(users, fmt.Sprintf("3f8e2a5c-0b6d-4c1e-9a7f-%012d", i))
		if _, err := w.svc.Revoke(context.Background(), narrowing(users[i], t0.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	fellBack := false
	for _, ev := range w.revoked() {
		fellBack = fellBack || ev.Scope == broker.ScopeAll
	}
	if !fellBack {
		t.Fatal("no CredentialsRevoked event with scope all: the list never fell back")
	}
	doc := w.role.current()
	if broker.PolicySize(doc[0]) > w.role.budgets[0] {
		t.Errorf("role policy of %d characters over a budget of %d", broker.PolicySize(doc[0]), w.role.budgets[0])
	}
	for i, u := range users {
		if works(t, doc, u, t0.Add(time.Duration(i)*time.Second-time.Second)) {
			t.Errorf("%s's session from before its cutoff survived the fallback:\n%q", u, doc)
		}
	}
	if works(t, doc, "anyone", t0.Add(2*time.Second)) {
		t.Errorf("a bystander's session from before the fallback cutoff still works:\n%q", doc)
	}
}

func TestAnOperatorRevocationAlsoMovesTheUsersCutoff(t *testing.T) {
	w := newWorld()
	h := &revoker.Handler{Service: w.svc, Now: func() time.Time { return w.now }}
	if _, err := h.Handle(context.Background(), json.RawMessage(`{"action":"revoke","userId":"alice","requestId":"op-1"}`)); err != nil {
		t.Fatal(err)
	}
	want := broker.RevokeBefore(t0)
	item, err := w.store.GetPolicy(context.Background(), "alice")
	if err != nil || !item.RevokedBefore.Equal(want) {
		t.Errorf("alice's item: cutoff %v (%v), want %v", item.RevokedBefore, err, want)
	}
	if ev := w.revoked(); len(ev) != 1 || ev[0].Reason != broker.ReasonOperator || !ev[0].IssuedBefore.Equal(want) || ev[0].Causes[0] != "op-1" {
		t.Errorf("events %+v", ev)
	}
}

// The deny list may hold a later cutoff than the user's item (an item
// rewritten after corruption loses its own): the operator's cutoff still
// comes after it, so the sessions tagged with the listed one are denied.
func TestAnOperatorRevocationGoesPastTheListedCutoff(t *testing.T) {
	w := newWorld()
	listed := broker.RevokeBefore(t0).Add(2500 * time.Millisecond)
	if _, err := w.svc.Revoke(context.Background(), narrowing("alice", listed)); err != nil {
		t.Fatal(err)
	}
	h := &revoker.Handler{Service: w.svc, Now: func() time.Time { return w.now }}
	if _, err := h.Handle(context.Background(), json.RawMessage(`{"action":"revoke","userId":"alice","requestId":"op-1"}`)); err != nil {
		t.Fatal(err)
	}
	want := listed.Add(time.Millisecond)
	if item, err := w.store.GetPolicy(context.Background(), "alice"); err != nil || !item.RevokedBefore.Equal(want) {
		t.Errorf("alice's item: cutoff %v (%v), want %v", item.RevokedBefore, err, want)
	}
	doc := w.role.current()
	if worksTagged(t, doc, "alice", t0.Add(time.Second), broker.CutoffTag("alice", listed)) {
		t.Errorf("a session tagged with the listed cutoff survives the operator's revocation:\n%q", doc)
	}
	if !worksTagged(t, doc, "alice", t0, broker.CutoffTag("alice", want)) {
		t.Errorf("a session minted under the operator's cutoff is denied:\n%q", doc)
	}
}

func TestThePruneActionRemovesExpiredEntries(t *testing.T) {
	w := newWorld()
	h := &revoker.Handler{Service: w.svc}
	_, _ = w.svc.Revoke(context.Background(), narrowing("alice", t0))
	w.now = t0.Add(17 * time.Minute)
	if _, err := h.Handle(context.Background(), json.RawMessage(`{"action":"prune"}`)); err != nil {
		t.Fatal(err)
	}
	if doc := w.role.current(); !empty(doc) {
		t.Errorf("expired entry still on the role: %q", doc)
	}
}

func TestTheHandlerTakesOnlyWhatItUnderstands(t *testing.T) {
	cut := t0.Add(4 * time.Second)
	from := func(source string, d broker.PolicyChangedDetail) string {
		b, _ := json.Marshal(d)
		return fmt.Sprintf(`{"version":"0","id":"e1","detail-type":"PolicyChanged","source":%q,"account":"1","time":"2026-11-30T12:00:00Z","region":"us-east-1","resources":[],"detail":%s}`, source, b)
	}
	detail := func(d broker.PolicyChangedDetail) string { return from(broker.SourceProjector, d) }
	farAhead, late := t0.Add(revoker.MaxAhead+time.Second), t0.Add(-time.Hour)
	h := &revoker.Handler{Now: func() time.Time { return t0 }}
	for _, tc := range []struct {
		name    string
		payload string
		want    *revoker.Request
		invalid bool
	}{
		{"a narrowing change is a revocation", detail(broker.PolicyChangedDetail{UserID: "alice", ChangeID: "c1", RevokeBefore: &cut}),
			&revoker.Request{Entries: []revoker.Entry{{UserID: "alice", Before: cut}}, Reason: broker.ReasonNarrowed, Causes: []string{"c1"}}, false},
		{"a narrowing names the cutoff tag it revoked, and the cutoff it had", detail(broker.PolicyChangedDetail{UserID: "alice", ChangeID: "c7", RevokeBefore: &cut,
			RevokedCutoffTags: []string{broker.CutoffTag("alice", late)}, PreviousRevokeBefore: &late}),
			&revoker.Request{Entries: []revoker.Entry{{UserID: "alice", Before: cut, Revoked: []string{broker.CutoffTag("alice", late)}, Previous: late}},
				Reason: broker.ReasonNarrowed, Causes: []string{"c7"}}, false},
		{"revoked tags of another shape revoke by time instead", detail(broker.PolicyChangedDetail{UserID: "alice", ChangeID: "c8", RevokeBefore: &cut,
			RevokedCutoffTags: []string{"*"}}),
			&revoker.Request{Entries: []revoker.Entry{{UserID: "alice", Before: cut}}, Reason: broker.ReasonNarrowed, Causes: []string{"c8"}}, false},
		{"a narrowing names what it removed, for a fallback", detail(broker.PolicyChangedDetail{UserID: "alice", ChangeID: "c5", RevokeBefore: &cut, RemovedCount: 2,
			Removed: []broker.Grant{{Bucket: "lake", Prefix: "raw/"}, {Bucket: "sea"}}}),
			&revoker.Request{Entries: []revoker.Entry{{UserID: "alice", Before: cut, Resources: []string{"arn:aws:s3:::lake", "arn:aws:s3:::lake/raw/*", "arn:aws:s3:::sea", "arn:aws:s3:::sea/*"}}},
				Reason: broker.ReasonNarrowed, Causes: []string{"c5"}}, false},
		{"a narrowing cut to fit the bus names nothing", detail(broker.PolicyChangedDetail{UserID: "alice", ChangeID: "c6", RevokeBefore: &cut, RemovedCount: 9, Truncated: true,
			Removed: []broker.Grant{{Bucket: "lake"}}}),
			&revoker.Request{Entries: []revoker.Entry{{UserID: "alice", Before: cut}}, Reason: broker.ReasonNarrowed, Causes: []string{"c6"}}, false},
		{"an addition is nothing to do", detail(broker.PolicyChangedDetail{UserID: "alice", ChangeID: "c2"}), nil, false},
		{"another detail type is nothing to do", `{"detail-type":"CredentialsIssued","detail":{}}`, nil, false},
		{"an operator's revocation", `{"action":"revoke","userId":"bob"}`,
			&revoker.Request{Entries: []revoker.Entry{{UserID: "bob", Before: broker.RevokeBefore(t0)}}, Reason: broker.ReasonOperator, Causes: []string{}}, false},
		{"an invalid user is refused", `{"action":"revoke","userId":"a*"}`, nil, true},
		{"an unknown action is refused", `{"action":"revoke-all"}`, nil, true},
		{"an unknown field is refused", `{"action":"prune","force":true}`, nil, true},
		{"a narrowing of an invalid user is refused", detail(broker.PolicyChangedDetail{UserID: "*", RevokeBefore: &cut}), nil, true},
		{"a narrowing from another source is refused", from("credbroker.credentials", broker.PolicyChangedDetail{UserID: "alice", RevokeBefore: &cut}), nil, true},
		{"a cutoff far ahead still revokes", detail(broker.PolicyChangedDetail{UserID: "alice", ChangeID: "c4", RevokeBefore: &farAhead}),
			&revoker.Request{Entries: []revoker.Entry{{UserID: "alice", Before: farAhead}}, Reason: broker.ReasonNarrowed, Causes: []string{"c4"}}, false},
		{"a narrowing delivered late still revokes", detail(broker.PolicyChangedDetail{UserID: "alice", ChangeID: "c3", RevokeBefore: &late}),
			&revoker.Request{Entries: []revoker.Entry{{UserID: "alice", Before: late}}, Reason: broker.ReasonNarrowed, Causes: []string{"c3"}}, false},
		{"garbage is refused", `[`, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := h.Decode(json.RawMessage(tc.payload))
			if tc.invalid {
				if broker.KindOf(err) != broker.Invalid {
					t.Fatalf("err %v, want Invalid", err)
				}
				if _, herr := h.Handle(context.Background(), json.RawMessage(tc.payload)); !errors.Is(herr, revoker.ErrRefused) {
					t.Errorf("Handle: %v, want ErrRefused (logged, not retried)", herr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
		})
	}
}

// invalidStore is a fault-injecting deny-list store: DynamoDB answers a
// ValidationException (kind Invalid) to every write.
type invalidStore struct{ revoker.Store }

func (invalidStore) SaveDenyList(context.Context, int64, revoker.List) error {
	return broker.Errorf(broker.Invalid, "save deny list", "ValidationException")
}

// Only the payload decides that an invocation is not worth retrying: a
// failure of the work itself is returned for Lambda to retry, even when
// its kind is Invalid.
func TestAFailureOfTheWorkIsRetriedWhateverItsKind(t *testing.T) {
	w := newWorld()
	w.svc.Store = invalidStore{w.store}
	h := &revoker.Handler{Service: w.svc, Now: func() time.Time { return t0 }}
	_, err := h.Handle(context.Background(), json.RawMessage(`{"action":"revoke","userId":"alice"}`))
	if err == nil || errors.Is(err, revoker.ErrRefused) {
		t.Errorf("Handle = %v, want an error to retry, not ErrRefused", err)
	}
}

// slowCutoffs is a fault-injecting cutoff store (DynamoDB cannot be made
// slow on demand): the operator's write of the new cutoff lands three
// seconds after the revoker asked for it.
type slowCutoffs struct {
	*memstore.Store
	w *world
}

func (s slowCutoffs) AdvanceCutoff(ctx context.Context, userID string, want time.Time) (time.Time, error) {
	s.w.now = s.w.now.Add(3 * time.Second)
	return s.Store.AdvanceCutoff(ctx, userID, want)
}

// An operator's revocation denies every session of the user minted before
// the new cutoff took effect, whatever its cutoff (here one the deny list
// never saw, as after a narrowing whose event was lost), even one that
// read the item just before a slow write landed and was issued after the
// cutoff's time; the sessions minted under the new cutoff work.
func TestAnOperatorRevocationDeniesWhatWasMintedWhileItsWriteLanded(t *testing.T) {
	w := newWorld()
	w.svc.Cutoffs = slowCutoffs{w.store, w}
	lost := t0.Add(-time.Minute) // a narrowing the revoker never heard of
	if _, err := w.store.AdvanceCutoff(context.Background(), "alice", lost); err != nil {
		t.Fatal(err)
	}
	h := &revoker.Handler{Service: w.svc, Now: func() time.Time { return w.now }}
	res, err := h.Handle(context.Background(), json.RawMessage(`{"action":"revoke","userId":"alice","requestId":"op-1"}`))
	if err != nil {
		t.Fatal(err)
	}
	landed := t0.Add(3 * time.Second)
	doc := w.role.current()
	for _, c := range []struct {
		name   string
		tag    string
		issued time.Time
		works  bool
	}{
		{"a session of the lost narrowing's cutoff is denied", broker.CutoffTag("alice", lost), t0, false},
		{"a session of no cutoff is denied", broker.CutoffTag("alice", time.Time{}), lost.Add(-time.Second), false},
		{"a session that read the item as the write landed is denied", broker.CutoffTag("alice", lost), landed.Add(broker.IssueWindow - time.Millisecond), false},
		{"a session of the operator's cutoff works", broker.CutoffTag("alice", res.IssuedBefore), landed.Add(time.Second), true},
	} {
		if got := worksTagged(t, doc, "alice", c.issued, c.tag); got != c.works {
			t.Errorf("%s: works %v\n%q", c.name, got, doc)
		}
	}
}
