// Package envconf reads a function's or tool's configuration from its
// environment, the one way every Config here is read: each problem is
// collected, in the order the fields are read, and reported together, so
// that one failed deploy shows everything to fix.
package envconf

import (
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
)

// Reader reads variables through getenv and collects what is wrong.
type Reader struct {
	getenv   func(string) string
	problems []string
}

// New returns a Reader over getenv (os.Getenv in a main).
func New(getenv func(string) string) *Reader { return &Reader{getenv: getenv} }

// Bad records a problem that a check of the caller's found.
func (r *Reader) Bad(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// String returns the variable, trimmed, or def when it is empty.
func (r *Reader) String(name, def string) string {
	if v := strings.TrimSpace(r.getenv(name)); v != "" {
		return v
	}
	return def
}

// Required returns the variable, recording a problem when it is empty.
func (r *Reader) Required(name string) string {
	v := r.String(name, "")
	if v == "" {
		r.Bad("%s is required", name)
	}
	return v
}

// Int returns the variable as an integer in lo..hi, or def when it is
// empty.
func (r *Reader) Int(name string, def, lo, hi int) int {
	raw := r.String(name, "")
	if raw == "" {
		return def
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < lo || n > hi {
		r.Bad("%s %q must be an integer in %d..%d", name, raw, lo, hi)
		return def
	}
	return n
}

// Duration reads an integer count of unit (time.Second for *_SECONDS,
// time.Millisecond for *_MS) in lo..hi, or def when it is empty.
// Bool returns the variable as a switch: 1, true, yes or on is true; 0,
// false, no or off false; empty is def; anything else a problem.
func (r *Reader) Bool(name string, def bool) bool {
	switch v := strings.ToLower(r.String(name, "")); v {
	case "":
		return def
	case "1", "true", "yes", "on":
		return true
	case "0", "false", "no", "off":
		return false
	default:
		r.Bad("%s %q must be 1 or 0 (true or false)", name, v)
		return def
	}
}

func (r *Reader) Duration(name string, unit, def, lo, hi time.Duration) time.Duration {
	return time.Duration(r.Int(name, int(def/unit), int(lo/unit), int(hi/unit))) * unit
}

// List returns the comma-separated variable's entries, trimmed; an empty
// entry is a problem.
func (r *Reader) List(name string) []string {
	raw := r.String(name, "")
	if raw == "" {
		return nil
	}
	var out []string
	for v := range strings.SplitSeq(raw, ",") {
		if v = strings.TrimSpace(v); v == "" {
			r.Bad("%s %q has an empty entry", name, raw)
			return nil
		}
		out = append(out, v)
	}
	return out
}

// OneOf returns the variable, which must be one of allowed, or def when it
// is empty.
func (r *Reader) OneOf(name, def string, allowed ...string) string {
	v := r.String(name, def)
	if !slices.Contains(allowed, v) {
		r.Bad("%s %q must be one of %s", name, v, strings.Join(allowed, ", "))
		return def
	}
	return v
}

// LogLevel reads CREDBROKER_LOG_LEVEL: DEBUG, INFO (the default), WARN or ERROR.
func (r *Reader) LogLevel() slog.Level {
	level := slog.LevelInfo
	if raw := r.String("CREDBROKER_LOG_LEVEL", ""); raw != "" {
		if err := level.UnmarshalText([]byte(raw)); err != nil {
			r.Bad("CREDBROKER_LOG_LEVEL %q must be DEBUG, INFO, WARN or ERROR", raw)
		}
	}
	return level
}

// Err returns nil, or an Invalid error naming every problem found.
func (r *Reader) Err(what string) error {
	if len(r.problems) == 0 {
		return nil
	}
	return broker.Errorf(broker.Invalid, what+" configuration", "%d problem(s): %s", len(r.problems), strings.Join(r.problems, "; "))
}

// Expiry is where a function arms the timers that recompute a user at a
// membership's expiry (docs/contract.md "Source records", expiresAt): an EventBridge
// Scheduler group, the role its schedules invoke the projector with, the
// projector (empty in the projector itself: the invoked function) and the
// schedules' dead-letter queue. Without a group, nothing is armed.
type Expiry struct {
	Group, RoleARN, TargetARN, DeadLetterARN string
}

// Expiry reads CREDBROKER_EXPIRY_SCHEDULE_GROUP, CREDBROKER_EXPIRY_SCHEDULER_ROLE_ARN,
// CREDBROKER_EXPIRY_TARGET_ARN and CREDBROKER_EXPIRY_DLQ_ARN.
func (r *Reader) Expiry() Expiry {
	e := Expiry{
		Group:         r.String("CREDBROKER_EXPIRY_SCHEDULE_GROUP", ""),
		RoleARN:       r.String("CREDBROKER_EXPIRY_SCHEDULER_ROLE_ARN", ""),
		TargetARN:     r.String("CREDBROKER_EXPIRY_TARGET_ARN", ""),
		DeadLetterARN: r.String("CREDBROKER_EXPIRY_DLQ_ARN", ""),
	}
	if e.Group != "" && e.RoleARN == "" {
		r.Bad("CREDBROKER_EXPIRY_SCHEDULER_ROLE_ARN is required with CREDBROKER_EXPIRY_SCHEDULE_GROUP")
	}
	return e
}
