package ebaudit

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/testkit/auditschema"
)

func manyGrants(n int) []broker.Grant {
	gs := make([]broker.Grant, n)
	for i := range gs {
		gs[i] = broker.Grant{
			Bucket:   fmt.Sprintf("project-bucket-%05d", i),
			Prefix:   fmt.Sprintf("data/%05d/", i),
			Access:   broker.Write,
			Projects: []string{fmt.Sprintf("project-%05d", i)},
		}
	}
	return gs
}

func bigPolicyChanged(n int) broker.AuditEvent {
	return broker.AuditEvent{
		Source:     broker.SourceProjector,
		DetailType: broker.DetailPolicyChanged,
		Time:       time.Date(2025, 3, 14, 8, 0, 0, 0, time.UTC),
		Detail: broker.PolicyChangedDetail{
			SchemaVersion: broker.AuditSchemaVersion,
			ChangeID:      "u1#v0#v1", UserID: "u1", PolicyVersion: "v1", PreviousVersion: "v0",
			Added: manyGrants(n), Removed: manyGrants(n / 2), Sets: 3,
			Causes:    []string{"e1", "e2"},
			ChangedAt: time.Date(2025, 3, 14, 8, 0, 0, 0, time.UTC),
			// AddedCount/RemovedCount left zero: the trimmer must still give the full counts.
		},
	}
}

// emitOne sends ev through an emitter on an accepting fake and returns the
// single entry's detail and entry size.
func emitOne(t *testing.T, ev broker.AuditEvent) ([]byte, int) {
	t.Helper()
	fake := &faultyEventBridge{put: acceptAll}
	e := New(Config{Client: fake, BusName: "b", Logger: slog.New(slog.DiscardHandler)})
	if err := e.Emit(context.Background(), ev); err != nil {
		t.Fatalf("Emit() = %v", err)
	}
	if len(fake.calls) != 1 || len(fake.calls[0]) != 1 {
		t.Fatalf("want one call with one entry, got %d calls", len(fake.calls))
	}
	en := fake.calls[0][0]
	if size := entrySize(en); size > MaxRequestBytes {
		t.Fatalf("entry of %d bytes exceeds the %d limit", size, MaxRequestBytes)
	}
	return []byte(aws.ToString(en.Detail)), entrySize(en)
}

func TestOversizedPolicyChangedIsTrimmedAndStillValid(t *testing.T) {
	ev := bigPolicyChanged(4000)
	full, _ := MarshalDetail(ev.Detail)
	if len(full) <= MaxRequestBytes {
		t.Fatalf("test detail is only %d bytes; it must exceed the limit", len(full))
	}
	detail, size := emitOne(t, ev)

	if err := auditschema.Validate(broker.DetailPolicyChanged, detail); err != nil {
		t.Errorf("trimmed detail does not validate: %v", err)
	}
	var got broker.PolicyChangedDetail
	if err := json.Unmarshal(detail, &got); err != nil {
		t.Fatal(err)
	}
	orig := ev.Detail.(broker.PolicyChangedDetail)
	if !got.Truncated || got.AddedCount != 4000 || got.RemovedCount != 2000 {
		t.Errorf("truncated=%v addedCount=%d removedCount=%d, want true 4000 2000", got.Truncated, got.AddedCount, got.RemovedCount)
	}
	if len(got.Added) == 0 || len(got.Added) >= len(orig.Added) {
		t.Errorf("kept %d of %d added grants, want a non-empty strict prefix", len(got.Added), len(orig.Added))
	}
	if diff := cmp.Diff(orig.Added[:len(got.Added)], got.Added); diff != "" {
		t.Errorf("kept added grants are not the original's prefix (-want +got):\n%s", diff)
	}
	// Cut deliberately, not wastefully: one more item per list would not fit.
	grantBytes := len(mustJSON(t, orig.Added[0]))
	if MaxRequestBytes-size >= 3*(grantBytes+1) {
		t.Errorf("trimmed entry is %d bytes, leaving room for more grants of %d bytes", size, grantBytes)
	}
	want := orig
	want.Added, want.Removed, want.Causes = nil, nil, nil
	want.Truncated, want.AddedCount, want.RemovedCount = true, 4000, 2000
	got.Added, got.Removed, got.Causes = nil, nil, nil
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("scalars changed by trimming (-want +got):\n%s", diff)
	}
}

func TestOversizedDetailsAreTrimmedNotDropped(t *testing.T) {
	users := make([]string, 20000)
	for i := range users {
		users[i] = fmt.Sprintf("user-%036d", i)
	}
	places := make([]broker.Place, 5000)
	buckets := make([]string, 5000)
	for i, g := range manyGrants(5000) {
		places[i], buckets[i] = g.Place(), g.Bucket
	}
	tests := []struct {
		name  string
		event broker.AuditEvent
		check func(t *testing.T, detail map[string]any)
	}{
		{
			name: "a PolicyDrift with too many users keeps a prefix of them, marked truncated",
			event: broker.AuditEvent{Source: broker.SourceReplay, DetailType: broker.DetailPolicyDrift, Detail: broker.PolicyDriftDetail{
				SchemaVersion: "1", RunID: "r1", CheckedUsers: 20000, Different: 20000, Users: users, CheckedAt: time.Now(),
			}},
			check: func(t *testing.T, d map[string]any) {
				if d["truncated"] != true || d["different"] != float64(20000) || len(d["users"].([]any)) >= 20000 {
					t.Errorf("truncated=%v different=%v users=%d", d["truncated"], d["different"], len(d["users"].([]any)))
				}
			},
		},
		{
			name: "a CredentialsIssued with too many grants keeps a prefix, with a marker and the full counts",
			event: broker.AuditEvent{Source: broker.SourceCredentials, DetailType: broker.DetailCredentialsIssued, Detail: broker.CredentialsIssuedDetail{
				SchemaVersion: "1", RequestID: "req", UserID: "u1", PolicyVersion: "v1", AccessKeyIDs: []string{"ASIA1", "ASIA2"},
				Buckets: buckets, Grants: places, Expiration: time.Now(),
			}},
			check: func(t *testing.T, d map[string]any) {
				if d["truncated"] != true || d["grantCount"] != float64(5000) || d["bucketCount"] != float64(5000) ||
					len(d["grants"].([]any)) >= 5000 || len(d["accessKeyIds"].([]any)) != 2 {
					t.Errorf("truncated=%v grantCount=%v bucketCount=%v grants=%d accessKeyIds=%v",
						d["truncated"], d["grantCount"], d["bucketCount"], len(d["grants"].([]any)), d["accessKeyIds"])
				}
			},
		},
		{
			name: "an unknown detail is replaced by a stub that says what was lost",
			event: broker.AuditEvent{Source: "credbroker.other", DetailType: "SomethingElse", Detail: map[string]any{
				"schemaVersion": "7", "blob": strings.Repeat("x", 300*1024),
			}},
			check: func(t *testing.T, d map[string]any) {
				full, err := MarshalDetail(map[string]any{"schemaVersion": "7", "blob": strings.Repeat("x", 300*1024)})
				if err != nil {
					t.Fatal(err)
				}
				want := map[string]any{"schemaVersion": "7", "truncated": true, "originalBytes": float64(len(full)), "detailType": "SomethingElse"}
				if diff := cmp.Diff(want, d); diff != "" {
					t.Errorf("stub (-want +got):\n%s", diff)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			detail, _ := emitOne(t, tc.event)
			if knownDetail(tc.event.DetailType) {
				if err := auditschema.Validate(tc.event.DetailType, detail); err != nil {
					t.Errorf("trimmed detail does not validate: %v", err)
				}
			}
			var d map[string]any
			if err := json.Unmarshal(detail, &d); err != nil {
				t.Fatal(err)
			}
			tc.check(t, d)
		})
	}
}

func knownDetail(dt string) bool {
	switch dt {
	case broker.DetailCredentialsIssued, broker.DetailCredentialsDenied, broker.DetailPolicyChanged,
		broker.DetailProjectionRejected, broker.DetailPolicyDrift:
		return true
	}
	return false
}

func TestAKnownDetailWhoseScalarsAloneAreTooBigBecomesAStub(t *testing.T) {
	detail, _ := emitOne(t, broker.AuditEvent{
		Source: broker.SourceCredentials, DetailType: broker.DetailCredentialsDenied,
		Detail: broker.CredentialsDeniedDetail{RequestID: "r", Reason: "bad_request", UserAgent: strings.Repeat("a", 300*1024)},
	})
	var d map[string]any
	if err := json.Unmarshal(detail, &d); err != nil {
		t.Fatal(err)
	}
	if d["truncated"] != true || d["detailType"] != broker.DetailCredentialsDenied {
		t.Errorf("detail = %v, want a truncation stub", d)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
