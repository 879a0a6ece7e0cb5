package mototest

import (
	"context"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/ddbstream"
	"github.com/credbroker/credbroker/internal/samtemplate"
)

// Tables are a membership table and a policy table created in moto from
// template.yaml's own definitions.
type Tables struct {
	DDB        *dynamodb.Client
	Membership string
	Policy     string
	StreamARN  string
}

// NewTables creates both tables with unique names; they are deleted when
// the test ends.
func NewTables(tb testing.TB) Tables {
	tb.Helper()
	ctx := context.Background()
	tpl, err := samtemplate.LoadDefault()
	if err != nil {
		tb.Fatalf("load template: %v", err)
	}
	ddb := dynamodb.NewFromConfig(Config(tb))
	t := Tables{DDB: ddb, Membership: Name(tb, "membership"), Policy: Name(tb, "policy")}
	for _, spec := range []struct{ logical, name string }{{"MembershipTable", t.Membership}, {"PolicyTable", t.Policy}} {
		def, err := tpl.Table(spec.logical)
		if err != nil {
			tb.Fatalf("table %s: %v", spec.logical, err)
		}
		desc, err := def.Create(ctx, ddb, spec.name)
		if broker.KindOf(err) == broker.Conflict {
			// The name is random to this test, so the table can only be
			// this test's own: the SDK retried a CreateTable whose first
			// attempt moto (under load) carried out but did not answer.
			out, derr := ddb.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(spec.name)})
			if derr == nil {
				desc, err = out.Table, nil
			}
		}
		if err != nil {
			tb.Fatalf("create %s: %v", spec.logical, err)
		}
		if spec.logical == "MembershipTable" {
			t.StreamARN = aws.ToString(desc.LatestStreamArn)
		}
		name := spec.name
		tb.Cleanup(func() {
			_, _ = ddb.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
		})
	}
	if t.StreamARN == "" {
		tb.Fatal("membership table has no stream: template.yaml must enable it")
	}
	return t
}

// Put writes an item into table.
func (t Tables) Put(tb testing.TB, table string, item map[string]types.AttributeValue) {
	tb.Helper()
	if _, err := t.DDB.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
		tb.Fatalf("put into %s: %v", table, err)
	}
}

// Delete deletes the item (pk, sk) of table.
func (t Tables) Delete(tb testing.TB, table, pk, sk string) {
	tb.Helper()
	_, err := t.DDB.DeleteItem(context.Background(), &dynamodb.DeleteItemInput{TableName: aws.String(table), Key: Key(pk, sk)})
	if err != nil {
		tb.Fatalf("delete from %s: %v", table, err)
	}
}

// Key is a pk/sk key.
func Key(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": S(pk), "sk": S(sk)}
}

// S is a string attribute value.
func S(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

// Membership-table writes, as onboarding tools make them.

// Member writes a membership record; role "" leaves the attribute out.
func (t Tables) Member(tb testing.TB, user, project, role string) {
	tb.Helper()
	item := Key("USER#"+user, "PROJECT#"+project)
	if role != "" {
		item["role"] = S(role)
	}
	t.Put(tb, t.Membership, item)
}

// Leave deletes a membership record.
func (t Tables) Leave(tb testing.TB, user, project string) {
	tb.Helper()
	t.Delete(tb, t.Membership, "USER#"+user, "PROJECT#"+project)
}

// Bucket writes a bucket record; prefix "" leaves the attribute out.
func (t Tables) Bucket(tb testing.TB, project, bucket, prefix string) {
	tb.Helper()
	item := Key("PROJECT#"+project, "BUCKET#"+bucket)
	if prefix != "" {
		item["prefix"] = S(prefix)
	}
	t.Put(tb, t.Membership, item)
}

// Unbucket deletes a bucket record.
func (t Tables) Unbucket(tb testing.TB, project, bucket string) {
	tb.Helper()
	t.Delete(tb, t.Membership, "PROJECT#"+project, "BUCKET#"+bucket)
}

// StreamRecords reads every record of the membership table's stream so
// far, in the shape Lambda delivers them.
func (t Tables) StreamRecords(tb testing.TB) []events.DynamoDBEventRecord {
	tb.Helper()
	r := &ddbstream.Reader{Client: dynamodbstreams.NewFromConfig(Config(tb)), StreamARN: t.StreamARN}
	var out []events.DynamoDBEventRecord
	err := r.ReadAll(context.Background(), 2, func(_ context.Context, _ string, recs []events.DynamoDBEventRecord) error {
		out = append(out, recs...)
		return nil
	})
	if err != nil {
		tb.Fatalf("read the membership stream: %v", err)
	}
	return out
}

// Source is the membership table of Tables with memtable.Table's methods,
// so that a test fixture can run on either tier's table.
type Source struct{ Tables }

// Put writes an item into the membership table.
func (s Source) Put(tb testing.TB, item map[string]types.AttributeValue) {
	tb.Helper()
	s.Tables.Put(tb, s.Membership, item)
}

// Delete deletes the item (pk, sk) of the membership table.
func (s Source) Delete(tb testing.TB, pk, sk string) {
	tb.Helper()
	s.Tables.Delete(tb, s.Membership, pk, sk)
}

// Scan returns every item of the membership table, read consistently.
func (s Source) Scan(tb testing.TB) []map[string]types.AttributeValue {
	tb.Helper()
	var out []map[string]types.AttributeValue
	in := &dynamodb.ScanInput{TableName: aws.String(s.Membership), ConsistentRead: aws.Bool(true)}
	for {
		page, err := s.DDB.Scan(context.Background(), in)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, page.Items...)
		if len(page.LastEvaluatedKey) == 0 {
			return out
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
}
