package broker

import (
	"context"
	"errors"
	"time"
)

// PolicyReader is what the credential endpoint reads: the user's policy item,
// in one strongly consistent read. It returns a NotFound error when the user
// has no item.
type PolicyReader interface {
	GetPolicy(ctx context.Context, userID string) (UserPolicy, error)
}

// Claim is the right to replace one user's policy item, with what the item
// held when the claim was taken.
//
// Every recompute takes a claim before it reads the membership table, and a
// write under a claim succeeds only while no newer claim exists. A recompute
// that read older state therefore can never overwrite one that read newer
// state: the newer one claimed later, which voids the older claim.
type Claim struct {
	UserID string
	Ticket int64
	// Prev is the item's policy when claimed; zero for a new user.
	Prev UserPolicy
	// Outbox holds committed changes whose PolicyChanged events the bus has
	// not yet confirmed.
	Outbox []PolicyChangedDetail
	// Corrupt says why the item could not be decoded, when it could not.
	// Prev and Outbox are then empty, so the recompute overwrites the item
	// instead of failing on it forever.
	Corrupt string
}

// PolicyStore is the policy table as the projector writes it.
type PolicyStore interface {
	PolicyReader
	// Claim takes a new ticket for the user, voiding every older one.
	Claim(ctx context.Context, userID string, now time.Time) (Claim, error)
	// Commit replaces the user's policy and outbox. It returns a Conflict
	// error when a newer claim exists.
	Commit(ctx context.Context, c Claim, p UserPolicy, outbox []PolicyChangedDetail) error
	// ClearOutbox empties the outbox. It returns a Conflict error when a newer
	// claim exists (whose holder then owns the outbox).
	ClearOutbox(ctx context.Context, c Claim) error
	// Touch records that the claimed item was found current at checkedAt,
	// as a commit does. It returns a Conflict error when a newer claim
	// exists. Only a recompute that succeeded stamps the item: a claim
	// alone does not, so a stamp proves that the user was recomputed.
	Touch(ctx context.Context, c Claim, checkedAt time.Time) error
	// ClearOutboxes is ClearOutbox for many claims in a few calls (up to
	// 100 a call): each outbox is emptied on condition that its claim is
	// still the newest, and one whose claim was voided is left to the
	// newer holder, as ClearOutbox's Conflict leaves it.
	ClearOutboxes(ctx context.Context, claims []Claim) error
}

// ErrItemTooLarge is in the chain of a Commit error when the item would
// exceed DynamoDB's item size limit; no other refusal carries it.
var ErrItemTooLarge = errors.New("policy item too large to store")

// ErrCorruptItem is in the chain of a GetPolicy or Claim error when a
// policy item exists but cannot be decoded.
var ErrCorruptItem = errors.New("policy item cannot be decoded")

// Member is one entry of the member index. Token is the claim ticket of the
// recompute that wrote it; removals are conditional on it.
type Member struct {
	UserID string
	Token  int64
}

// MemberPage is one page of a project's members; Next is "" on the last page.
type MemberPage struct {
	Members []Member
	Next    string
}

// MemberIndex maps a project to its members with strongly consistent reads,
// which a DynamoDB GSI cannot. Bucket changes fan out through it.
type MemberIndex interface {
	// MemberTokens returns the tokens of the user's entries in the given
	// projects; projects without an entry are absent from the map.
	MemberTokens(ctx context.Context, userID string, projects []string) (map[string]int64, error)
	// PutMembers writes the user's entries for the projects with a new token.
	PutMembers(ctx context.Context, userID string, projects []string, token int64) error
	// PutProjectMembers writes one project's entries for many users, each
	// with its own token, many a call (up to 25).
	PutProjectMembers(ctx context.Context, projectID string, members []Member) error
	// RemoveMember deletes an entry only if it still carries token, and
	// reports whether it did.
	RemoveMember(ctx context.Context, projectID, userID string, token int64) (bool, error)
	// ProjectMembers returns one page of the project's members.
	ProjectMembers(ctx context.Context, projectID, cursor string, limit int) (MemberPage, error)
}

// Checkpoints keep the progress of a long fan-out across Lambda retries.
type Checkpoints interface {
	LoadCheckpoint(ctx context.Context, key string) (string, error) // "" when none
	SaveCheckpoint(ctx context.Context, key, cursor string, expires time.Time) error
	DeleteCheckpoint(ctx context.Context, key string) error
}

// SourceReader reads the membership table with strongly consistent reads. It
// returns items unvalidated: validation is the domain's (SourceItem.Parse).
type SourceReader interface {
	UserMemberships(ctx context.Context, userID string) ([]SourceItem, error)
	ProjectBuckets(ctx context.Context, projectID string) ([]SourceItem, error)
	// ProjectMemberships reads the membership items of the given users in
	// one project, many users a call (up to 100); a user without one is
	// absent from the map.
	ProjectMemberships(ctx context.Context, projectID string, userIDs []string) (map[string]SourceItem, error)
}

// Principal is the verified identity behind a bearer token.
type Principal struct {
	UserID   string // the token's sub
	ClientID string
	Username string
	TokenID  string // jti
	Expires  time.Time
}

// TokenVerifier checks a bearer token. It returns an Unauthenticated error
// for any token it does not accept and a Transient error when it cannot
// decide (the key set is unreachable): it never accepts by default.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (Principal, error)
}

// IssueRequest is one AssumeRole call. Policy and CutoffTag are never
// empty: CutoffTag is the session's CutoffTagKey tag, the CutoffTag of the
// cutoff in the item the policy came from (the issuer adds UserTagKey).
type IssueRequest struct {
	UserID      string
	SessionName string
	Policy      string
	Duration    time.Duration
	CutoffTag   string
}

// ErrPolicyTooLarge is in the chain of an Issue error when STS refused the
// session policy as too large once packed: STS compresses the policy into a
// form with its own limit, which a policy under the 2,048-character limit
// can still exceed. Splitting the policy's grants over more sets helps.
var ErrPolicyTooLarge = errors.New("session policy too large once packed by STS")

// CredentialIssuer turns a session policy into temporary credentials.
type CredentialIssuer interface {
	Issue(ctx context.Context, req IssueRequest) (Credentials, error)
}

// ExpiryTimer recomputes a user's policy item when the earliest expiry of
// their memberships comes (docs/contract.md "Source records", expiresAt): within 5 s
// on the local stack, 60 s on AWS, the grant leaves the item and its
// PolicyChanged. The session policies already stop the grant at that
// instant; the timer only brings the item and the announcement in line.
type ExpiryTimer interface {
	// Arm arranges one recompute of userID at, or just after, at. Arming
	// the same instant again is a no-op; a timer armed for an expiry that
	// is gone by the time it fires recomputes nothing and is harmless, so
	// timers are never cancelled.
	Arm(ctx context.Context, userID string, at time.Time) error
}

// ExpiryCause is the cause in a PolicyChanged event of the recompute at an
// expiry.
func ExpiryCause(at time.Time) string { return "expired:" + at.UTC().Format(time.RFC3339) }

// ExpiryPayload is what an expiry timer invokes the projector with (on AWS,
// a one-time schedule's input): the user whose membership expiry came.
type ExpiryPayload struct {
	Expiry *ExpiryEvent `json:"expiry"`
}

// ExpiryEvent names a user and the expiry that came.
type ExpiryEvent struct {
	UserID string    `json:"userId"`
	At     time.Time `json:"at"`
}
