package broker

import (
	"errors"
	"strings"
)

// ErrNoToken is in the chain of BearerToken's error when the request carries
// no bearer token at all: no Authorization header, or one of another scheme.
// RFC 6750 section 3.1 says such a challenge carries no error code.
var ErrNoToken = errors.New("no bearer token presented")

// BearerToken returns the token of an Authorization header value of the form
// "Bearer <token>": scheme in any case, one space, a b64token (RFC 6750).
// Anything else is an Unauthenticated error; errors.Is(err, ErrNoToken)
// tells whether a bearer token was presented at all (not for an empty
// header, another scheme, or "Bearer" with nothing after it).
func BearerToken(header string) (string, error) {
	const op = "bearer token"
	scheme, token, _ := strings.Cut(header, " ")
	if header == "" || strings.EqualFold(scheme, "Bearer") && token == "" {
		return "", &Error{Kind: Unauthenticated, Op: op, Message: "missing bearer token", Err: ErrNoToken}
	}
	if !strings.EqualFold(scheme, "Bearer") {
		return "", &Error{Kind: Unauthenticated, Op: op,
			Message: "authorization header is not a bearer token", Err: ErrNoToken}
	}
	if !isB64Token(token) {
		return "", &Error{Kind: Unauthenticated, Op: op,
			Message: "authorization header is not a bearer token", Err: errors.New("malformed b64token")}
	}
	return token, nil
}

// isB64Token reports whether s is 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" /
// "+" / "/" ) *"=".
func isB64Token(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := range len(body) {
		if b := body[i]; !isBase64URL(b) && !strings.ContainsRune(".~+/", rune(b)) {
			return false
		}
	}
	return true
}

func isBase64URL(b byte) bool {
	return 'A' <= b && b <= 'Z' || 'a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '-' || b == '_'
}
