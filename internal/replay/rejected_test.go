package replay_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/projector"
	"github.com/credbroker/credbroker/internal/replay"
	"github.com/credbroker/credbroker/internal/testkit/memstore"
)

// Records that break the rules are not drift (the policy table is right to
// ignore them), but verify and rebuild count them so that an operator
// learns they are there.
func TestVerifyAndRebuildCountTheRecordsThatBreakTheRules(t *testing.T) {
	invalid := []broker.SourceItem{
		{PK: "USER#alice", SK: "PROJECT#p1", Role: broker.StringAttr("admin")},
		{PK: "USER#alice", SK: "PROJECT#bad project"},
		{PK: "USER#x", SK: "PROJECT#p1"},
		{PK: "PROJECT#p1", SK: "BUCKET#Bad_Bucket"},
		{PK: "PROJECT#p1", SK: "BUCKET#raw", Prefix: broker.StringAttr("a*")},
		{PK: "PROJECT#p1", SK: "BUCKET#long", Prefix: broker.StringAttr(strings.Repeat("f", 1000))},
		{PK: "PROJECT#p1", SK: "BUCKET#nul", Prefix: broker.Attr{Present: true, Type: "NULL"}},
	}
	valid := []broker.SourceItem{
		{PK: "USER#alice", SK: "PROJECT#p1", Role: broker.StringAttr("write")},
		{PK: "USER#bob", SK: "PROJECT#p1"},
		{PK: "PROJECT#p1", SK: "BUCKET#lake"},
		{PK: "USER#alice", SK: "PROFILE"}, // another key shape: ignored, not rejected
	}
	tests := []struct {
		name  string
		items []broker.SourceItem
		want  int
	}{
		{"a table of valid records reports none", valid, 0},
		{"each invalid record counts once", append(append([]broker.SourceItem{}, valid...), invalid...), len(invalid)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := memstore.New()
			for _, it := range tc.items {
				store.PutSource(it)
			}
			quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
			proj := &projector.Projector{Source: store, Store: store, Index: store, Checkpoints: store, Logger: quiet,
				Auditor: broker.AuditorFunc(func(context.Context, ...broker.AuditEvent) error { return nil })}
			svc := &replay.Service{Memberships: store, Policies: store, Store: store, Projector: proj,
				Segments: 3, Concurrency: 2, RecheckAfter: -1, Logger: quiet}
			rep, err := svc.Rebuild(context.Background())
			if err != nil || rep.Rejected != tc.want {
				t.Errorf("rebuild: %d rejected (err %v), want %d", rep.Rejected, err, tc.want)
			}
			rep, err = svc.Verify(context.Background())
			if err != nil || rep.Rejected != tc.want || rep.Drift() != 0 {
				t.Errorf("verify: %d rejected, drift %d (err %v), want %d and no drift", rep.Rejected, rep.Drift(), err, tc.want)
			}
		})
	}
}
