package projector_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/ddbstore"
	"github.com/credbroker/credbroker/internal/ddbstream"
	"github.com/credbroker/credbroker/internal/policy"
	"github.com/credbroker/credbroker/internal/projector"
	"github.com/credbroker/credbroker/internal/testkit/brokertest"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
)

// fixture is a membership table and a policy table in moto with a projector
// wired to them through the real adapters.
type fixture struct {
	t      testing.TB
	tables mototest.Tables
	store  *ddbstore.Store
	audit  *brokertest.Auditor
	proj   *projector.Projector
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	tables := mototest.NewTables(t)
	store := &ddbstore.Store{Client: tables.DDB, MembershipTable: tables.Membership, PolicyTable: tables.Policy}
	audit := &brokertest.Auditor{}
	f := &fixture{
		t: t, tables: tables, store: store, audit: audit,
		proj: &projector.Projector{
			Source: store, Store: store, Index: store, Checkpoints: store, Auditor: audit,
		},
	}
	return f
}

// Source-table writes, as onboarding tools make them.

func (f *fixture) put(item map[string]types.AttributeValue) {
	f.t.Helper()
	f.tables.Put(f.t, f.tables.Membership, item)
}

func s(v string) types.AttributeValue { return mototest.S(v) }

func (f *fixture) member(user, project, role string) {
	f.t.Helper()
	f.tables.Member(f.t, user, project, role)
}
func (f *fixture) leave(user, project string) { f.t.Helper(); f.tables.Leave(f.t, user, project) }
func (f *fixture) bucket(project, bucket, prefix string) {
	f.t.Helper()
	f.tables.Bucket(f.t, project, bucket, prefix)
}
func (f *fixture) unbucket(project, bucket string) {
	f.t.Helper()
	f.tables.Unbucket(f.t, project, bucket)
}

// bucketByUpdate creates a bucket record with UpdateItem, which moto
// reports as two INSERT records.
func (f *fixture) bucketByUpdate(project, bucket, prefix string) {
	f.t.Helper()
	_, err := f.tables.DDB.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{
		TableName:                 aws.String(f.tables.Membership),
		Key:                       map[string]types.AttributeValue{"pk": s("PROJECT#" + project), "sk": s("BUCKET#" + bucket)},
		UpdateExpression:          aws.String("SET prefix = :p"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": s(prefix)},
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// streamRecords reads every record of the membership table's stream so far.
func (f *fixture) streamRecords() []events.DynamoDBEventRecord {
	f.t.Helper()
	return f.tables.StreamRecords(f.t)
}

// deliver runs records through the Lambda handler as one batch.
func (f *fixture) deliver(records []events.DynamoDBEventRecord) events.DynamoDBEventResponse {
	f.t.Helper()
	payload, err := ddbstream.Payload(records)
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
	in := &dynamodb.ScanInput{TableName: aws.String(f.tables.Membership), ConsistentRead: aws.Bool(true)}
	for {
		out, err := f.tables.DDB.Scan(context.Background(), in)
		if err != nil {
			f.t.Fatal(err)
		}
		for _, it := range out.Items {
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
		if len(out.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
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
	b, err := ddbstream.Payload(recs)
	return string(b), err
}

func (f *fixture) handleRaw(payload string) (events.DynamoDBEventResponse, error) {
	return (&projector.Handler{Projector: f.proj}).Handle(context.Background(), json.RawMessage(payload))
}
