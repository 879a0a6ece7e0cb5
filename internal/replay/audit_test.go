package replay_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/replay"
	"github.com/credbroker/credbroker/internal/testkit/auditschema"
)

// On moto the event goes through ebaudit to an EventBridge bus and is read
// back from the SQS queue a rule feeds; in memory it is read back as
// ebaudit would put it on the bus.
func TestVerifyPutsAPolicyDriftEventOnTheBusOnlyWhenItFindsDrift(t *testing.T) {
	f := newFixture(t)
	f.populate()
	var receive func(want int) []sentEvent
	f.svc.Auditor, receive = f.tables.AuditBus(t)
	ctx := context.Background()

	if _, err := f.svc.Verify(ctx); err != nil {
		t.Fatalf("verify of a healthy table: %v", err)
	}
	if got := receive(0); len(got) != 0 {
		t.Fatalf("a verify without drift put %d events on the bus", len(got))
	}

	f.policy.DeleteItem(t, "carol")
	rep, err := f.svc.Verify(ctx)
	var drift *replay.DriftError
	if !errors.As(err, &drift) {
		t.Fatalf("verify: %v, want drift", err)
	}
	evs := receive(1)
	if len(evs) != 1 {
		t.Fatalf("%d events on the bus, want 1", len(evs))
	}
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
}
