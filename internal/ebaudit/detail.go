package ebaudit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/credbroker/credbroker/internal/broker"
)

// entry turns one audit event into a PutEvents entry within the size limit.
func (e *Emitter) entry(ctx context.Context, i int, ev broker.AuditEvent) (entry, error) {
	if ev.Source == "" || ev.DetailType == "" {
		return entry{}, broker.Errorf(broker.Internal, op, "audit event %d has no source or detail type", i)
	}
	detail, err := MarshalDetail(ev.Detail)
	if err != nil {
		return entry{}, broker.Wrap(broker.Internal, op, fmt.Errorf("audit event %d (%s): %w", i, ev.DetailType, err))
	}
	t := ev.Time
	if t.IsZero() {
		t = e.cfg.Now()
	}
	req := types.PutEventsRequestEntry{
		EventBusName: aws.String(e.cfg.BusName),
		Source:       aws.String(ev.Source),
		DetailType:   aws.String(ev.DetailType),
		Time:         aws.Time(t),
		Detail:       aws.String(string(detail)),
	}
	size := entrySize(req)
	if size > MaxRequestBytes {
		budget := MaxRequestBytes - (size - len(detail))
		trimmed, how, err := trim(ev, detail, budget)
		if err != nil {
			return entry{}, broker.Wrap(broker.Internal, op, fmt.Errorf("audit event %d (%s) of %d bytes: %w", i, ev.DetailType, size, err))
		}
		e.cfg.Logger.WarnContext(ctx, "audit detail trimmed to fit the bus entry limit",
			"detailType", ev.DetailType, "source", ev.Source, "how", how,
			"originalBytes", len(detail), "trimmedBytes", len(trimmed), "limit", MaxRequestBytes)
		req.Detail = aws.String(string(trimmed))
		size = entrySize(req)
	}
	return entry{req: req, size: size, index: i}, nil
}

// MarshalDetail returns the JSON that Emit sends as an event's detail
// (before any trimming): HTML characters unescaped, lists never null, and
// schemaVersion filled in when a known detail left it empty. Producers' tests
// can pass the result to auditschema.Validate.
func MarshalDetail(detail any) ([]byte, error) {
	v, err := normalize(detail)
	if err != nil {
		return nil, err
	}
	b, err := marshal(v)
	if err != nil {
		return nil, err
	}
	if len(b) == 0 || b[0] != '{' {
		return nil, fmt.Errorf("detail %T is not a JSON object", detail)
	}
	return b, nil
}

func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// normalize returns a copy of a known detail with empty lists instead of nil
// ones (a schema consumer should not have to accept null for a list) and the
// current schema version when none was set; pointers to known details are
// dereferenced. Other values pass through.
func normalize(detail any) (any, error) {
	switch d := detail.(type) {
	case nil:
		return nil, fmt.Errorf("detail is nil")
	case *broker.CredentialsIssuedDetail:
		if d == nil {
			return nil, fmt.Errorf("detail is a nil %T", d)
		}
		return normalize(*d)
	case *broker.CredentialsDeniedDetail:
		if d == nil {
			return nil, fmt.Errorf("detail is a nil %T", d)
		}
		return normalize(*d)
	case *broker.PolicyChangedDetail:
		if d == nil {
			return nil, fmt.Errorf("detail is a nil %T", d)
		}
		return normalize(*d)
	case *broker.ProjectionRejectedDetail:
		if d == nil {
			return nil, fmt.Errorf("detail is a nil %T", d)
		}
		return normalize(*d)
	case *broker.PolicyDriftDetail:
		if d == nil {
			return nil, fmt.Errorf("detail is a nil %T", d)
		}
		return normalize(*d)
	case *broker.CredentialsRevokedDetail:
		if d == nil {
			return nil, fmt.Errorf("detail is a nil %T", d)
		}
		return normalize(*d)
	case broker.CredentialsIssuedDetail:
		d.SchemaVersion = version(d.SchemaVersion)
		d.AccessKeyIDs = list(d.AccessKeyIDs)
		d.Buckets = list(d.Buckets)
		d.Grants = list(d.Grants)
		return d, nil
	case broker.CredentialsDeniedDetail:
		d.SchemaVersion = version(d.SchemaVersion)
		return d, nil
	case broker.PolicyChangedDetail:
		d.SchemaVersion = version(d.SchemaVersion)
		d.Added = grants(d.Added)
		d.Removed = grants(d.Removed)
		d.Causes = list(d.Causes)
		return d, nil
	case broker.ProjectionRejectedDetail:
		d.SchemaVersion = version(d.SchemaVersion)
		return d, nil
	case broker.PolicyDriftDetail:
		d.SchemaVersion = version(d.SchemaVersion)
		d.Users = list(d.Users)
		return d, nil
	case broker.CredentialsRevokedDetail:
		d.SchemaVersion = version(d.SchemaVersion)
		d.UserIDs = list(d.UserIDs)
		d.Causes = list(d.Causes)
		return d, nil
	}
	return detail, nil
}

func version(v string) string {
	if v == "" {
		return broker.AuditSchemaVersion
	}
	return v
}

func list[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func grants(gs []broker.Grant) []broker.Grant {
	out := make([]broker.Grant, len(gs))
	for i, g := range gs {
		g.Projects = list(g.Projects)
		out[i] = g
	}
	return out
}

// truncatedCredentialsIssued marks a CredentialsIssued detail whose grants
// and buckets were cut; the counts give the full lengths. The schema declares
// these fields as optional.
type truncatedCredentialsIssued struct {
	broker.CredentialsIssuedDetail
	Truncated   bool `json:"truncated"`
	GrantCount  int  `json:"grantCount"`
	BucketCount int  `json:"bucketCount"`
}

// truncatedRevocation marks a CredentialsRevoked detail whose lists were
// cut; userCount is the full number of users.
type truncatedRevocation struct {
	broker.CredentialsRevokedDetail
	Truncated bool `json:"truncated"`
	UserCount int  `json:"userCount"`
}

// truncatedStub replaces a detail that cannot be cut to size field by field.
type truncatedStub struct {
	SchemaVersion string `json:"schemaVersion"`
	Truncated     bool   `json:"truncated"`
	OriginalBytes int    `json:"originalBytes"`
	DetailType    string `json:"detailType"`
}

// trim returns a detail of at most budget bytes for ev. Known details keep
// every scalar and the longest prefix of their lists that fits, marked
// truncated with the full counts; anything else, or a known detail whose
// scalars alone are too big, becomes a stub that says what was lost.
func trim(ev broker.AuditEvent, detail []byte, budget int) ([]byte, string, error) {
	d, err := normalize(ev.Detail)
	if err != nil {
		return nil, "", err
	}
	var build func(n int) any
	longest := 0
	switch d := d.(type) {
	case broker.PolicyChangedDetail:
		longest = max(len(d.Added), len(d.Removed), len(d.Causes))
		build = func(n int) any {
			c := d
			c.AddedCount = max(d.AddedCount, len(d.Added))
			c.RemovedCount = max(d.RemovedCount, len(d.Removed))
			c.Added, c.Removed, c.Causes = head(d.Added, n), head(d.Removed, n), head(d.Causes, n)
			c.Truncated = true
			return c
		}
	case broker.PolicyDriftDetail:
		longest = len(d.Users)
		build = func(n int) any {
			c := d
			c.Users = head(d.Users, n)
			c.Truncated = true
			return c
		}
	case broker.CredentialsRevokedDetail:
		// Thousands of users revoked at once: keep the first ones, mark it.
		longest = max(len(d.UserIDs), len(d.Causes))
		build = func(n int) any {
			c := truncatedRevocation{CredentialsRevokedDetail: d, Truncated: true, UserCount: len(d.UserIDs)}
			c.UserIDs, c.Causes = head(d.UserIDs, n), head(d.Causes, n)
			return c
		}
	case broker.CredentialsIssuedDetail:
		longest = max(len(d.Grants), len(d.Buckets))
		build = func(n int) any {
			c := truncatedCredentialsIssued{CredentialsIssuedDetail: d, Truncated: true,
				GrantCount: len(d.Grants), BucketCount: len(d.Buckets)}
			c.Grants, c.Buckets = head(d.Grants, n), head(d.Buckets, n)
			return c
		}
	}
	if build != nil {
		b, n, err := fit(longest, build, budget)
		if err != nil {
			return nil, "", err
		}
		if b != nil {
			return b, fmt.Sprintf("lists cut to %d of %d items", n, longest), nil
		}
	}
	stub := truncatedStub{SchemaVersion: stubVersion(detail), Truncated: true,
		OriginalBytes: len(detail), DetailType: ev.DetailType}
	b, err := marshal(stub)
	if err != nil {
		return nil, "", err
	}
	if len(b) > budget {
		return nil, "", fmt.Errorf("even a truncation stub of %d bytes exceeds the %d bytes left", len(b), budget)
	}
	return b, "replaced by a truncation stub", nil
}

// fit finds the largest n in [0, longest] for which build(n) marshals within
// budget, by binary search (the size grows with n). It returns nil when not
// even n = 0 fits.
func fit(longest int, build func(int) any, budget int) ([]byte, int, error) {
	var firstErr error
	size := func(n int) []byte {
		b, err := marshal(build(n))
		if err != nil {
			firstErr = err
			return nil
		}
		return b
	}
	best := size(0)
	if firstErr != nil || len(best) > budget {
		return nil, 0, firstErr
	}
	n := sort.Search(longest, func(k int) bool {
		b := size(k + 1)
		return b == nil || len(b) > budget
	})
	if firstErr != nil {
		return nil, 0, firstErr
	}
	if n > 0 {
		best = size(n)
	}
	return best, n, nil
}

func head[T any](s []T, n int) []T { return s[:min(n, len(s))] }

// stubVersion keeps the schemaVersion of a detail that has one.
func stubVersion(detail []byte) string {
	var v struct {
		SchemaVersion string `json:"schemaVersion"`
	}
	if json.Unmarshal(detail, &v) == nil && v.SchemaVersion != "" {
		return v.SchemaVersion
	}
	return broker.AuditSchemaVersion
}
