package ddbstore_test

import (
	"context"
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
		s := &ddbstore.Store{Client: tables.DDB, MembershipTable: tables.Membership, PolicyTable: tables.Policy}
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
		return storetest.Harness{Store: s, PutSource: put, DeleteSource: del}
	})
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }
