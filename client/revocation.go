package client

import (
	"fmt"
	"time"
)

// cutoffs are the revocations a Client has learned of from the endpoint's
// answers (docs/security.md "Clients after a revocation"): the user's latest cutoff, and the deny
// list's fallback. A set either denies is never served again.
type cutoffs struct {
	user time.Time // sets minted under an earlier cutoff are denied
	all  time.Time // sets issued before it are denied
}

// learn raises the cutoffs to the answer's, and says whether they rose.
func (k *cutoffs) learn(a *Answer) bool {
	rose := false
	if a.RevokedBefore.After(k.user) {
		k.user, rose = a.RevokedBefore, true
	}
	if a.AllRevokedBefore.After(k.all) {
		k.all, rose = a.AllRevokedBefore, true
	}
	return rose
}

// denies reports whether a revocation known denies a set of a. A set whose
// issue time is unknown counts as issued before the fallback.
func (k cutoffs) denies(a *Answer) bool {
	if a.RevokedBefore.Before(k.user) {
		return true
	}
	if k.all.IsZero() {
		return false
	}
	for _, s := range a.CredentialSets {
		if s.Issued.IsZero() || s.Issued.Before(k.all) {
			return true
		}
	}
	return false
}

// dropDeniedLocked forgets every answer that a cutoff known denies; the
// next fetch of each asks for freshly minted credentials.
func (c *Client) dropDeniedLocked() {
	for _, e := range c.entries {
		if e.answer != nil && c.cutoffs.denies(e.answer) {
			e.answer, e.noCache = nil, true
		}
	}
}

// errRevokedAnswer: the endpoint answered, twice, with a set that a
// revocation it announced denies (an instance that has not yet read the
// fallback, which it does within seconds).
var errRevokedAnswer = fmt.Errorf("%w: its answer holds credentials issued before a revocation it announced", ErrUnavailable)

// Refetches forced by S3's refusals (RetryOnAccessDenied): at most
// MaxDeniedRefetches per DeniedRefetchInterval, and DeniedRecheck apart.
// The endpoint's instances learn of a fallback within 2 s, so a refetch
// that reached one that had not yet is tried again 3 s later, not 30 s;
// and two revocations within the interval each get theirs. A refusal that
// fresh credentials never cure (a real one) costs three refetches per
// interval at most.
const (
	DeniedRecheck      = 3 * time.Second
	MaxDeniedRefetches = 3
)
