//go:build integration

package ebaudit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/ebaudit"
	"github.com/credbroker/credbroker/internal/testkit/auditschema"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
)

func TestEmitDeliversEveryDetailTypeThroughMoto(t *testing.T) {
	bus := mototest.NewAuditBus(t)
	e := ebaudit.New(ebaudit.Config{Client: eventbridge.NewFromConfig(mototest.Config(t)), BusName: bus.Name})
	at := time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)
	grant := broker.Grant{Bucket: "genomics-raw", Prefix: "runs/", Access: broker.Write, Projects: []string{"genomics"}}
	events := []broker.AuditEvent{
		{Source: broker.SourceCredentials, DetailType: broker.DetailCredentialsIssued, Time: at, Detail: broker.CredentialsIssuedDetail{
			SchemaVersion: "1", RequestID: "req-1", UserID: "u-1", PolicyVersion: "v1", AccessKeyIDs: []string{"ASIA1"},
			Buckets: []string{"genomics-raw"}, Grants: []broker.Place{grant.Place()}, Expiration: at.Add(time.Hour), UserAgent: "curl <&>",
		}},
		{Source: broker.SourceCredentials, DetailType: broker.DetailCredentialsDenied, Time: at, Detail: broker.CredentialsDeniedDetail{
			SchemaVersion: "1", RequestID: "req-2", Reason: "no_access", Status: 403, UserID: "u-1", Project: "climate",
		}},
		{Source: broker.SourceProjector, DetailType: broker.DetailPolicyChanged, Time: at, Detail: broker.PolicyChangedDetail{
			SchemaVersion: "1", ChangeID: "u-1#v0#v1", UserID: "u-1", PolicyVersion: "v1", PreviousVersion: "v0",
			Added: []broker.Grant{grant}, Sets: 1, Causes: []string{"e1"}, ChangedAt: at, AddedCount: 1,
		}},
		{Source: broker.SourceProjector, DetailType: broker.DetailProjectionRejected, Time: at, Detail: broker.ProjectionRejectedDetail{
			SchemaVersion: "1", PK: "PROJECT#p", SK: "BUCKET#Bad_Name", Reason: "invalid bucket name", EventName: "INSERT",
		}},
		{Source: broker.SourceReplay, DetailType: broker.DetailPolicyDrift, Time: at, Detail: broker.PolicyDriftDetail{
			SchemaVersion: "1", RunID: "run-1", CheckedUsers: 3, Different: 1, Users: []string{"u-1"}, CheckedAt: at,
		}},
	}
	if err := e.Emit(context.Background(), events...); err != nil {
		t.Fatalf("Emit() = %v", err)
	}

	type event struct {
		DetailType, Source string
		Time               time.Time
		Detail             any
	}
	var want []event
	for _, ev := range events {
		b, err := ebaudit.MarshalDetail(ev.Detail)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, event{ev.DetailType, ev.Source, ev.Time, decode(t, b)})
	}
	var got []event
	for _, ev := range bus.Receive(t, len(events)) {
		if err := auditschema.Validate(ev.DetailType, ev.Detail); err != nil {
			t.Errorf("delivered detail: %v", err)
		}
		if ev.ID == "" {
			t.Errorf("%s event without an id", ev.DetailType)
		}
		got = append(got, event{ev.DetailType, ev.Source, ev.Time, decode(t, ev.Detail)})
	}
	byType := func(a, b event) int { return strings.Compare(a.DetailType, b.DetailType) }
	slices.SortFunc(want, byType)
	slices.SortFunc(got, byType)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events delivered to the queue (-want +got):\n%s", diff)
	}
	if extra := bus.ReceiveAll(t); len(extra) != 0 {
		t.Errorf("%d events delivered beyond the %d emitted: %+v", len(extra), len(events), extra)
	}
}

func TestEmitDeliversABatchedAndATrimmedEventThroughMoto(t *testing.T) {
	bus := mototest.NewAuditBus(t)
	e := ebaudit.New(ebaudit.Config{Client: eventbridge.NewFromConfig(mototest.Config(t)), BusName: bus.Name})
	var events []broker.AuditEvent
	for i := range 24 {
		events = append(events, broker.AuditEvent{Source: broker.SourceProjector, DetailType: broker.DetailProjectionRejected,
			Detail: broker.ProjectionRejectedDetail{PK: fmt.Sprintf("PROJECT#p%d", i), SK: "BUCKET#X", Reason: "invalid bucket name"}})
	}
	added := make([]broker.Grant, 5000)
	for i := range added {
		added[i] = broker.Grant{Bucket: fmt.Sprintf("bucket-%05d", i), Prefix: fmt.Sprintf("p/%05d/", i), Access: broker.Read, Projects: []string{"p"}}
	}
	events = append(events, broker.AuditEvent{Source: broker.SourceProjector, DetailType: broker.DetailPolicyChanged,
		Detail: broker.PolicyChangedDetail{ChangeID: "u#a#b", UserID: "u", PolicyVersion: "b", Added: added}})
	if err := e.Emit(context.Background(), events...); err != nil {
		t.Fatalf("Emit() = %v", err)
	}

	counts := map[string]int{}
	for _, ev := range bus.Receive(t, len(events)) {
		var d struct {
			PK        string `json:"pk"`
			Truncated bool   `json:"truncated"`
			Added     []any  `json:"added"`
			Count     int    `json:"addedCount"`
		}
		if err := json.Unmarshal(ev.Detail, &d); err != nil {
			t.Fatal(err)
		}
		if ev.DetailType == broker.DetailPolicyChanged {
			if !d.Truncated || d.Count != 5000 || len(d.Added) == 0 || len(d.Added) >= 5000 {
				t.Errorf("PolicyChanged delivered with truncated=%v addedCount=%d and %d grants", d.Truncated, d.Count, len(d.Added))
			}
			if err := auditschema.Validate(ev.DetailType, ev.Detail); err != nil {
				t.Error(err)
			}
		}
		counts[ev.DetailType+" "+d.PK]++
	}
	want := map[string]int{broker.DetailPolicyChanged + " ": 1}
	for i := range 24 {
		want[fmt.Sprintf("%s PROJECT#p%d", broker.DetailProjectionRejected, i)] = 1
	}
	if diff := cmp.Diff(want, counts); diff != "" {
		t.Errorf("deliveries per event (-want +got):\n%s", diff)
	}
	if extra := bus.ReceiveAll(t); len(extra) != 0 {
		t.Errorf("%d events delivered beyond the %d emitted", len(extra), len(events))
	}
}

func decode(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return v
}
