package broker

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
)

// The timing of revocations (docs/security.md "The cutoff").
//
// The projector reads its clock (S) before it writes a narrowing, and the
// write must land within CommitWindow of S (it is given that deadline and
// retried with a new S when it misses it). Every session that can carry the
// old policy was minted from a read made before the write landed, so before
// S + CommitWindow. The endpoint lets at most IssueWindow pass between the
// start of its read and the issue time STS gives the session (it discards
// credentials issued later), so such sessions were issued before
// S + CommitWindow + IssueWindow, by clocks that differ by at most
// ClockMargin. Sessions issued before RevokeBefore(S) are therefore denied,
// unless they carry the cutoff's tag (CutoffTag): only sessions minted from
// the narrowed item do, so the user's next credentials work at once.
const (
	// CommitWindow bounds the time from the projector's clock reading to
	// its write of the narrowed item landing.
	CommitWindow = time.Second
	// IssueWindow bounds the time from the start of the endpoint's read of
	// a policy item to the issue time of the credentials minted from it.
	IssueWindow = 2 * time.Second
	// ClockMargin covers the differences between the clocks of the
	// projector, the endpoint and STS.
	ClockMargin = time.Second
)

// RevokeBefore is the cutoff of a narrowing whose write started at s: s plus
// the commit and issue windows and the clock margin, in milliseconds (the
// deny rounds it up to the second, as IAM compares token issue times to the
// second).
func RevokeBefore(s time.Time) time.Time {
	return s.Add(CommitWindow + IssueWindow + ClockMargin).UTC().Truncate(time.Millisecond)
}

// NextCutoff is the cutoff a new revocation of a user whose cutoff is prev
// gets: want, or, when that is not later, the millisecond after prev. Each
// revocation of a user gets a cutoff of its own, hence a tag of its own,
// so that sessions tagged with an earlier one are denied by the new one.
func NextCutoff(prev, want time.Time) time.Time {
	want = want.UTC().Truncate(time.Millisecond)
	if prev.IsZero() || want.After(prev) {
		return want
	}
	return prev.UTC().Truncate(time.Millisecond).Add(time.Millisecond)
}

// The session tags the endpoint sets on every session it mints (docs/security.md
// "How"). UserTagKey names the user, CutoffTagKey the revocation
// cutoff of the policy item the session was minted from. The deny list
// denies, for each revoked user, the sessions that carry the user's tag
// but not the tag of the user's current cutoff: every session minted before
// the revocation, and none minted after it. Both are short digests, so
// that a deny entry costs IAM's policy budget as little as possible.
const (
	UserTagKey   = "credbroker:user"
	CutoffTagKey = "credbroker:cutoff"
)

// UserTag is the value of UserTagKey for the sessions of userID: 10 hex
// digits of a digest. Two users may share one (about one pair in 2^40);
// a deny of one then also denies the other's sessions minted under other
// cutoffs, which costs that user a fetch, never a grant.
func UserTag(userID string) string {
	sum := sha256.Sum256([]byte("user\x00" + userID))
	return hex.EncodeToString(sum[:5])
}

// CutoffTag is the value of CutoffTagKey for the sessions of userID minted
// from an item whose cutoff is cutoff (zero for a user never revoked): 12
// hex digits of a digest of both, so that no other cutoff of this user has
// the same tag (but for one in 2^48). IAM allows only some characters in
// tag values; hex is among them.
func CutoffTag(userID string, cutoff time.Time) string {
	ms := "none"
	if !cutoff.IsZero() {
		ms = strconv.FormatInt(cutoff.UnixMilli(), 10)
	}
	sum := sha256.Sum256([]byte(userID + "\x00" + ms))
	return hex.EncodeToString(sum[:6])
}
