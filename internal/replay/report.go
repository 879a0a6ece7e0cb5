package replay

import (
	"errors"
	"fmt"
	"time"

	"github.com/credbroker/credbroker/internal/exitcode"
)

// Report is what an operation did. Counts of the other modes stay zero.
type Report struct {
	Mode       Mode      `json:"mode"`
	RunID      string    `json:"runId"`
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt"`

	// Users is, for rebuild and verify, the users of the membership table
	// processed; Orphans the policy items of users without memberships
	// that still granted something.
	Users   int `json:"users"`
	Orphans int `json:"orphans"`
	// Rejected is, for rebuild and verify, the records of the membership
	// table that break the rules and so grant nothing (docs/contract.md
	// "Source records"); `credbroker admin rejected` lists them with the reasons.
	// They are not drift: the policy table is right to ignore them.
	Rejected int `json:"rejected"`
	// Rebuild: items committed; stale member-index entries handed to
	// Recompute for removal; recomputes overtaken by a newer (live) one,
	// which read newer state.
	Changed    int `json:"changed"`
	StaleIndex int `json:"staleIndex"`
	Superseded int `json:"superseded"`

	// Verify: drift by kind after the recheck, the differences that
	// cleared on recheck (changes in flight), and the drift itself.
	Missing      int `json:"missing"`
	Different    int `json:"different"`
	Extra        int `json:"extra"`
	MissingIndex int `json:"missingIndex"`
	ExtraIndex   int `json:"extraIndex"`
	Cleared      int `json:"cleared"`
	// Findings lists the first MaxListed differences by user; the counts
	// above are exact.
	Findings []Finding `json:"findings,omitempty"`
	// Truncated is set when Findings or FailedUsers were cut to MaxListed.
	Truncated bool `json:"truncated,omitempty"`

	// Replay: records read, skipped (older than since), handed to the
	// handler and accepted; handler calls; records delivered again.
	Records      int `json:"records"`
	Skipped      int `json:"skipped"`
	Delivered    int `json:"delivered"`
	Batches      int `json:"batches"`
	Redeliveries int `json:"redeliveries"`

	// Failed counts users (or, for replay, records) that could not be
	// processed; FailedUsers lists some of them.
	Failed      int      `json:"failed"`
	FailedUsers []string `json:"failedUsers,omitempty"`
}

// Drift is the number of differences a verify found.
func (r Report) Drift() int {
	return r.Missing + r.Different + r.Extra + r.MissingIndex + r.ExtraIndex
}

// Kind is a kind of drift.
type Kind string

const (
	// Missing: the source grants the user something, the table nothing.
	Missing Kind = "missing"
	// Different: both grant something, with different versions or
	// contents, or the table's item cannot be decoded.
	Different Kind = "different"
	// Extra: the table grants something, the source nothing.
	Extra Kind = "extra"
	// MissingIndex: a membership has no member-index entry, so a bucket
	// change of that project would not reach the user.
	MissingIndex Kind = "missingIndex"
	// ExtraIndex: a member-index entry whose membership does not exist;
	// harmless (a fan-out recomputes the user for nothing) but Rebuild
	// removes it, so a clean verify means a rebuild has nothing to do.
	ExtraIndex Kind = "extraIndex"
)

// Finding is one difference.
type Finding struct {
	Kind    Kind   `json:"kind"`
	UserID  string `json:"userId"`
	Project string `json:"project,omitempty"` // MissingIndex and ExtraIndex only
}

// DriftError is the error of a verify that found drift.
type DriftError struct{ Report Report }

func (e *DriftError) Error() string {
	r := e.Report
	return fmt.Sprintf("policy drift (run %s): %d missing, %d different, %d extra, %d missing and %d stale index entries among %d users; run rebuild to repair",
		r.RunID, r.Missing, r.Different, r.Extra, r.MissingIndex, r.ExtraIndex, r.Users+r.Orphans)
}

// ExitCode maps an operation's error to the command's exit status (docs/development.md
// "Exit status"): drift is Found, a usage or configuration error Usage, any
// other failure Failure (a verify that could not check every user fails
// with Failure even if it found drift).
func ExitCode(err error) int {
	var drift *DriftError
	if errors.As(err, &drift) {
		return exitcode.Found
	}
	return exitcode.Of(err)
}
