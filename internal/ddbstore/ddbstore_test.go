package ddbstore_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/ddbstore"
	"github.com/credbroker/credbroker/internal/mototest"
	"github.com/credbroker/credbroker/internal/storetest"
)

func TestConformanceOnMoto(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		tables := mototest.NewTables(t)
		client := &pagedScans{API: tables.DDB}
		s := &ddbstore.Store{Client: client, MembershipTable: tables.Membership, PolicyTable: tables.Policy}
		put := func(it broker.SourceItem) {
			item := map[string]types.AttributeValue{"pk": str(it.PK), "sk": str(it.SK)}
			if it.Role.Present {
				item["role"] = str(it.Role.S)
			}
			if it.Prefix.Present {
				item["prefix"] = str(it.Prefix.S)
			}
			if _, err := tables.DDB.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(tables.Membership), Item: item}); err != nil {
				t.Fatal(err)
			}
		}
		del := func(pk, sk string) {
			key := map[string]types.AttributeValue{"pk": str(pk), "sk": str(sk)}
			if _, err := tables.DDB.DeleteItem(context.Background(), &dynamodb.DeleteItemInput{TableName: aws.String(tables.Membership), Key: key}); err != nil {
				t.Fatal(err)
			}
		}
		return storetest.Harness{Store: s, PutSource: put, DeleteSource: del, Scanner: s,
			PageSize:  func(n int) { client.limit.Store(int32(n)) },
			ScanPages: func() int { return int(client.pages.Load()) }}
	})
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
