//go:build integration

package projector_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/credbroker/credbroker/internal/ddbstore"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
	"github.com/credbroker/credbroker/internal/testkit/storetest"
)

// newTables is the moto tier's: both tables in moto, from template.yaml,
// through ddbstore.
func newTables(t testing.TB) (sourceTable, storetest.Store) {
	tables := mototest.NewTables(t)
	return motoTable{mototest.Source{Tables: tables}}, &ddbstore.Store{Client: tables.DDB, MembershipTable: tables.Membership, PolicyTable: tables.Policy}
}

// motoTable is the membership table in moto.
type motoTable struct{ mototest.Source }

// motoTables returns the fixture's tables in moto, for tests that reach
// past the adapters (DynamoDB's own limits, items edited by hand).
func (f *fixture) motoTables() mototest.Tables {
	return f.table.(motoTable).Tables
}

// bucketByUpdate creates a bucket record with UpdateItem, which moto
// reports as two INSERT records.
func (f *fixture) bucketByUpdate(project, bucket, prefix string) {
	f.t.Helper()
	tables := f.motoTables()
	_, err := tables.DDB.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{
		TableName:                 aws.String(tables.Membership),
		Key:                       key("PROJECT#"+project, "BUCKET#"+bucket),
		UpdateExpression:          aws.String("SET prefix = :p"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": s(prefix)},
	})
	if err != nil {
		f.t.Fatal(err)
	}
}
