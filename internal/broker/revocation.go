package broker

import "time"

// The timing of revocations (README "Revocation").
//
// A narrowing committed at time C must deny every session that can carry
// the old policy: those minted from a read of the item made before C. The
// endpoint lets at most IssueWindow pass between the start of its read and
// the issue time STS gives the session (it discards credentials issued
// later), so such sessions were issued before C + IssueWindow, by clocks
// that differ by at most ClockMargin. Sessions issued before
// RevokeBefore(C) are therefore denied, and the endpoint hands the user
// nothing issued before that time: the next credentials carry the new
// policy and are not denied.
const (
	// IssueWindow bounds the time from the start of the endpoint's read of
	// a policy item to the issue time of the credentials minted from it.
	IssueWindow = 3 * time.Second
	// ClockMargin covers the differences between the clocks of the
	// projector, the endpoint and STS.
	ClockMargin = time.Second
)

// RevokeBefore is the cutoff of a narrowing committed at c: c plus the
// issue window and the clock margin, up to the next whole second (IAM
// compares token issue times to the second).
func RevokeBefore(c time.Time) time.Time {
	t := c.Add(IssueWindow + ClockMargin).UTC()
	if t.Truncate(time.Second).Equal(t) {
		return t
	}
	return t.Truncate(time.Second).Add(time.Second)
}
