package replay_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/projector"
	"github.com/credbroker/credbroker/internal/replay"
	"github.com/credbroker/credbroker/internal/testkit/brokertest"
	"github.com/credbroker/credbroker/internal/testkit/storetest"
)

// fixture is a membership table with its stream and a policy table, the
// live projector on them, and a rebuild service wired like functions/replay
// wires it. Which tables depends on the tier: in memory (memtable and
// memstore, fixture_mem_test.go) in the fast tier, moto through the real
// adapters with the integration build tag (fixture_moto_test.go).
type fixture struct {
	t         testing.TB
	tables    sourceTable
	policy    policyTable // the one the projector and the service work on
	store     store
	audit     *brokertest.Auditor
	proj      *projector.Projector
	svc       *replay.Service
	projected int // stream records the live projector has been given
}

// sourceTable is the membership table with its stream, as the tests write
// and read it.
type sourceTable interface {
	Put(tb testing.TB, item map[string]types.AttributeValue)
	Delete(tb testing.TB, pk, sk string)
	// StreamRecords returns every stream record so far, as Lambda
	// delivers them.
	StreamRecords(tb testing.TB) []events.DynamoDBEventRecord
	// Stream reads the stream as Replay does.
	Stream(tb testing.TB) replay.StreamReader
	// NewPolicyTable returns a further, empty policy table whose store
	// reads this membership table.
	NewPolicyTable(tb testing.TB) policyTable
	// AuditBus returns an auditor and a reader of what reaches the bus's
	// subscribers through it: every event since the last read, waiting for
	// at least want of them where delivery takes time.
	AuditBus(tb testing.TB) (broker.Auditor, func(want int) []sentEvent)
}

// sentEvent is an audit event as a subscriber of the bus receives it.
type sentEvent struct {
	Source, DetailType string
	Detail             json.RawMessage
}

// policyTable is a policy table: the store that reads and writes it (with
// the membership table), and hand edits of its items as an operator or a
// bug could make them, below the store.
type policyTable interface {
	Store() store
	// Sizes gives the tables' item counts, or nil.
	Sizes() replay.Sizer
	// PutItem writes a user's item whole: version, document (JSON, as
	// ddbstore stores it) and claim counter, stamped long ago.
	PutItem(tb testing.TB, user, version, doc string, claim int64)
	// SetDoc replaces the document of the user's item, and its version
	// unless version is "", keeping the rest.
	SetDoc(tb testing.TB, user, version, doc string)
	// Doc reads the document of the user's item.
	Doc(tb testing.TB, user string) string
	DeleteItem(tb testing.TB, user string)
	PutEntry(tb testing.TB, project, user string, token int64)
	DeleteEntry(tb testing.TB, project, user string)
	// Snapshot reads the whole table as it is stored.
	Snapshot(tb testing.TB) snapshot
}

// store is everything the projector and the service use.
type store interface {
	storetest.Store
	storetest.Scanner
	replay.Store
}

// snapshot is a policy table's content reduced to what must match: each
// user item's version and the member-index entries.
type snapshot struct {
	Versions map[string]string // user -> version ("" for a claim without commit)
	Index    []string          // "project/user", sorted
}

// storedDoc is the document of a policy item, as ddbstore writes it.
type storedDoc struct {
	Grants    []broker.Grant            `json:"grants"`
	Sets      []broker.PolicySet        `json:"sets"`
	ByProject map[string][]broker.Place `json:"byProject"`
	Expires   map[string]time.Time      `json:"expires,omitempty"`
}

// stampedLongAgo is the checkedAt of items written by hand.
var stampedLongAgo = time.UnixMilli(1000)

func newFixture(t testing.TB) *fixture {
	t.Helper()
	tables, policy := newTables(t)
	f := &fixture{t: t, tables: tables, policy: policy, audit: &brokertest.Auditor{}}
	f.store = policy.Store()
	f.proj, f.svc = f.wire(policy)
	return f
}

// wire builds a projector and a service on the fixture's membership table
// and the given policy table.
func (f *fixture) wire(p policyTable) (*projector.Projector, *replay.Service) {
	store := p.Store()
	// Logs go to the test's output, shown when it fails or with -v.
	log := slog.New(slog.NewTextHandler(f.t.Output(), nil))
	proj := &projector.Projector{Source: store, Store: store, Index: store, Checkpoints: store, Auditor: f.audit, Logger: log}
	svc := &replay.Service{
		Memberships: store, Policies: store, Store: store, Projector: proj,
		Stream: f.tables.Stream(f.t), Handler: &projector.Handler{Projector: proj}, Auditor: f.audit,
		Sizes: p.Sizes(), RecheckAfter: -1, Segments: 3, Concurrency: 8, Logger: log,
	}
	return proj, svc
}

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

// Source-table writes, as onboarding tools make them.

func (f *fixture) put(item map[string]types.AttributeValue) {
	f.t.Helper()
	f.tables.Put(f.t, item)
}

// write writes the item pk/sk, with the attribute name set to value
// unless value is "".
func (f *fixture) write(pk, sk, name, value string) {
	f.t.Helper()
	item := map[string]types.AttributeValue{"pk": s(pk), "sk": s(sk)}
	if value != "" {
		item[name] = s(value)
	}
	f.put(item)
}

// member writes a membership record; role "" leaves the attribute out.
func (f *fixture) member(user, project, role string) {
	f.t.Helper()
	f.write("USER#"+user, "PROJECT#"+project, "role", role)
}

func (f *fixture) leave(user, project string) {
	f.t.Helper()
	f.tables.Delete(f.t, "USER#"+user, "PROJECT#"+project)
}

// bucket writes a bucket record; prefix "" leaves the attribute out.
func (f *fixture) bucket(project, bucket, prefix string) {
	f.t.Helper()
	f.write("PROJECT#"+project, "BUCKET#"+bucket, "prefix", prefix)
}

func (f *fixture) unbucket(project, bucket string) {
	f.t.Helper()
	f.tables.Delete(f.t, "PROJECT#"+project, "BUCKET#"+bucket)
}

// streamRecords reads every record of the membership table's stream.
func (f *fixture) streamRecords() []events.DynamoDBEventRecord {
	f.t.Helper()
	return f.tables.StreamRecords(f.t)
}

// project runs the live projector's Lambda handler on the stream records
// it has not seen yet.
func (f *fixture) project() {
	f.t.Helper()
	recs := f.streamRecords()[f.projected:]
	if len(recs) == 0 {
		return
	}
	payload, err := projector.Payload(recs)
	if err != nil {
		f.t.Fatal(err)
	}
	resp, err := (&projector.Handler{Projector: f.proj}).Handle(context.Background(), payload)
	if err != nil || len(resp.BatchItemFailures) > 0 {
		f.t.Fatalf("live projection: %v %+v", err, resp.BatchItemFailures)
	}
	f.projected += len(recs)
}

// editDoc rewrites the document of a user's item and nothing else: the
// version stays, as after a careless hand edit.
func (f *fixture) editDoc(user string, edit func(d *storedDoc) string) {
	f.t.Helper()
	var d storedDoc
	if err := json.Unmarshal([]byte(f.policy.Doc(f.t, user)), &d); err != nil {
		f.t.Fatalf("%s's document: %v", user, err)
	}
	f.policy.SetDoc(f.t, user, "", edit(&d))
}

// item reads a user's policy; no item reads as empty.
func (f *fixture) item(user string) broker.UserPolicy {
	f.t.Helper()
	p, err := f.store.GetPolicy(context.Background(), user)
	if broker.KindOf(err) == broker.NotFound {
		return broker.UserPolicy{UserID: user}
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

// hasEntry reports whether the member index holds project/user.
func (f *fixture) hasEntry(project, user string) bool {
	f.t.Helper()
	toks, err := f.store.MemberTokens(context.Background(), user, []string{project})
	if err != nil {
		f.t.Fatal(err)
	}
	_, ok := toks[project]
	return ok
}
