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
// ClockMargin: before RevokeBefore(S). The deny itself needs no time: it
// names the cutoff tag (CutoffTag) of the item the narrowing replaced,
// which every such session carries and no session minted from the
// narrowed item does, so the user's next credentials work at once. The
// time bounds what the tag cannot: a fallback, and a revocation whose
// previous cutoff is unknown.
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

// The session tags the endpoint sets on every session it mints
// (docs/security.md "How"). UserTagKey names the user, CutoffTagKey the
// revocation cutoff of the policy item the session was minted from. A
// narrowing from cutoff C to C' revokes the sessions tagged with C's tag:
// every session minted from the item before it, and none minted from the
// new one, whose tag no deny names until a later narrowing revokes it.
// Both are short digests, so that a deny entry costs IAM's policy budget
// as little as possible.
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

// IsCutoffTag reports whether s has the shape of a CutoffTag: 12
// lower-case hex digits.
func IsCutoffTag(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := range len(s) {
		if !('0' <= s[i] && s[i] <= '9' || 'a' <= s[i] && s[i] <= 'f') {
			return false
		}
	}
	return true
}
