//go:build integration

package storetest

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/ddbstore"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
)

func init() { Backends = append(Backends, Backend{"moto", Moto}) }

// Moto returns a harness on fresh tables in the moto_server of the test
// run, through ddbstore.
func Moto(t *testing.T) Harness {
	tables := mototest.NewTables(t)
	client := &pagedScans{API: tables.DDB}
	s := &ddbstore.Store{Client: client, MembershipTable: tables.Membership, PolicyTable: tables.Policy}
	ctx := context.Background()
	put := func(it broker.SourceItem) {
		item := map[string]types.AttributeValue{"pk": str(it.PK), "sk": str(it.SK)}
		if it.Role.Present {
			item["role"] = str(it.Role.S)
		}
		if it.Prefix.Present {
			item["prefix"] = str(it.Prefix.S)
		}
		if it.ExpiresAt.Present {
			item["expiresAt"] = str(it.ExpiresAt.S)
		}
		if _, err := tables.DDB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(tables.Membership), Item: item}); err != nil {
			t.Fatal(err)
		}
	}
	del := func(pk, sk string) {
		key := map[string]types.AttributeValue{"pk": str(pk), "sk": str(sk)}
		if _, err := tables.DDB.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(tables.Membership), Key: key}); err != nil {
			t.Fatal(err)
		}
	}
	policyKey := func(user string) map[string]types.AttributeValue {
		return map[string]types.AttributeValue{"pk": str(broker.UserKeyPrefix + user), "sk": str("POLICY")}
	}
	corrupt := func(t *testing.T, user string, how Corruption) {
		t.Helper()
		v := map[Corruption]types.AttributeValue{
			CounterAsString:    str("7"),
			CounterAsFraction:  &types.AttributeValueMemberN{Value: "2.5"},
			CounterBeyondInt64: &types.AttributeValueMemberN{Value: "12345678901234567890123"},
		}[how]
		_, err := tables.DDB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: aws.String(tables.Policy), Key: policyKey(user),
			UpdateExpression: aws.String("SET claim = :v"), ExpressionAttributeValues: map[string]types.AttributeValue{":v": v},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	corruptDoc := func(t *testing.T, user string) {
		t.Helper()
		_, err := tables.DDB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: aws.String(tables.Policy), Key: policyKey(user),
			UpdateExpression: aws.String("SET doc = :v"), ExpressionAttributeValues: map[string]types.AttributeValue{":v": str(`{"grants":[`)},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	checkedAt := func(t *testing.T, user string) time.Time {
		t.Helper()
		out, err := tables.DDB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(tables.Policy), Key: policyKey(user), ConsistentRead: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		n, ok := out.Item["checkedAt"].(*types.AttributeValueMemberN)
		if !ok {
			return time.Time{}
		}
		ms, err := strconv.ParseInt(n.Value, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return time.UnixMilli(ms)
	}
	return Harness{Store: s, PutSource: put, DeleteSource: del, Scanner: s,
		PageSize:     func(n int) { client.limit.Store(int32(n)) },
		ScanPages:    func() int { return int(client.pages.Load()) },
		CorruptClaim: corrupt, CorruptDocument: corruptDoc, CheckedAt: checkedAt}
}

// pagedScans passes every call to moto, limiting Scan pages to limit items
// (when set) and counting them, so that a few items take many pages: the
// ExclusiveStartKey path is then exercised without megabytes of data.
type pagedScans struct {
	ddbstore.API
	limit atomic.Int32
	pages atomic.Int64
}

func (p *pagedScans) Scan(ctx context.Context, in *dynamodb.ScanInput, opts ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	if n := p.limit.Load(); n > 0 {
		cp := *in
		cp.Limit = aws.Int32(n)
		in = &cp
	}
	p.pages.Add(1)
	return p.API.Scan(ctx, in, opts...)
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }
