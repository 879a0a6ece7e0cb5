package broker

import (
	"errors"
	"fmt"
)

// Kind classifies an error by what the caller should do about it. It is the
// one error taxonomy of the program: the HTTP layer maps it to a status in one
// place, and the stream handlers use it to choose between retry and reject.
type Kind uint8

const (
	// Other means "unclassified here": KindOf looks through it to the kind of
	// the error it wraps.
	Other Kind = iota
	// Internal is a bug or a misconfiguration: nothing the caller can fix.
	Internal
	// Invalid input: a malformed request or source record. Never retried.
	Invalid
	// Unauthenticated: the bearer token is missing or not acceptable.
	Unauthenticated
	// NoAccess: the caller is known but is granted nothing for this request.
	NoAccess
	// NotFound: the item asked for does not exist.
	NotFound
	// Conflict: a conditional write lost a race; recompute and try again.
	Conflict
	// Transient: a dependency failed or throttled; the same call may succeed later.
	Transient
)

var kindNames = [...]string{
	Other:           "other",
	Internal:        "internal",
	Invalid:         "invalid",
	Unauthenticated: "unauthenticated",
	NoAccess:        "no_access",
	NotFound:        "not_found",
	Conflict:        "conflict",
	Transient:       "transient",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Error is an error with a Kind. Message is safe to show to a caller; Err
// carries the detail for logs and never reaches a response body.
type Error struct {
	Kind    Kind
	Op      string
	Message string
	Err     error
}

func (e *Error) Error() string {
	msg := e.Op
	if e.Message != "" {
		msg = join(msg, e.Message)
	}
	if e.Err != nil {
		msg = join(msg, e.Err.Error())
	}
	return msg
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + ": " + b
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of kind k whose safe message is the formatted text.
func Errorf(k Kind, op, format string, args ...any) error {
	return &Error{Kind: k, Op: op, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns err as an *Error of kind k, or nil when err is nil.
func Wrap(k Kind, op string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Kind: k, Op: op, Err: err}
}

// KindOf returns the first kind other than Other in err's chain of *Error,
// and Internal when there is none: an unclassified error is never taken for
// a transient one.
func KindOf(err error) Kind {
	if err == nil {
		return Other
	}
	for err != nil {
		var e *Error
		if !errors.As(err, &e) {
			break
		}
		if e.Kind != Other {
			return e.Kind
		}
		err = e.Err
	}
	return Internal
}

// MessageOf returns the safe message of the outermost *Error in err's chain
// that has one, or "".
func MessageOf(err error) string {
	for err != nil {
		var e *Error
		if !errors.As(err, &e) {
			return ""
		}
		if e.Message != "" {
			return e.Message
		}
		err = e.Err
	}
	return ""
}

// IsTransient reports whether retrying the same work may succeed.
func IsTransient(err error) bool {
	k := KindOf(err)
	return k == Transient || k == Conflict
}
