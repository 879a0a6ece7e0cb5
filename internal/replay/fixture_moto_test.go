//go:build integration

package replay_test

import (
	"context"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/ddbstore"
	"github.com/credbroker/credbroker/internal/ddbstream"
	"github.com/credbroker/credbroker/internal/ebaudit"
	"github.com/credbroker/credbroker/internal/replay"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
)

// newTables is the moto tier's: both tables in moto, from template.yaml,
// through ddbstore; the stream is read through dynamodbstreams.
func newTables(t testing.TB) (sourceTable, policyTable) {
	tables := mototest.NewTables(t)
	return motoTable{mototest.Source{Tables: tables}}, newMotoPolicy(tables, tables.Policy)
}

// motoTable is the membership table in moto.
type motoTable struct{ mototest.Source }

func (m motoTable) Stream(tb testing.TB) replay.StreamReader {
	return &ddbstream.Reader{Client: dynamodbstreams.NewFromConfig(mototest.Config(tb)), StreamARN: m.StreamARN}
}

// NewPolicyTable uses the policy table of new tables; their membership
// table stays unused.
func (m motoTable) NewPolicyTable(tb testing.TB) policyTable {
	return newMotoPolicy(m.Tables, mototest.NewTables(tb).Policy)
}

// AuditBus is an EventBridge bus in moto read back through SQS.
func (m motoTable) AuditBus(tb testing.TB) (broker.Auditor, func(int) []sentEvent) {
	bus := mototest.NewAuditBus(tb)
	auditor := ebaudit.New(ebaudit.Config{Client: eventbridge.NewFromConfig(mototest.Config(tb)), BusName: bus.Name})
	return auditor, func(want int) []sentEvent {
		tb.Helper()
		var out []sentEvent
		for _, ev := range append(bus.Receive(tb, want), bus.ReceiveAll(tb)...) {
			out = append(out, sentEvent{Source: ev.Source, DetailType: ev.DetailType, Detail: ev.Detail})
		}
		return out
	}
}

// motoPolicy is a policy table in moto, on the membership table of tables.
type motoPolicy struct {
	tables mototest.Tables
	name   string
	store  *ddbstore.Store
}

func newMotoPolicy(tables mototest.Tables, name string) motoPolicy {
	return motoPolicy{tables: tables, name: name,
		store: &ddbstore.Store{Client: tables.DDB, MembershipTable: tables.Membership, PolicyTable: name}}
}

func (m motoPolicy) Store() store { return m.store }

func (m motoPolicy) Sizes() replay.Sizer {
	return ddbstore.Tables{Client: m.tables.DDB, MembershipTable: m.tables.Membership, PolicyTable: m.name}
}

func n(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }

func str(v types.AttributeValue) string {
	if sv, ok := v.(*types.AttributeValueMemberS); ok {
		return sv.Value
	}
	return ""
}

func userKey(user string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": s("USER#" + user), "sk": s("POLICY")}
}

func (m motoPolicy) PutItem(tb testing.TB, user, version, doc string, claim int64) {
	tb.Helper()
	var d storedDoc
	if err := json.Unmarshal([]byte(doc), &d); err != nil {
		tb.Fatalf("document of %s: %v", user, err)
	}
	item := userKey(user)
	item["userId"], item["version"], item["doc"] = s(user), s(version), s(doc)
	item["claim"] = n(strconv.FormatInt(claim, 10))
	item["checkedAt"] = n(strconv.FormatInt(stampedLongAgo.UnixMilli(), 10))
	item["grantCount"] = n(strconv.Itoa(len(d.Grants)))
	m.tables.Put(tb, m.name, item)
}

func (m motoPolicy) SetDoc(tb testing.TB, user, version, doc string) {
	tb.Helper()
	in := &dynamodb.UpdateItemInput{
		TableName: aws.String(m.name), Key: userKey(user),
		UpdateExpression:          aws.String("SET #d = :d"),
		ExpressionAttributeNames:  map[string]string{"#d": "doc"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":d": s(doc)},
	}
	if version != "" {
		in.UpdateExpression = aws.String("SET #d = :d, #v = :v")
		in.ExpressionAttributeNames["#v"] = "version"
		in.ExpressionAttributeValues[":v"] = s(version)
	}
	if _, err := m.tables.DDB.UpdateItem(context.Background(), in); err != nil {
		tb.Fatal(err)
	}
}

func (m motoPolicy) Doc(tb testing.TB, user string) string {
	tb.Helper()
	out, err := m.tables.DDB.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(m.name), Key: userKey(user), ConsistentRead: aws.Bool(true)})
	if err != nil {
		tb.Fatal(err)
	}
	return str(out.Item["doc"])
}

func (m motoPolicy) DeleteItem(tb testing.TB, user string) {
	tb.Helper()
	m.tables.Delete(tb, m.name, "USER#"+user, "POLICY")
}

func (m motoPolicy) PutEntry(tb testing.TB, project, user string, token int64) {
	tb.Helper()
	m.tables.Put(tb, m.name, map[string]types.AttributeValue{
		"pk": s("PROJECT#" + project), "sk": s("MEMBER#" + user), "token": n(strconv.FormatInt(token, 10)), "userId": s(user)})
}

func (m motoPolicy) DeleteEntry(tb testing.TB, project, user string) {
	tb.Helper()
	m.tables.Delete(tb, m.name, "PROJECT#"+project, "MEMBER#"+user)
}

// Snapshot scans the table itself, not through ddbstore.
func (m motoPolicy) Snapshot(tb testing.TB) snapshot {
	tb.Helper()
	out := snapshot{Versions: map[string]string{}}
	in := &dynamodb.ScanInput{TableName: aws.String(m.name), ConsistentRead: aws.Bool(true)}
	for {
		page, err := m.tables.DDB.Scan(context.Background(), in)
		if err != nil {
			tb.Fatal(err)
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
