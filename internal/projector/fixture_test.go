package projector_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/ddbstore"
	"github.com/credbroker/credbroker/internal/policy"
	"github.com/credbroker/credbroker/internal/projector"
	"github.com/credbroker/credbroker/internal/testkit/brokertest"
	"github.com/credbroker/credbroker/internal/testkit/storetest"
)

// fixture is a membership table with a stream and a policy table with a
// projector wired to them. Which tables depends on the tier: in memory
// (memtable and memstore) in the fast tier, moto through the real adapters
// with the integration build tag (fixture_moto_test.go, fixture_mem_test.go).
type fixture struct {
	t     testing.TB
	table sourceTable
	store storetest.Store
	audit *brokertest.Auditor
	proj  *projector.Projector
}

// sourceTable is the membership table as the tests write and read it.
type sourceTable interface {
	Put(tb testing.TB, item map[string]types.AttributeValue)
	Delete(tb testing.TB, pk, sk string)
	// StreamRecords returns every stream record so far, as Lambda
	// delivers them.
	StreamRecords(tb testing.TB) []events.DynamoDBEventRecord
	// Scan returns every item, read consistently.
	Scan(tb testing.TB) []map[string]types.AttributeValue
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	table, store := newTables(t)
	audit := &brokertest.Auditor{}
	return &fixture{
		t: t, table: table, store: store, audit: audit,
		proj: &projector.Projector{
			Source: store, Store: store, Index: store, Checkpoints: store, Auditor: audit,
		},
	}
}

// Source-table writes, as onboarding tools make them.

func (f *fixture) put(item map[string]types.AttributeValue) {
	f.t.Helper()
	f.table.Put(f.t, item)
}

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func key(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": s(pk), "sk": s(sk)}
}

// member writes a membership record; role "" leaves the attribute out.
func (f *fixture) member(user, project, role string) {
	f.t.Helper()
	item := key("USER#"+user, "PROJECT#"+project)
	if role != "" {
		item["role"] = s(role)
	}
	f.put(item)
}

func (f *fixture) leave(user, project string) {
	f.t.Helper()
	f.table.Delete(f.t, "USER#"+user, "PROJECT#"+project)
}

// bucket writes a bucket record; prefix "" leaves the attribute out.
func (f *fixture) bucket(project, bucket, prefix string) {
	f.t.Helper()
	item := key("PROJECT#"+project, "BUCKET#"+bucket)
	if prefix != "" {
		item["prefix"] = s(prefix)
	}
	f.put(item)
}

func (f *fixture) unbucket(project, bucket string) {
	f.t.Helper()
	f.table.Delete(f.t, "PROJECT#"+project, "BUCKET#"+bucket)
}

// streamRecords reads every record of the membership table's stream so far.
func (f *fixture) streamRecords() []events.DynamoDBEventRecord {
	f.t.Helper()
	return f.table.StreamRecords(f.t)
}

// deliver runs records through the Lambda handler as one batch.
func (f *fixture) deliver(records []events.DynamoDBEventRecord) events.DynamoDBEventResponse {
	f.t.Helper()
	payload, err := projector.Payload(records)
	if err != nil {
		f.t.Fatal(err)
	}
	resp, err := (&projector.Handler{Projector: f.proj}).Handle(context.Background(), payload)
	if err != nil {
		f.t.Fatal(err)
	}
	return resp
}

// expected recomputes a user's policy from scratch: a consistent scan of
// the whole membership table, independent of how the projector reads it.
func (f *fixture) expected(user string) policy.Result {
	f.t.Helper()
	byProject := f.scanGrants()[user]
	res, err := f.proj.Compiler.Compile(byProject)
	if err != nil {
		f.t.Fatal(err)
	}
	return res
}

// scanGrants maps each user to what the membership table grants them.
func (f *fixture) scanGrants() map[string]map[string][]broker.Place {
	f.t.Helper()
	members := map[string]map[string]broker.Access{} // user -> project -> access
	buckets := map[string][]broker.ProjectBucket{}
	for _, it := range f.table.Scan(f.t) {
		parsed, err := ddbstore.SourceItem(it).Parse()
		if err != nil {
			continue
		}
		switch parsed.Kind {
		case broker.MembershipRecord:
			m := parsed.Membership
			if members[m.UserID] == nil {
				members[m.UserID] = map[string]broker.Access{}
			}
			members[m.UserID][m.ProjectID] = m.Access
		case broker.BucketRecord:
			b := parsed.Bucket
			if policy.Compiler.FitsAlone(f.proj.Compiler, b.Bucket, b.Prefix) {
				buckets[b.ProjectID] = append(buckets[b.ProjectID], b)
			}
		}
	}
	out := map[string]map[string][]broker.Place{}
	for user, projects := range members {
		out[user] = map[string][]broker.Place{}
		for p, access := range projects {
			for _, b := range buckets[p] {
				out[user][p] = append(out[user][p], broker.Place{Bucket: b.Bucket, Prefix: b.Prefix, Access: access})
			}
		}
	}
	return out
}

// item reads a user's policy item; a missing item reads as empty.
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

// assertConverged checks every user's item against a from-scratch
// recomputation.
func (f *fixture) assertConverged(users ...string) {
	f.t.Helper()
	for _, u := range users {
		want, got := f.expected(u), f.item(u)
		if len(want.Grants) == 0 && len(got.Grants) == 0 {
			continue
		}
		if got.Version != want.Version {
			wj, _ := json.Marshal(want.Grants)
			gj, _ := json.Marshal(got.Grants)
			f.t.Errorf("user %s: item version %s, from scratch %s\nitem grants: %s\nwant grants: %s", u, got.Version, want.Version, gj, wj)
		}
	}
}

func places(p broker.UserPolicy) []string {
	var out []string
	for _, g := range p.Grants {
		out = append(out, g.Bucket+"/"+g.Prefix+":"+string(g.Access))
	}
	slices.Sort(out)
	return out
}

func seqs(resp events.DynamoDBEventResponse) []string {
	var out []string
	for _, f := range resp.BatchItemFailures {
		out = append(out, f.ItemIdentifier)
	}
	return out
}

func jsonRecords(recs []events.DynamoDBEventRecord) (string, error) {
	b, err := projector.Payload(recs)
	return string(b), err
}

func (f *fixture) handleRaw(payload string) (events.DynamoDBEventResponse, error) {
	return (&projector.Handler{Projector: f.proj}).Handle(context.Background(), json.RawMessage(payload))
}
