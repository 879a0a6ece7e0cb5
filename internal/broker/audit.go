package broker

import (
	"context"
	"errors"
	"time"
)

// Detail types of the audit events on the bus (docs/contract.md "Audit events").
const (
	DetailCredentialsIssued  = "CredentialsIssued"
	DetailCredentialsDenied  = "CredentialsDenied"
	DetailPolicyChanged      = "PolicyChanged"
	DetailProjectionRejected = "ProjectionRejected"
	DetailPolicyDrift        = "PolicyDrift"
	DetailCredentialsRevoked = "CredentialsRevoked"
)

// AuditSchemaVersion is carried by every detail; events/schemas holds the
// JSON Schema of each detail type at this version.
const AuditSchemaVersion = "1"

// Event sources on the bus, one per function.
const (
	SourceCredentials = "credbroker.credentials"
	SourceProjector   = "credbroker.projector"
	SourceReplay      = "credbroker.replay"
	SourceRevoker     = "credbroker.revoker"
)

// AuditEvent is one event for the audit bus. Detail is one of the *Detail
// structs below and is sent as JSON.
type AuditEvent struct {
	Source     string
	DetailType string
	Time       time.Time
	Detail     any
}

// Auditor delivers audit events. Emit returns nil only when every event was
// accepted by the bus; on error the caller decides whether to retry or
// withhold what the event records.
type Auditor interface {
	Emit(ctx context.Context, events ...AuditEvent) error
}

// ErrEventRejected is in the chain of an Emit error when the bus refused
// some event for good (malformed, invalid): sending it again cannot succeed.
var ErrEventRejected = errors.New("audit event rejected by the bus")

// AuditorFunc adapts a function to Auditor (tests and the null auditor).
type AuditorFunc func(ctx context.Context, events ...AuditEvent) error

func (f AuditorFunc) Emit(ctx context.Context, events ...AuditEvent) error { return f(ctx, events...) }

// CredentialsIssuedDetail records one successful credential request.
type CredentialsIssuedDetail struct {
	SchemaVersion string    `json:"schemaVersion"`
	RequestID     string    `json:"requestId"`
	UserID        string    `json:"userId"`
	PolicyVersion string    `json:"policyVersion"`
	AccessKeyIDs  []string  `json:"accessKeyIds"`
	Buckets       []string  `json:"buckets"`
	Grants        []Place   `json:"grants"`
	Project       string    `json:"project,omitempty"`
	Expiration    time.Time `json:"expiration"`
	FromCache     bool      `json:"fromCache"`
	ClientID      string    `json:"clientId,omitempty"`
	TokenID       string    `json:"tokenId,omitempty"`
	SourceIP      string    `json:"sourceIp,omitempty"`
	UserAgent     string    `json:"userAgent,omitempty"`
}

// CredentialsDeniedDetail records one refused credential request.
type CredentialsDeniedDetail struct {
	SchemaVersion string `json:"schemaVersion"`
	RequestID     string `json:"requestId"`
	Reason        string `json:"reason"`
	Status        int    `json:"status"`
	UserID        string `json:"userId,omitempty"`
	Project       string `json:"project,omitempty"`
	Message       string `json:"message,omitempty"`
	SourceIP      string `json:"sourceIp,omitempty"`
	UserAgent     string `json:"userAgent,omitempty"`
}

// PolicyChangedDetail records one committed change of a user's policy item.
// ChangeID (user, previous version, new version) is the idempotency key: the
// projector delivers at least once.
type PolicyChangedDetail struct {
	SchemaVersion   string    `json:"schemaVersion"`
	ChangeID        string    `json:"changeId"`
	UserID          string    `json:"userId"`
	PolicyVersion   string    `json:"policyVersion"`
	PreviousVersion string    `json:"previousVersion"`
	Added           []Grant   `json:"added"`
	Removed         []Grant   `json:"removed"`
	Sets            int       `json:"sets"`
	Causes          []string  `json:"causes"`
	ChangedAt       time.Time `json:"changedAt"`
	// Truncated is set when the detail was cut to fit the bus's entry size;
	// the counts still describe the whole change.
	Truncated    bool `json:"truncated,omitempty"`
	AddedCount   int  `json:"addedCount"`
	RemovedCount int  `json:"removedCount"`
	// PreviousUnreadable is set when the item before the change could not
	// be read (corrupt document or bookkeeping): Removed cannot list what it
	// granted, so consumers must treat the change as narrowing.
	PreviousUnreadable bool `json:"previousUnreadable,omitempty"`
	// RevokeBefore is set on a change that narrows: the user's new cutoff
	// (broker.RevokeBefore of the time the write started, or just after the
	// previous cutoff). Every session the change revokes was issued before
	// it; those minted from the new item carry its tag.
	RevokeBefore *time.Time `json:"revokeBefore,omitempty"`
	// RevokedCutoffTags, on a change that narrows an item that could be
	// read, are the broker.CutoffTagKey tags of the sessions it revokes:
	// the tag of the cutoff the item had (and, should the outbox have
	// dropped earlier narrowings, theirs). Absent on a narrowing whose
	// previous cutoff is unknown: then every session of the user issued
	// before RevokeBefore is revoked but those tagged with its own tag.
	RevokedCutoffTags []string `json:"revokedCutoffTags,omitempty"`
	// PreviousRevokeBefore is the earliest cutoff whose tag
	// RevokedCutoffTags lists, absent when that is none (a user never
	// revoked): sessions minted under still earlier cutoffs were issued
	// before it.
	PreviousRevokeBefore *time.Time `json:"previousRevokeBefore,omitempty"`
}

// Narrows reports whether the change may have taken something away.
func (d PolicyChangedDetail) Narrows() bool {
	return d.RemovedCount > 0 || len(d.Removed) > 0 || d.PreviousUnreadable
}

// ProjectionRejectedDetail records a source record that grants nothing
// because it breaks the schema.
type ProjectionRejectedDetail struct {
	SchemaVersion  string `json:"schemaVersion"`
	PK             string `json:"pk"`
	SK             string `json:"sk"`
	Reason         string `json:"reason"`
	EventID        string `json:"eventId,omitempty"`
	EventName      string `json:"eventName,omitempty"`
	SequenceNumber string `json:"sequenceNumber,omitempty"`
}

// PolicyDriftDetail records what a verify run found different between the
// policy table and a recomputation from the membership table.
type PolicyDriftDetail struct {
	SchemaVersion string    `json:"schemaVersion"`
	RunID         string    `json:"runId"`
	CheckedUsers  int       `json:"checkedUsers"`
	Missing       int       `json:"missing"`
	Extra         int       `json:"extra"`
	Different     int       `json:"different"`
	MissingIndex  int       `json:"missingIndex"`
	ExtraIndex    int       `json:"extraIndex"`
	Users         []string  `json:"users"`
	Truncated     bool      `json:"truncated,omitempty"`
	CheckedAt     time.Time `json:"checkedAt"`
}

// Scopes of a revocation.
const (
	ScopeUser = "user" // the sessions of the users listed
	ScopeAll  = "all"  // every session: the deny list did not fit
	// ScopeResource: every session, but only on the resources listed (the
	// buckets and folders a change removed): the deny list did not fit.
	ScopeResource = "resource"
)

// Reasons of a revocation.
const (
	ReasonNarrowed = "narrowed" // the users' grants narrowed
	ReasonOperator = "operator" // an operator revoked the users
)

// CredentialsRevokedDetail records one revocation applied to the base role:
// sessions issued before IssuedBefore stop working, for the users listed
// (scope "user") or for everyone (scope "all").
type CredentialsRevokedDetail struct {
	SchemaVersion string    `json:"schemaVersion"`
	UserIDs       []string  `json:"userIds"`
	IssuedBefore  time.Time `json:"issuedBefore"`
	Scope         string    `json:"scope"`
	Reason        string    `json:"reason"`
	// Causes are the changeIds of the PolicyChanged events, or the
	// operator's request id, that asked for it.
	Causes []string `json:"causes"`
	// DenyListUsers is how many users the deny list holds afterwards.
	DenyListUsers int `json:"denyListUsers"`
	// DenyListVersion is the version of the deny list the role now carries.
	DenyListVersion int64 `json:"denyListVersion"`
	// Resources, for scope resource, are the S3 resources (ARN patterns)
	// denied to every session issued before IssuedBefore.
	Resources []string `json:"resources,omitempty"`
}
