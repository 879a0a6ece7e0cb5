package credentials

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"

	"github.com/credbroker/credbroker/internal/broker"
)

// requestMeta is what logs and audit events say about the caller.
type requestMeta struct {
	id        string
	sourceIP  string
	userAgent string
}

// maxMetaBytes bounds caller-supplied text copied into logs and events.
const maxMetaBytes = 512

func newRequestMeta(ev events.APIGatewayV2HTTPRequest) requestMeta {
	id := ev.RequestContext.RequestID
	if id == "" {
		// Hand-made events may lack one; audit events require it.
		id = "local-" + newID()
	}
	return requestMeta{
		id:        clip(id, 128),
		sourceIP:  clip(ev.RequestContext.HTTP.SourceIP, 64),
		userAgent: clip(ev.RequestContext.HTTP.UserAgent, maxMetaBytes),
	}
}

// newID returns a random UUID (version 4).
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// clip cuts s to at most n bytes on a rune boundary and drops invalid UTF-8.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// queryProject is the one query parameter the endpoint accepts.
const queryProject = "project"

// parseRequest checks the method, the route and the query, and returns the
// ?project= filter ("" for none). Every failure is Invalid: 400, or 405
// for a method other than GET (errMethodNotAllowed).
func parseRequest(ev events.APIGatewayV2HTTPRequest) (string, error) {
	const op = "parse request"
	switch m := ev.RequestContext.HTTP.Method; m {
	case "GET":
	case "":
		// A malformed event rather than a request with another method.
		return "", broker.Errorf(broker.Invalid, op, "request without a method")
	default:
		return "", &broker.Error{Kind: broker.Invalid, Op: op, Err: errMethodNotAllowed,
			Message: fmt.Sprintf("method %q is not allowed: use GET", clip(m, 16))}
	}
	if ev.RawPath != Path && ev.RouteKey != "GET "+Path {
		return "", broker.Errorf(broker.Invalid, op, "unknown path %q: the endpoint is GET %s", clip(ev.RawPath, 64), Path)
	}
	query, err := queryOf(ev)
	if err != nil {
		return "", broker.Errorf(broker.Invalid, op, "malformed query string")
	}
	for _, k := range slices.Sorted(maps.Keys(query)) {
		if k != queryProject {
			return "", broker.Errorf(broker.Invalid, op, "unknown query parameter %q: only %q is accepted", clip(k, 64), queryProject)
		}
	}
	values, ok := query[queryProject]
	if !ok {
		return "", nil
	}
	if len(values) != 1 {
		return "", broker.Errorf(broker.Invalid, op, "query parameter %q must be given at most once", queryProject)
	}
	if err := broker.ValidateProjectID(values[0]); err != nil {
		return "", broker.Errorf(broker.Invalid, op, "%s", broker.MessageOf(err))
	}
	return values[0], nil
}

// queryOf reads the query from rawQueryString, which keeps repeated keys
// apart, and falls back to queryStringParameters (where API Gateway joins
// repeated values with commas, which no project id contains) for events
// that carry only those.
func queryOf(ev events.APIGatewayV2HTTPRequest) (url.Values, error) {
	if ev.RawQueryString != "" {
		return url.ParseQuery(ev.RawQueryString)
	}
	q := make(url.Values, len(ev.QueryStringParameters))
	for k, v := range ev.QueryStringParameters {
		q[k] = []string{v}
	}
	return q, nil
}

// bearerToken finds the Authorization header (names are case-insensitive;
// API Gateway lowercases them) and returns its token. presented says
// whether a bearer token was presented at all, for the 401 challenge.
func bearerToken(headers map[string]string) (token string, presented bool, err error) {
	var value string
	found := 0
	for k, v := range headers {
		if strings.EqualFold(k, "Authorization") {
			value = v
			found++
		}
	}
	if found > 1 {
		return "", true, broker.Errorf(broker.Unauthenticated, "bearer token", "more than one Authorization header")
	}
	token, err = broker.BearerToken(value)
	if err != nil {
		return "", !isNoToken(err), err
	}
	return token, true, nil
}

// SessionName derives the RoleSessionName of a user's sessions: "cb-" and
// the user id. It shows in the assumed-role ARN, so S3 access logs name the
// user even without CloudTrail's SourceIdentity. Verified user ids (Cognito
// subs) always fit as they are; any other id has the characters STS refuses
// replaced by '-', is cut to the 64-character limit, and gets a hash of the
// whole id appended, so that two ids never share a name.
func SessionName(userID string) string {
	const limit, prefix = 64, "cb-"
	b := []byte(prefix + userID)
	changed := len(b) > limit
	for i := len(prefix); i < len(b); i++ {
		if !sessionNameChar(b[i]) {
			b[i], changed = '-', true
		}
	}
	if !changed {
		return string(b)
	}
	sum := sha256.Sum256([]byte(userID))
	suffix := "-" + hex.EncodeToString(sum[:6])
	return string(b[:min(len(b), limit-len(suffix))]) + suffix
}

func sessionNameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_+=,.@-", c) >= 0
}
