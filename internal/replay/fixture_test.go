//go:build integration

package replay_test

import (
	"context"
	"log/slog"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/ddbstore"
	"github.com/credbroker/credbroker/internal/ddbstream"
	"github.com/credbroker/credbroker/internal/projector"
	"github.com/credbroker/credbroker/internal/replay"
	"github.com/credbroker/credbroker/internal/testkit/brokertest"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
)

// fixture is a membership and a policy table in moto, the live projector
// on them, and a rebuild service wired like functions/replay wires it.
type fixture struct {
	t         testing.TB
	tables    mototest.Tables
	store     *ddbstore.Store
	audit     *brokertest.Auditor
	proj      *projector.Projector
	reader    *ddbstream.Reader
	svc       *replay.Service
	projected int // stream records the live projector has been given
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	tables := mototest.NewTables(t)
	f := &fixture{t: t, tables: tables, audit: &brokertest.Auditor{}}
	f.reader = &ddbstream.Reader{Client: dynamodbstreams.NewFromConfig(mototest.Config(t)), StreamARN: tables.StreamARN}
	f.store, f.proj, f.svc = f.wire(tables.Membership, tables.Policy)
	return f
}

// wire builds a store, a projector and a service on the fixture's
// membership table and the given policy table.
func (f *fixture) wire(membership, policyTable string) (*ddbstore.Store, *projector.Projector, *replay.Service) {
	store := &ddbstore.Store{Client: f.tables.DDB, MembershipTable: membership, PolicyTable: policyTable}
	// Logs go to the test's output, shown when it fails or with -v.
	log := slog.New(slog.NewTextHandler(f.t.Output(), nil))
	proj := &projector.Projector{Source: store, Store: store, Index: store, Checkpoints: store, Auditor: f.audit, Logger: log}
	svc := &replay.Service{
		Memberships: store, Policies: store, Store: store, Projector: proj,
		Stream: f.reader, Handler: &projector.Handler{Projector: proj}, Auditor: f.audit,
		Sizes:        ddbstore.Tables{Client: f.tables.DDB, MembershipTable: membership, PolicyTable: policyTable},
		RecheckAfter: -1, Segments: 3, Concurrency: 8, Logger: log,
	}
	return store, proj, svc
}

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func n(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }

func (f *fixture) putIn(table string, item map[string]types.AttributeValue) {
	f.t.Helper()
	f.tables.Put(f.t, table, item)
}

func (f *fixture) delIn(table, pk, sk string) { f.t.Helper(); f.tables.Delete(f.t, table, pk, sk) }

// Source-table writes, as onboarding tools make them.

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

// policyTable is a policy table's content reduced to what must match:
// each user item's version and the member-index entries.
type policyTable struct {
	Versions map[string]string // user -> version ("" for a claim without commit)
	Index    []string          // "project/user", sorted
}

func (f *fixture) snapshot(table string) policyTable {
	f.t.Helper()
	out := policyTable{Versions: map[string]string{}}
	in := &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)}
	for {
		page, err := f.tables.DDB.Scan(context.Background(), in)
		if err != nil {
			f.t.Fatal(err)
		}
		for _, it := range page.Items {
			pk, sk := str(it["pk"]), str(it["sk"])
			switch {
			case sk == "POLICY":
				out.Versions[strings.TrimPrefix(pk, "USER#")] = str(it["version"])
			case strings.HasPrefix(sk, "MEMBER#"):
				out.Index = append(out.Index, strings.TrimPrefix(pk, "PROJECT#")+"/"+strings.TrimPrefix(sk, "MEMBER#"))
			}
		}
		if len(page.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
	sort.Strings(out.Index)
	return out
}

func str(v types.AttributeValue) string {
	if sv, ok := v.(*types.AttributeValueMemberS); ok {
		return sv.Value
	}
	return ""
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
