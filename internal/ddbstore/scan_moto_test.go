//go:build integration

package ddbstore_test

import (
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/ddbstore"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
)

// A scan decodes a policy item as the endpoint's read does, its cutoff
// included: an item whose cutoff does not decode is one the endpoint
// refuses, so the scan reports it too (credbroker admin counts it as not
// served) instead of reading it without the cutoff.
func TestAScanDecodesTheCutoffAsTheEndpointDoes(t *testing.T) {
	ctx := t.Context()
	tables := mototest.NewTables(t)
	store := &ddbstore.Store{Client: tables.DDB, PolicyTable: tables.Policy}
	cut := time.Date(2026, 11, 30, 12, 0, 4, 0, time.UTC)
	for _, u := range []string{"alice", "bob"} {
		if _, err := store.AdvanceCutoff(ctx, u, cut); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tables.DDB.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(tables.Policy),
		Key: mototest.Key(broker.UserKeyPrefix+"bob", "POLICY"), UpdateExpression: aws.String("SET revokedBefore = :x"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":x": mototest.S("soon")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.GetPolicy(ctx, "bob"); !errors.Is(err, broker.ErrCorruptItem) {
		t.Fatalf("the endpoint's read of bob's item: %v, want ErrCorruptItem", err)
	}
	got := map[string]error{}
	cutoffs := map[string]time.Time{}
	err := store.ScanPolicies(ctx, 0, 1, func(userID string, p broker.UserPolicy, err error) error {
		got[userID], cutoffs[userID] = err, p.RevokedBefore
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got["alice"] != nil || !cutoffs["alice"].Equal(cut) {
		t.Errorf("alice: %v, cutoff %v; want her item with its cutoff %v", got["alice"], cutoffs["alice"], cut)
	}
	if !errors.Is(got["bob"], broker.ErrCorruptItem) {
		t.Errorf("bob's item with a corrupt cutoff scanned as %v, want ErrCorruptItem", got["bob"])
	}
}
