package credentials

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
)

// errMethodNotAllowed is in the chain of the Invalid error of a request
// whose method is not GET, which is answered 405 with "Allow: GET" (RFC
// 9110) rather than 400.
var errMethodNotAllowed = errors.New("method not allowed")

// statusOf is the one mapping from errors to HTTP answers: by kind, except
// that a method other than GET is 405.
func statusOf(err error) (status int, code string) {
	k := broker.KindOf(err)
	if k == broker.Invalid && errors.Is(err, errMethodNotAllowed) {
		return 405, "method_not_allowed"
	}
	switch k {
	case broker.Unauthenticated:
		return 401, "invalid_token"
	case broker.NoAccess:
		return 403, "no_access"
	case broker.Invalid:
		return 400, "bad_request"
	default:
		return 503, "unavailable"
	}
}

// retryAfter is the Retry-After, in seconds, of a 503 for err: the time
// until a fallback cutoff passes (at least a second), RetryAfterSeconds for
// other errors that may pass on their own (broker.IsTransient: a dependency
// failing or a lost race). Internal errors stay 503 (the endpoint's one "try
// later" answer) but ask for a longer wait: what caused them does not pass
// in seconds.
func retryAfter(err error) int {
	var w *revokedUntil
	switch {
	case errors.As(err, &w):
		return max(int((w.wait+time.Second-1)/time.Second), 1)
	case broker.IsTransient(err):
		return RetryAfterSeconds
	}
	return InternalRetryAfterSeconds
}

// revokedUntil says that every session issued now would be denied at once:
// a fallback cutoff (docs/security.md "After a fallback") is still wait ahead.
type revokedUntil struct {
	before time.Time
	wait   time.Duration
}

func (e *revokedUntil) Error() string {
	return fmt.Sprintf("every session issued before %s is revoked (the deny list fell back): %v to wait", e.before.UTC().Format(time.RFC3339), e.wait)
}

// waitForCutoff is the Transient error of a request that would get
// credentials IAM denies: the cutoff before is wait ahead.
func waitForCutoff(op string, before time.Time, wait time.Duration) error {
	return broker.Wrap(broker.Transient, op, &revokedUntil{before: before, wait: wait})
}

// unavailableMessage is the only message of a 503: what failed inside is
// for the logs.
const unavailableMessage = "the service is temporarily unavailable; retry later"

// safeMessage is the error text a caller may see.
func safeMessage(err error) string {
	status, _ := statusOf(err)
	if status == 503 {
		return unavailableMessage
	}
	if msg := broker.MessageOf(err); msg != "" {
		return msg
	}
	switch status {
	case 401:
		return "invalid token"
	case 403:
		return "no access granted"
	}
	return "bad request"
}

// challenge is the WWW-Authenticate value of a 401 (RFC 6750 section 3):
// error attributes only when a token was presented.
func challenge(presented bool, description string) string {
	const base = `Bearer realm="credbroker"`
	if !presented {
		return base
	}
	return fmt.Sprintf(`%s, error="invalid_token", error_description="%s"`, base, quotable(description))
}

// quotable keeps the characters RFC 6750 allows in error_description
// (printable ASCII but '"' and '\').
func quotable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return -1
		}
		return r
	}, clip(s, 200))
}
