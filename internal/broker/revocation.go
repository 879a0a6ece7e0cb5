package broker

import "time"

// The timing of revocations (README "Revocation").
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
// and the endpoint hands the user nothing issued before that time: the next
// credentials carry the new policy and are not denied.
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
// the commit and issue windows and the clock margin, up to the next whole
// second (IAM compares token issue times to the second).
func RevokeBefore(s time.Time) time.Time {
	t := s.Add(CommitWindow + IssueWindow + ClockMargin).UTC()
	if t.Truncate(time.Second).Equal(t) {
		return t
	}
	return t.Truncate(time.Second).Add(time.Second)
}
