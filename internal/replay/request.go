package replay

import (
	"bytes"
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
