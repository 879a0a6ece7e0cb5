//go:build integration

package ddbstream_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/ddbstream"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
)

func TestReadAllSeesEveryRecordOfAStreamOnceInOrderPerItem(t *testing.T) {
	ctx := context.Background()
	tables := mototest.NewTables(t)
	s := func(v string) ddbtypes.AttributeValue { return &ddbtypes.AttributeValueMemberS{Value: v} }
	key := func(item int) map[string]ddbtypes.AttributeValue {
		return map[string]ddbtypes.AttributeValue{"pk": s("ITEM#" + strconv.Itoa(item)), "sk": s("X")}
	}
	want := map[string][]string{}
	// Versions of different items interleave, as writes do.
	for version := range 3 {
		for item := range 4 {
			it := key(item)
			it["version"] = &ddbtypes.AttributeValueMemberN{Value: strconv.Itoa(version)}
			if _, err := tables.DDB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(tables.Membership), Item: it}); err != nil {
				t.Fatal(err)
			}
			change := "MODIFY"
			if version == 0 {
				change = "INSERT"
			}
			name := "ITEM#" + strconv.Itoa(item)
			want[name] = append(want[name], change+" "+strconv.Itoa(version))
		}
	}
	if _, err := tables.DDB.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(tables.Membership), Key: key(1)}); err != nil {
		t.Fatal(err)
	}
	want["ITEM#1"] = append(want["ITEM#1"], "REMOVE")

	r := &ddbstream.Reader{Client: dynamodbstreams.NewFromConfig(mototest.Config(t)), StreamARN: tables.StreamARN}
	got := map[string][]string{}
	err := r.ReadAll(ctx, 2, func(_ context.Context, _ string, recs []events.DynamoDBEventRecord) error {
		for _, rec := range recs {
			if rec.EventSourceArn != tables.StreamARN {
				t.Errorf("record %s has source %q", rec.EventID, rec.EventSourceArn)
			}
			item := rec.Change.Keys["pk"].String()
			what := rec.EventName
			if v, ok := rec.Change.NewImage["version"]; ok {
				what += " " + v.Number()
			}
			got[item] = append(got[item], what)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records per item (-want +got):\n%s", diff)
	}
}
