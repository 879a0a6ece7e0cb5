package credentials

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
)

// AuditMode says whether an answer that minted credentials waits for the
// bus to accept its CredentialsIssued event.
type AuditMode int

const (
	// FailClosed answers 503 and hands out nothing when the issuance could
	// not be audited. It is the default because the audit trail is a
	// product promise to the security team, as with Vault's audit devices:
	// credentials nobody can account for must not exist outside the
	// function. STS's own trail (CloudTrail's AssumeRole record with the
	// user's SourceIdentity) remains as a second record either way.
	FailClosed AuditMode = iota
	// BestEffort answers without waiting: the event goes to the Background
	// queue, which sends it after the answer (docs/contract.md "Delivery"
	// says when such an event can be lost).
	BestEffort
)

func (m AuditMode) String() string {
	if m == BestEffort {
		return "best-effort"
	}
	return "fail-closed"
}

// ParseAuditMode reads "fail-closed" or "best-effort".
func ParseAuditMode(s string) (AuditMode, error) {
	switch s {
	case "fail-closed":
		return FailClosed, nil
	case "best-effort":
		return BestEffort, nil
	}
	return 0, broker.Errorf(broker.Invalid, "audit mode", "audit mode %q is not fail-closed or best-effort", s)
}

// recordIssuance audits the sets this answer minted, in one event. Sets
// that came from the cache were audited when they were minted; an answer
// made only of those sends nothing (its log line names their key ids).
func (s *Service) recordIssuance(ctx context.Context, log *slog.Logger, p broker.Principal, rq requestMeta,
	k answerKey, grants []broker.Grant, sets []broker.PolicySet, issued []issuedSet) error {
	d := broker.CredentialsIssuedDetail{
		SchemaVersion: broker.AuditSchemaVersion,
		RequestID:     rq.id,
		UserID:        p.UserID,
		PolicyVersion: k.version,
		Project:       k.project,
		ClientID:      p.ClientID,
		TokenID:       p.TokenID,
		SourceIP:      rq.sourceIP,
		UserAgent:     rq.userAgent,
		Grants:        []broker.Place{},
	}
	var earliest time.Time
	for i, is := range issued {
		if !is.minted {
			continue
		}
		d.AccessKeyIDs = append(d.AccessKeyIDs, is.creds.AccessKeyID)
		for _, gi := range sets[i].Grants {
			d.Grants = append(d.Grants, grants[gi].Place())
			d.Buckets = append(d.Buckets, grants[gi].Bucket)
		}
		if earliest.IsZero() || is.creds.Expiration.Before(earliest) {
			earliest = is.creds.Expiration
		}
	}
	if len(d.AccessKeyIDs) == 0 {
		return nil
	}
	slices.Sort(d.Buckets)
	d.Buckets = slices.Compact(d.Buckets)
	// The answer's RFC 3339 has whole seconds; the audit record says the same.
	d.Expiration = earliest.UTC().Truncate(time.Second)

	if s.AuditMode == BestEffort {
		s.background(ctx, broker.DetailCredentialsIssued, d)
		return nil
	}
	if err := s.emit(ctx, broker.DetailCredentialsIssued, d); err != nil {
		log.ErrorContext(ctx, "credentials withheld: CredentialsIssued not accepted by the audit bus",
			"userId", p.UserID, "accessKeyIds", d.AccessKeyIDs, "err", err)
		return &broker.Error{Kind: broker.Transient, Op: "audit issuance", Message: "audit trail unavailable", Err: err}
	}
	return nil
}

// emit sends one audit event and waits for the bus, on a deadline of its
// own derived from the invocation's context rather than the request's, so
// a slow dependency does not also starve the audit record.
func (s *Service) emit(ctx context.Context, detailType string, detail any) error {
	actx, cancel := context.WithTimeout(ctx, s.auditTimeout())
	defer cancel()
	return s.Auditor.Emit(actx, s.event(detailType, detail))
}

func (s *Service) auditTimeout() time.Duration { return cmp.Or(s.AuditTimeout, DefaultAuditTimeout) }

// background hands an event to the Background queue, or, without one,
// sends it before answering; either way a failure is only logged.
func (s *Service) background(ctx context.Context, detailType string, detail any) {
	var err error
	if s.Background != nil {
		err = s.Background.Emit(ctx, s.event(detailType, detail))
	} else {
		err = s.emit(ctx, detailType, detail)
	}
	if err != nil {
		s.logger().WarnContext(ctx, "audit event not accepted", "detailType", detailType, "err", err)
	}
}

func (s *Service) event(detailType string, detail any) broker.AuditEvent {
	return broker.AuditEvent{Source: broker.SourceCredentials, DetailType: detailType, Time: s.now(), Detail: detail}
}

// deny records a refused request; like every denial event it is best
// effort in both audit modes, and no answer waits for it when a Background
// queue is set.
func (s *Service) deny(ctx context.Context, rq requestMeta, o *outcome) {
	status, code := statusOf(o.err)
	s.background(ctx, broker.DetailCredentialsDenied, broker.CredentialsDeniedDetail{
		SchemaVersion: broker.AuditSchemaVersion,
		RequestID:     rq.id,
		Reason:        code,
		Status:        status,
		UserID:        o.userID,
		Project:       o.project,
		Message:       safeMessage(o.err),
		SourceIP:      rq.sourceIP,
		UserAgent:     rq.userAgent,
	})
}
