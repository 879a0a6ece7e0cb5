package client

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// Errors callers can test with errors.Is.
var (
	// ErrNoAccess: the user may not reach the target: the endpoint
	// answered 403 no_access, or no credential set covers the bucket or key.
	ErrNoAccess = errors.New("credbroker: no access")
	// ErrInvalidToken: the endpoint refused the access token, also after a
	// refresh (401).
	ErrInvalidToken = errors.New("credbroker: invalid access token")
	// ErrBadRequest: the request is invalid (an invalid project id) or
	// the endpoint refused it (400).
	ErrBadRequest = errors.New("credbroker: bad request")
	// ErrUnavailable: the endpoint stayed unavailable (503, or 429 from
	// API Gateway's throttling) through the retries.
	ErrUnavailable = errors.New("credbroker: credential endpoint unavailable")
	// ErrMalformedAnswer: a 200 answer that is not the contract's JSON.
	ErrMalformedAnswer = errors.New("credbroker: malformed answer from the credential endpoint")
	// ErrAmbiguousTarget: the target does not choose one credential set
	// (a project's or a bucket's grants span several): name a bucket or key.
	ErrAmbiguousTarget = errors.New("credbroker: the target spans several credential sets")
)

// EndpointError is an error answer of the credential endpoint. It matches
// ErrInvalidToken (401), ErrNoAccess (403), ErrBadRequest (400) and
// ErrUnavailable (503, 429).
type EndpointError struct {
	Status  int
	Code    string // the answer's "error" ("no_access", ...), "" when it had none
	Message string // the answer's "message", cleaned of control characters and shortened
	// RetryAfter is the answer's Retry-After, 0 when it had none.
	RetryAfter time.Duration
}

func (e *EndpointError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "credbroker: credential endpoint answered %d", e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

// Is maps the status to the package's errors.
func (e *EndpointError) Is(target error) bool {
	switch target {
	case ErrInvalidToken:
		return e.Status == 401
	case ErrNoAccess:
		return e.Status == 403
	case ErrBadRequest:
		return e.Status == 400
	case ErrUnavailable:
		return e.Status == 503 || e.Status == 429
	}
	return false
}

// AccessError says that the user cannot reach a target. It matches
// ErrNoAccess, and unwraps to the endpoint's 403 when there was one.
type AccessError struct {
	Target Target
	// Detail says what the user can reach in that bucket, when the answer
	// had no set for the target.
	Detail string
	Err    error
}

func (e *AccessError) Error() string {
	msg := "credbroker: no access to " + e.Target.String()
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *AccessError) Is(target error) bool { return target == ErrNoAccess }
func (e *AccessError) Unwrap() error        { return e.Err }

// cleanMessage keeps a server's message printable and short: it ends up in
// terminals and logs.
func cleanMessage(s string) string {
	const max = 300
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == max {
			b.WriteString("...")
			break
		}
		if !unicode.IsPrint(r) {
			r = ' '
		}
		b.WriteRune(r)
		n++
	}
	return strings.TrimSpace(b.String())
}
