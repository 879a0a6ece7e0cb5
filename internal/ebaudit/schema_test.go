package ebaudit

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/testkit/auditschema"
)

// detailTypes maps each detail type to its Go type.
var detailTypes = map[string]reflect.Type{
	broker.DetailCredentialsIssued:  reflect.TypeFor[broker.CredentialsIssuedDetail](),
	broker.DetailCredentialsDenied:  reflect.TypeFor[broker.CredentialsDeniedDetail](),
	broker.DetailPolicyChanged:      reflect.TypeFor[broker.PolicyChangedDetail](),
	broker.DetailProjectionRejected: reflect.TypeFor[broker.ProjectionRejectedDetail](),
	broker.DetailPolicyDrift:        reflect.TypeFor[broker.PolicyDriftDetail](),
	broker.DetailCredentialsRevoked: reflect.TypeFor[broker.CredentialsRevokedDetail](),
}

// contractFields are the detail fields docs/contract.md "Audit events" promises
// ("userId when known" of CredentialsDenied is optional, so not listed).
var contractFields = map[string][]string{
	broker.DetailCredentialsIssued:  {"userId", "policyVersion", "accessKeyIds", "buckets", "expiration", "requestId"},
	broker.DetailCredentialsDenied:  {"reason", "requestId"},
	broker.DetailPolicyChanged:      {"userId", "policyVersion", "added", "removed"},
	broker.DetailProjectionRejected: {"pk", "sk", "reason"},
	broker.DetailPolicyDrift:        {},
	broker.DetailCredentialsRevoked: {"userIds", "issuedBefore", "scope", "reason"},
}

// emitterFields are properties the emitter adds when it trims a detail.
var emitterFields = map[string][]string{
	broker.DetailCredentialsIssued:  {"truncated", "grantCount", "bucketCount"},
	broker.DetailCredentialsRevoked: {"truncated", "userCount"},
}

type schemaDoc struct {
	Required   []string                   `json:"required"`
	Properties map[string]json.RawMessage `json:"properties"`
}

func readSchema(t *testing.T, detailType string) schemaDoc {
	t.Helper()
	path, err := auditschema.Path(detailType)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc schemaDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return doc
}

func jsonFields(typ reflect.Type) []string {
	var out []string
	for f := range typ.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

func TestSchemasDescribeExactlyTheGoFields(t *testing.T) {
	for dt, typ := range detailTypes {
		t.Run(dt, func(t *testing.T) {
			doc := readSchema(t, dt)
			want := slices.Sorted(slices.Values(append(jsonFields(typ), emitterFields[dt]...)))
			if diff := cmp.Diff(want, slices.Sorted(maps.Keys(doc.Properties))); diff != "" {
				t.Errorf("schema properties differ from the json fields of %v (-go +schema):\n%s", typ, diff)
			}
			for _, f := range append(contractFields[dt], "schemaVersion") {
				if !slices.Contains(doc.Required, f) {
					t.Errorf("schema does not require %q", f)
				}
			}
			for _, f := range doc.Required {
				if _, ok := doc.Properties[f]; !ok {
					t.Errorf("schema requires %q but does not describe it", f)
				}
			}
		})
	}
}

// envelope is an EventBridge event as a rule target receives it.
type envelope struct {
	Version    *string         `json:"version"`
	ID         *string         `json:"id"`
	DetailType *string         `json:"detail-type"`
	Source     *string         `json:"source"`
	Account    *string         `json:"account"`
	Time       *time.Time      `json:"time"`
	Region     *string         `json:"region"`
	Resources  []string        `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
}

func TestSampleEventsValidate(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "events", "audit", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, path := range files {
		dt := strings.TrimSuffix(filepath.Base(path), ".json")
		seen = append(seen, dt)
		t.Run(dt, func(t *testing.T) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var ev envelope
			dec := json.NewDecoder(strings.NewReader(string(b)))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&ev); err != nil {
				t.Fatalf("not an EventBridge event: %v", err)
			}
			if ev.Version == nil || ev.ID == nil || ev.DetailType == nil || ev.Source == nil || ev.Account == nil ||
				ev.Time == nil || ev.Region == nil || ev.Resources == nil || ev.Detail == nil {
				t.Fatalf("envelope lacks a field: %s", b)
			}
			if *ev.DetailType != dt {
				t.Errorf("detail-type %q in file for %q", *ev.DetailType, dt)
			}
			if !strings.HasPrefix(*ev.Source, "credbroker.") {
				t.Errorf("source %q does not match the audit rule's prefix credbroker.", *ev.Source)
			}
			if err := auditschema.Validate(dt, ev.Detail); err != nil {
				t.Error(err)
			}
		})
	}
	if diff := cmp.Diff(slices.Sorted(maps.Keys(detailTypes)), seen); diff != "" {
		t.Errorf("events/audit samples (-want +got):\n%s", diff)
	}
}

// fullDetails holds one detail of each type with every field set.
func fullDetails() map[string]any {
	at := time.Date(2025, 3, 14, 9, 26, 53, 123456789, time.FixedZone("CET", 3600))
	grant := broker.Grant{Bucket: "genomics-raw", Prefix: "runs/2024/", Access: broker.Write, Projects: []string{"genomics"}}
	return map[string]any{
		broker.DetailCredentialsIssued: broker.CredentialsIssuedDetail{
			SchemaVersion: "1", RequestID: "req-1", UserID: "u-1", PolicyVersion: "v1",
			AccessKeyIDs: []string{"ASIAEXAMPLE"}, Buckets: []string{"genomics-raw"}, Grants: []broker.Place{grant.Place()},
			Project: "genomics", Expiration: at, FromCache: true, ClientID: "c", TokenID: "j", SourceIP: "203.0.113.7", UserAgent: "ua <&>",
		},
		broker.DetailCredentialsDenied: broker.CredentialsDeniedDetail{
			SchemaVersion: "1", RequestID: "req-2", Reason: "no_access", Status: 403, UserID: "u-1", Project: "p",
			Message: "not a member", SourceIP: "203.0.113.7", UserAgent: "ua",
		},
		broker.DetailPolicyChanged: broker.PolicyChangedDetail{
			SchemaVersion: "1", ChangeID: "u-1#v0#v1", UserID: "u-1", PolicyVersion: "v1", PreviousVersion: "v0",
			Added: []broker.Grant{grant}, Removed: []broker.Grant{{Bucket: "old-bucket", Access: broker.Read, Projects: []string{"p"}}},
			Sets: 1, Causes: []string{"evt-1"}, ChangedAt: at, AddedCount: 1, RemovedCount: 1,
		},
		broker.DetailProjectionRejected: broker.ProjectionRejectedDetail{
			SchemaVersion: "1", PK: "PROJECT#p", SK: "BUCKET#Bad_Name", Reason: "invalid bucket name",
			EventID: "e1", EventName: "INSERT", SequenceNumber: "100",
		},
		broker.DetailPolicyDrift: broker.PolicyDriftDetail{
			SchemaVersion: "1", RunID: "run-1", CheckedUsers: 10, Missing: 1, Extra: 1, Different: 1, MissingIndex: 1,
			Users: []string{"u-1"}, CheckedAt: at,
		},
	}
}

func TestMarshalledDetailsValidate(t *testing.T) {
	tests := []struct {
		name   string
		detail func() map[string]any
	}{
		{"details with every field set validate", fullDetails},
		{"details with only the required fields, nil lists and no schema version validate", func() map[string]any {
			return map[string]any{
				broker.DetailCredentialsIssued:  &broker.CredentialsIssuedDetail{RequestID: "r", UserID: "u", PolicyVersion: "v", AccessKeyIDs: []string{"ASIA"}},
				broker.DetailCredentialsDenied:  broker.CredentialsDeniedDetail{RequestID: "r", Reason: "invalid_token", Status: 401},
				broker.DetailPolicyChanged:      broker.PolicyChangedDetail{ChangeID: "c", UserID: "u"},
				broker.DetailProjectionRejected: broker.ProjectionRejectedDetail{PK: "USER#u", SK: "PROJECT#bad*", Reason: "invalid project id"},
				broker.DetailPolicyDrift:        &broker.PolicyDriftDetail{RunID: "r"},
			}
		}},
	}
	for _, tc := range tests {
		for dt, d := range tc.detail() {
			t.Run(tc.name+"/"+dt, func(t *testing.T) {
				b, err := MarshalDetail(d)
				if err != nil {
					t.Fatal(err)
				}
				if err := auditschema.Validate(dt, b); err != nil {
					t.Errorf("%v\n%s", err, b)
				}
			})
		}
	}
}

func TestInvalidDetailsFailValidation(t *testing.T) {
	// Every required field of every schema, removed in turn.
	for dt, d := range fullDetails() {
		b, err := MarshalDetail(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, field := range readSchema(t, dt).Required {
			t.Run(dt+" without "+field+" is invalid", func(t *testing.T) {
				var m map[string]any
				if err := json.Unmarshal(b, &m); err != nil {
					t.Fatal(err)
				}
				delete(m, field)
				if err := auditschema.Validate(dt, mustJSON(t, m)); err == nil {
					t.Errorf("detail without %q validates", field)
				}
			})
		}
	}

	tests := []struct {
		name       string
		detailType string
		change     func(m map[string]any)
	}{
		{"another schema version is invalid", broker.DetailPolicyChanged, func(m map[string]any) { m["schemaVersion"] = "2" }},
		{"an expiration that is not a date-time is invalid", broker.DetailCredentialsIssued, func(m map[string]any) { m["expiration"] = "tomorrow" }},
		{"an access level outside the contract is invalid", broker.DetailPolicyChanged, func(m map[string]any) {
			m["added"].([]any)[0].(map[string]any)["access"] = "admin"
		}},
		{"a prefix that is not a folder is invalid", broker.DetailPolicyChanged, func(m map[string]any) {
			m["added"].([]any)[0].(map[string]any)["prefix"] = "runs/2024"
		}},
		{"a null list is invalid", broker.DetailPolicyChanged, func(m map[string]any) { m["removed"] = nil }},
		{"a negative count is invalid", broker.DetailPolicyDrift, func(m map[string]any) { m["missing"] = -1 }},
		{"a truncated PolicyChanged without its counts is invalid", broker.DetailPolicyChanged, func(m map[string]any) {
			m["truncated"] = true
			delete(m, "addedCount")
		}},
		{"an empty user ID is invalid", broker.DetailCredentialsIssued, func(m map[string]any) { m["userId"] = "" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := MarshalDetail(fullDetails()[tc.detailType])
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			tc.change(m)
			if err := auditschema.Validate(tc.detailType, mustJSON(t, m)); err == nil {
				t.Errorf("invalid detail validates: %s", mustJSON(t, m))
			}
		})
	}
}

func TestValidatingAnUnknownDetailTypeFails(t *testing.T) {
	if err := auditschema.Validate("NoSuchDetail", []byte(`{}`)); err == nil {
		t.Error("ValidateDetail of an unknown detail type = nil, want an error")
	}
}
