//go:build integration

package projector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/ebaudit"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
)

// A user whose item DynamoDB cannot store (over 400 KB) is granted nothing:
// keeping the previous item could keep revoked grants alive.
func TestAUserTooLargeForOneItemIsGrantedNothing(t *testing.T) {
	f := newFixture(t)
	tables := f.motoTables()
	f.member("alice", "big", "write")
	f.bucket("big", "small-first", "")
	f.deliver(f.streamRecords())
	if len(f.item("alice").Grants) != 1 {
		t.Fatal("setup: alice should hold one grant")
	}
	n := len(f.streamRecords())
	var writes []types.WriteRequest
	flush := func() {
		req := map[string][]types.WriteRequest{tables.Membership: writes}
		for len(req) > 0 {
			out, err := tables.DDB.BatchWriteItem(context.Background(), &dynamodb.BatchWriteItemInput{RequestItems: req})
			if err != nil {
				t.Fatal(err)
			}
			req = out.UnprocessedItems
		}
		writes = nil
	}
	for i := range 1600 {
		writes = append(writes, types.WriteRequest{PutRequest: &types.PutRequest{Item: map[string]types.AttributeValue{
			"pk": s("PROJECT#big"), "sk": s(fmt.Sprintf("BUCKET#b%04d-%s", i, strings.Repeat("x", 50))), "prefix": s(fmt.Sprintf("team-%04d/", i))}}})
		if len(writes) == 25 {
			flush()
		}
	}
	flush()
	recs := f.streamRecords()[n:]
	if resp := f.deliver(recs[len(recs)-1:]); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures: %v", seqs(resp))
	}
	if got := f.item("alice"); !got.Empty() {
		t.Fatalf("an item too large to store left %d grants in place", len(got.Grants))
	}
	evs := f.audit.Of(broker.DetailPolicyChanged)
	last := evs[len(evs)-1].Detail.(broker.PolicyChangedDetail)
	if last.RemovedCount != 1 || !last.Truncated {
		t.Errorf("fallback event = removed %d (list %d), truncated %v", last.RemovedCount, len(last.Removed), last.Truncated)
	}
}

// An item that no longer decodes does not block its user forever: the next
// recompute overwrites it.
func TestACorruptItemIsOverwritten(t *testing.T) {
	f := newFixture(t)
	tables := f.motoTables()
	f.member("alice", "p1", "read")
	f.bucket("p1", "lake", "")
	_, err := tables.DDB.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(tables.Policy), Item: map[string]types.AttributeValue{
		"pk": s("USER#alice"), "sk": s("POLICY"), "claim": &types.AttributeValueMemberN{Value: "3"},
		"version": s("v1.x"), "doc": s("{not json"), "outbox": &types.AttributeValueMemberL{Value: []types.AttributeValue{s("[")}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if resp := f.deliver(f.streamRecords()); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures: %v", seqs(resp))
	}
	f.assertConverged("alice")
	if got := places(f.item("alice")); len(got) != 1 {
		t.Errorf("alice = %v", got)
	}
}

// rejectingEventBridge refuses, for good, every entry whose detail contains
// a marker, and passes the rest to moto: the bus accepting some events and
// refusing others as malformed.
type rejectingEventBridge struct {
	real   ebaudit.PutEventsAPI
	marker string
}

func (r rejectingEventBridge) PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, o ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	out := &eventbridge.PutEventsOutput{Entries: make([]ebtypes.PutEventsResultEntry, len(in.Entries))}
	var pass []ebtypes.PutEventsRequestEntry
	var at []int
	for i, e := range in.Entries {
		if strings.Contains(aws.ToString(e.Detail), r.marker) {
			out.Entries[i] = ebtypes.PutEventsResultEntry{ErrorCode: aws.String("MalformedDetail"), ErrorMessage: aws.String("injected")}
			out.FailedEntryCount++
			continue
		}
		pass = append(pass, e)
		at = append(at, i)
	}
	if len(pass) > 0 {
		real, err := r.real.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: pass}, o...)
		if err != nil {
			return nil, err
		}
		for j, e := range real.Entries {
			out.Entries[at[j]] = e
		}
		out.FailedEntryCount += real.FailedEntryCount
	}
	return out, nil
}

// An event the bus refuses for good is logged and dropped, and does not
// hold up the change, the user or the other events.
func TestAnEventTheBusRefusesForGoodDoesNotBlock(t *testing.T) {
	f := newFixture(t)
	bus, _ := f.withBus(t)
	f.proj.Auditor = ebaudit.New(ebaudit.Config{Client: rejectingEventBridge{real: eventbridge.NewFromConfig(mototest.Config(t)), marker: `"userId":"alice"`},
		BusName: bus.Name, MaxAttempts: 2})
	f.member("alice", "p1", "read")
	f.member("bob", "p1", "read")
	f.bucket("p1", "lake", "")
	if resp := f.deliver(f.streamRecords()); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("a permanently refused event failed the batch: %v", seqs(resp))
	}
	evs := bus.Receive(t, 1)
	var d broker.PolicyChangedDetail
	if err := json.Unmarshal(evs[0].Detail, &d); err != nil || d.UserID != "bob" {
		t.Errorf("delivered %s", evs[0].Detail)
	}
	claim, err := f.store.Claim(context.Background(), "alice", time.Now())
	if err != nil || len(claim.Outbox) != 0 {
		t.Errorf("alice's outbox still holds %d events (%v)", len(claim.Outbox), err)
	}
}

// An item whose policies were edited by hand, version left alone, is
// rewritten by the next recompute: the endpoint sends the stored policies
// to STS, so the version alone cannot be trusted to mean "unchanged".
func TestAnItemEditedBehindTheVersionsBackIsRepaired(t *testing.T) {
	f := newFixture(t)
	tables := f.motoTables()
	f.member("alice", "p1", "read")
	f.bucket("p1", "lake", "")
	recs := f.streamRecords()
	f.deliver(recs)
	good := f.item("alice")

	out, err := tables.DDB.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(tables.Policy),
		Key: map[string]types.AttributeValue{"pk": s("USER#alice"), "sk": s("POLICY")}})
	if err != nil {
		t.Fatal(err)
	}
	doc := out.Item["doc"].(*types.AttributeValueMemberS).Value
	wide := strings.Replace(doc, `"Action\":\"s3:GetObject\"`, `"Action\":\"s3:*\"`, 1)
	if wide == doc {
		t.Fatalf("test setup: could not widen %s", doc)
	}
	out.Item["doc"] = s(wide)
	if _, err := tables.DDB.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(tables.Policy), Item: out.Item}); err != nil {
		t.Fatal(err)
	}
	if f.item("alice").SameContent(good) {
		t.Fatal("test setup: the tampered item reads back unchanged")
	}

	f.deliver(recs)
	if got := f.item("alice"); !got.SameContent(good) {
		t.Errorf("tampered policy survived a recompute: %s", got.Sets[0].Policy)
	}
}
