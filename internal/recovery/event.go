package recovery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
)

// Mode names an operation.
type Mode string

const (
	ModeRebuild Mode = "rebuild"
	ModeVerify  Mode = "verify"
	ModeReplay  Mode = "replay"
)

// Event is the function's invocation event, e.g. {"mode":"verify"} (what
// the daily schedule sends) or {"mode":"replay","since":"2025-03-15T00:00:00Z"}.
type Event struct {
	Mode Mode `json:"mode"`
	// Since, for replay only, skips records created before it (RFC 3339).
	// Streams cannot start at a time, so older records are read and
	// skipped.
	Since string `json:"since,omitempty"`
}

// Request is a validated Event.
type Request struct {
	Mode  Mode
	Since time.Time // zero: from TRIM_HORIZON
}

// NewRequest validates a mode and an optional since (RFC 3339), as they
// come from flags or from an event.
func NewRequest(mode, since string) (Request, error) {
	const op = "request"
	r := Request{Mode: Mode(strings.TrimSpace(mode))}
	switch r.Mode {
	case ModeRebuild, ModeVerify, ModeReplay:
	case "":
		return Request{}, broker.Errorf(broker.Invalid, op, `mode is required: "rebuild", "verify" or "replay"`)
	default:
		return Request{}, broker.Errorf(broker.Invalid, op, `unknown mode %q: want "rebuild", "verify" or "replay"`, mode)
	}
	if since = strings.TrimSpace(since); since != "" {
		if r.Mode != ModeReplay {
			return Request{}, broker.Errorf(broker.Invalid, op, "since applies to replay only, not to %s", r.Mode)
		}
		t, err := time.Parse(time.RFC3339, since)
		if err != nil {
			return Request{}, broker.Errorf(broker.Invalid, op, "since %q is not an RFC 3339 time (e.g. 2025-03-15T00:00:00Z)", since)
		}
		r.Since = t
	}
	return r, nil
}

// DecodeEvent decodes an invocation event strictly: unknown fields, a field
// given twice, a field spelt in another case, a second JSON value or a wrong
// type are errors, so that a typo never runs an operation other than the
// one meant. (encoding/json alone matches names case-insensitively and lets
// the last of repeated keys win.)
func DecodeEvent(payload []byte) (Request, error) {
	const op = "decode event"
	const shape = `event must be {"mode":"rebuild"|"verify"|"replay","since":"<RFC 3339, replay only>"}`
	if bytes.Equal(bytes.TrimSpace(payload), []byte("null")) {
		return Request{}, broker.Errorf(broker.Invalid, op, `event is null: want {"mode":"rebuild"|"verify"|"replay"}`)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return Request{}, broker.Errorf(broker.Invalid, op, "%s: %s", shape, describe(tok, err))
	}
	fields := map[string]*string{"mode": new(string), "since": new(string)}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Request{}, broker.Errorf(broker.Invalid, op, "%s: %v", shape, err)
		}
		name, _ := tok.(string)
		dst, ok := fields[name]
		switch {
		case !ok:
			return Request{}, broker.Errorf(broker.Invalid, op, "%s: unknown field %q (names are case-sensitive)", shape, name)
		case seen[name]:
			return Request{}, broker.Errorf(broker.Invalid, op, "%s: field %q given twice", shape, name)
		}
		seen[name] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return Request{}, broker.Errorf(broker.Invalid, op, "%s: %v", shape, err)
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return Request{}, broker.Errorf(broker.Invalid, op, "%s: %s is %s, want a string", shape, name, raw)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return Request{}, broker.Errorf(broker.Invalid, op, "%s: %v", shape, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Request{}, broker.Errorf(broker.Invalid, op, "event has data after the JSON object")
	}
	return NewRequest(*fields["mode"], *fields["since"])
}

// describe says what stood where a JSON object was expected.
func describe(tok json.Token, err error) string {
	switch {
	case errors.Is(err, io.EOF):
		return "the payload is empty"
	case err != nil:
		return err.Error()
	}
	return fmt.Sprintf("got %v, not an object", tok)
}

// Event returns the request as an invocation event.
func (r Request) Event() Event {
	ev := Event{Mode: r.Mode}
	if !r.Since.IsZero() {
		ev.Since = r.Since.Format(time.RFC3339Nano)
	}
	return ev
}

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

// Exit codes of the command-line form.
const (
	ExitOK      = 0
	ExitDrift   = 1
	ExitUsage   = 2
	ExitFailure = 3
)

// ExitCode maps an operation's error to the command's exit status: drift
// is 1, a usage or configuration error 2, any other failure 3 (a verify
// that could not check every user fails with 3 even if it found drift).
func ExitCode(err error) int {
	var drift *DriftError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &drift):
		return ExitDrift
	case broker.KindOf(err) == broker.Invalid:
		return ExitUsage
	}
	return ExitFailure
}

// Run performs the request. Near the context's deadline (the Lambda
// timeout) it stops DeadlineMargin early, so the report still goes out.
func (s *Service) Run(ctx context.Context, req Request) (Report, error) {
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-deadlineMargin))
		defer cancel()
	}
	switch req.Mode {
	case ModeRebuild:
		return s.Rebuild(ctx)
	case ModeVerify:
		return s.Verify(ctx)
	case ModeReplay:
		return s.Replay(ctx, req.Since)
	}
	return Report{}, broker.Errorf(broker.Invalid, "run", "unknown mode %q", req.Mode)
}

// deadlineMargin is kept free before a Lambda deadline to log and answer.
const deadlineMargin = 10 * time.Second
