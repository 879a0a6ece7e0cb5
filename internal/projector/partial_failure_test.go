package projector_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/credentials"
	"github.com/credbroker/credbroker/internal/projector"
	"github.com/credbroker/credbroker/internal/testkit/brokertest"
	"github.com/credbroker/credbroker/internal/testkit/storetest"
)

// world is a projector on one of the stores, with source writes that
// become the stream changes Lambda would deliver.
type world struct {
	t     *testing.T
	h     storetest.Harness
	audit *brokertest.Auditor
	proj  *projector.Projector
	seq   int
	log   *syncBuffer
}

func newWorld(t *testing.T, b storetest.Backend) *world {
	w := &world{t: t, h: b.New(t), audit: &brokertest.Auditor{}, log: &syncBuffer{}}
	w.proj = &projector.Projector{
		Source: w.h.Store, Store: w.h.Store, Index: w.h.Store, Checkpoints: w.h.Store, Auditor: w.audit,
		Logger: slog.New(slog.NewJSONHandler(w.log, nil)),
	}
	return w
}

// change returns the stream change of a write of item (nil: a delete).
func (w *world) change(pk, sk string, item *broker.SourceItem) projector.Change {
	w.seq++
	c := projector.Change{EventID: fmt.Sprintf("ev-%d", w.seq), EventName: "INSERT", SequenceNumber: fmt.Sprint(w.seq),
		Keys: broker.SourceItem{PK: pk, SK: sk}, New: item}
	if item == nil {
		c.EventName = "REMOVE"
	}
	return c
}

func (w *world) process(p *projector.Projector, changes ...projector.Change) projector.Outcome {
	w.t.Helper()
	return p.Process(context.Background(), changes)
}

// join makes user a reader of project and projects it.
func (w *world) join(user, project string) {
	w.t.Helper()
	it := broker.SourceItem{PK: "USER#" + user, SK: "PROJECT#" + project, Role: broker.StringAttr("read")}
	w.h.PutSource(it)
	if out := w.process(w.proj, w.change(it.PK, it.SK, &it)); len(out.Failed) != 0 {
		w.t.Fatalf("join %s: %+v", user, out)
	}
}

func (w *world) leave(user, project string) projector.Change {
	pk, sk := "USER#"+user, "PROJECT#"+project
	w.h.DeleteSource(pk, sk)
	return w.change(pk, sk, nil)
}

func (w *world) addBucket(project, bucket string) projector.Change {
	it := broker.SourceItem{PK: "PROJECT#" + project, SK: "BUCKET#" + bucket}
	w.h.PutSource(it)
	return w.change(it.PK, it.SK, &it)
}

func (w *world) removeBucket(project, bucket string) projector.Change {
	pk, sk := "PROJECT#"+project, "BUCKET#"+bucket
	w.h.DeleteSource(pk, sk)
	return w.change(pk, sk, nil)
}

func (w *world) item(user string) broker.UserPolicy {
	w.t.Helper()
	p, err := w.h.Store.GetPolicy(context.Background(), user)
	if broker.KindOf(err) == broker.NotFound {
		return broker.UserPolicy{UserID: user}
	}
	if err != nil {
		w.t.Fatalf("read %s: %v", user, err)
	}
	return p
}

func (w *world) buckets(user string) []string {
	var out []string
	for _, g := range w.item(user).Grants {
		out = append(out, g.Bucket)
	}
	return out
}

// team makes n readers of project and gives the project two buckets.
func (w *world) team(project string, n int) []string {
	w.t.Helper()
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("member-%02d", i)
		w.join(users[i], project)
	}
	if out := w.process(w.proj, w.addBucket(project, "keep-bucket"), w.addBucket(project, "gone-bucket")); len(out.Failed) != 0 {
		w.t.Fatalf("buckets: %+v", out)
	}
	for _, u := range users {
		if got := w.buckets(u); len(got) != 2 {
			w.t.Fatalf("setup: %s holds %v", u, got)
		}
	}
	return users
}

var errBusDown = broker.Errorf(broker.Transient, "emit", "bus unreachable")

// With the bus down, a bucket removal still reaches every member on every
// page in the first delivery: a committed change whose event cannot be
// sent is not a failed recompute. The change comes back until the events
// are out, and once the bus is back each member's event is delivered.
func TestFanoutReachesEveryPageWhenTheBusIsDown(t *testing.T) {
	for _, b := range storetest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			w := newWorld(t, b)
			users := w.team("p1", 6)
			p := *w.proj
			p.PageSize = 2
			w.audit.SetFail(func([]broker.AuditEvent) error { return errBusDown })

			removal := w.removeBucket("p1", "gone-bucket")
			for delivery := 1; delivery <= 3; delivery++ {
				out := w.process(&p, removal)
				if len(out.Failed) != 1 {
					t.Fatalf("delivery %d with the bus down: %+v, want the change handed back", delivery, out)
				}
				for _, u := range users {
					if diff := cmp.Diff([]string{"keep-bucket"}, w.buckets(u)); diff != "" {
						t.Errorf("delivery %d: %s (-want +got):\n%s", delivery, u, diff)
					}
				}
			}

			w.audit.SetFail(nil)
			if out := w.process(&p, removal); len(out.Failed) != 0 {
				t.Fatalf("delivery with the bus back: %+v", out)
			}
			got := map[string]bool{}
			for _, e := range w.audit.Of(broker.DetailPolicyChanged) {
				d := e.Detail.(broker.PolicyChangedDetail)
				if len(d.Removed) == 1 && d.Removed[0].Bucket == "gone-bucket" {
					got[d.UserID] = true
				}
			}
			for _, u := range users {
				if !got[u] {
					t.Errorf("%s: no PolicyChanged event for the removal once the bus was back", u)
				}
			}
			if cp, _ := w.h.Store.LoadCheckpoint(context.Background(), "p1#"+removal.EventID); cp != "" {
				t.Errorf("checkpoint left after the fan-out finished: %s", cp)
			}
		})
	}
}

// One member whose recompute always fails does not keep the removal from
// anyone else, on any page; redeliveries recompute that member alone, and
// the failure is reported with the member's id.
func TestFanoutReachesEveryPageDespiteAPoisonedMember(t *testing.T) {
	for _, b := range storetest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			w := newWorld(t, b)
			users := w.team("p1", 6)
			bad := users[1] // on the first page of two members
			// Every claim of bad fails, like an item DynamoDB keeps refusing
			// or a user whose claims keep losing.
			store := &countingStore{PolicyStore: w.h.Store, claims: map[string]int{}, fail: func(user string) error {
				if user == bad {
					return broker.Errorf(broker.Transient, "claim policy", "throttled")
				}
				return nil
			}}
			p := *w.proj
			p.PageSize, p.Store = 2, store

			removal := w.removeBucket("p1", "gone-bucket")
			for delivery := 1; delivery <= 5; delivery++ {
				if out := w.process(&p, removal); len(out.Failed) != 1 {
					t.Fatalf("delivery %d: %+v, want the change handed back for the poisoned member", delivery, out)
				}
			}
			for _, u := range users {
				want := []string{"keep-bucket"}
				if u == bad {
					want = []string{"gone-bucket", "keep-bucket"}
				}
				if diff := cmp.Diff(want, w.buckets(u)); diff != "" {
					t.Errorf("%s (-want +got):\n%s", u, diff)
				}
				claims := 1
				if u == bad {
					claims = 5
				}
				if got := store.count(u); got != claims {
					t.Errorf("%s recomputed %d times over 5 deliveries, want %d", u, got, claims)
				}
			}
			if !w.log.hasError(bad) {
				t.Errorf("no error log names the poisoned member %s:\n%s", bad, w.log.String())
			}
		})
	}
}

// A claim counter that is not a whole int64 no longer freezes the user's
// grants: the endpoint refuses to issue from the item, and the next change
// resets the counter and writes what the membership table grants.
func TestCorruptClaimIsReset(t *testing.T) {
	for _, b := range storetest.Backends {
		for _, how := range storetest.Corruptions {
			t.Run(b.Name+"/"+string(how), func(t *testing.T) {
				w := newWorld(t, b)
				w.join("alice", "p1")
				if out := w.process(w.proj, w.addBucket("p1", "lake")); len(out.Failed) != 0 {
					t.Fatal(out)
				}
				ep := newService(w.h.Store)
				if status := ep.ask(t); status != 200 || ep.issued.Load() != 1 {
					t.Fatalf("before the corruption: status %d, %d issued", status, ep.issued.Load())
				}

				w.h.CorruptClaim(t, "alice", how)
				if status := ep.ask(t); status == 200 || ep.issued.Load() != 1 {
					t.Errorf("corrupt item: status %d, %d issued; want no credential", status, ep.issued.Load())
				}

				if out := w.process(w.proj, w.leave("alice", "p1")); len(out.Failed) != 0 {
					t.Fatalf("the change after the corruption: %+v", out)
				}
				if got := w.item("alice"); !got.Empty() {
					t.Errorf("alice left p1, her item still grants %v", w.buckets("alice"))
				}
				if status := ep.ask(t); status != 403 || ep.issued.Load() != 1 {
					t.Errorf("after the repair: status %d, %d issued; want 403 and nothing issued", status, ep.issued.Load())
				}
				var flagged bool
				for _, e := range w.audit.Of(broker.DetailPolicyChanged) {
					d := e.Detail.(broker.PolicyChangedDetail)
					flagged = flagged || d.UserID == "alice" && d.PreviousUnreadable && d.Narrows()
				}
				if !flagged {
					t.Error("no PolicyChanged event says that alice's unreadable item was replaced")
				}

				// The user's next grants are written normally again.
				w.join("alice", "p1")
				if diff := cmp.Diff([]string{"lake"}, w.buckets("alice")); diff != "" {
					t.Errorf("rejoined (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// service is the credential endpoint on the store, with a verifier that
// accepts alice and an issuer that counts AssumeRole calls.
type service struct {
	svc    *credentials.Service
	issued atomic.Int64
}

func newService(store broker.PolicyReader) *service {
	e := &service{}
	e.svc = &credentials.Service{
		Verifier: verifierFunc(func(context.Context, string) (broker.Principal, error) {
			return broker.Principal{UserID: "alice", ClientID: "c"}, nil
		}),
		Policies: store,
		Issuer: issuerFunc(func(context.Context, broker.IssueRequest) (broker.Credentials, error) {
			e.issued.Add(1)
			return broker.Credentials{AccessKeyID: "ASIA", SecretAccessKey: "s", SessionToken: "t", Expiration: time.Now().Add(time.Hour)}, nil
		}),
		Auditor: &brokertest.Auditor{},
		Logger:  slog.New(slog.DiscardHandler),
	}
	return e
}

func (e *service) ask(t *testing.T) int {
	t.Helper()
	ev := events.APIGatewayV2HTTPRequest{RawPath: credentials.Path, Headers: map[string]string{"authorization": "Bearer x"}}
	ev.RequestContext.HTTP.Method = "GET"
	resp, err := e.svc.Handle(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode
}

type verifierFunc func(context.Context, string) (broker.Principal, error)

func (f verifierFunc) Verify(ctx context.Context, token string) (broker.Principal, error) {
	return f(ctx, token)
}

type issuerFunc func(context.Context, broker.IssueRequest) (broker.Credentials, error)

func (f issuerFunc) Issue(ctx context.Context, r broker.IssueRequest) (broker.Credentials, error) {
	return f(ctx, r)
}

// syncBuffer collects log lines from concurrent recomputes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// hasError reports whether an ERROR line mentions s.
func (b *syncBuffer) hasError(s string) bool {
	for line := range strings.SplitSeq(b.String(), "\n") {
		var rec struct{ Level string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Level == "ERROR" && strings.Contains(line, s) {
			return true
		}
	}
	return false
}
