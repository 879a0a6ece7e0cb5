//go:build integration

package replay_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/ebaudit"
	"github.com/credbroker/credbroker/internal/replay"
	"github.com/credbroker/credbroker/internal/testkit/auditschema"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
)

func TestVerifyPutsAPolicyDriftEventOnTheBusOnlyWhenItFindsDrift(t *testing.T) {
	f := newFixture(t)
	f.populate()
	bus := mototest.NewAuditBus(t)
	f.svc.Auditor = ebaudit.New(ebaudit.Config{Client: eventbridge.NewFromConfig(mototest.Config(t)), BusName: bus.Name})
	ctx := context.Background()

	if _, err := f.svc.Verify(ctx); err != nil {
		t.Fatalf("verify of a healthy table: %v", err)
	}
	if got := bus.ReceiveAll(t); len(got) != 0 {
		t.Fatalf("a verify without drift put %d events on the bus", len(got))
	}

	f.delIn(f.tables.Policy, "USER#carol", "POLICY")
	rep, err := f.svc.Verify(ctx)
	var drift *replay.DriftError
	if !errors.As(err, &drift) {
		t.Fatalf("verify: %v, want drift", err)
	}
	evs := bus.Receive(t, 1)
	ev := evs[0]
	if ev.DetailType != broker.DetailPolicyDrift || ev.Source != broker.SourceReplay {
		t.Fatalf("event %s from %s", ev.DetailType, ev.Source)
	}
	if err := auditschema.Validate(ev.DetailType, ev.Detail); err != nil {
		t.Errorf("detail breaks its schema: %v\n%s", err, ev.Detail)
	}
	var d broker.PolicyDriftDetail
	if err := json.Unmarshal(ev.Detail, &d); err != nil {
		t.Fatal(err)
	}
	want := broker.PolicyDriftDetail{SchemaVersion: "1", RunID: rep.RunID, CheckedUsers: 5, Missing: 1, Users: []string{"carol"}}
	if diff := cmp.Diff(want, d, cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "CheckedAt" }, cmp.Ignore())); diff != "" {
		t.Errorf("detail (-want +got):\n%s", diff)
	}
	if d.CheckedAt.IsZero() {
		t.Error("checkedAt is not set")
	}
	if more := bus.ReceiveAll(t); len(more) != 0 {
		t.Errorf("%d more events on the bus", len(more))
	}
}
