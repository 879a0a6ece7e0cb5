package credentials

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
)

// Limits of NewHTTPHandler. The header limit is above API Gateway's own
// (10 KiB) so that an oversized token reaches the verifier and gets the
// contract's 401, as it would behind a gateway that lets it through.
const (
	MaxHeaderBytes = 16 * 1024
	MaxBodyBytes   = 1 << 20
)

// HandleFunc is the signature of Service.Handle.
type HandleFunc func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error)

// NewHTTPHandler serves handle over plain HTTP the way API Gateway would
// invoke it: each request becomes a payload 2.0 event (lowercased headers,
// repeated query keys comma-joined in queryStringParameters, a fresh
// request id, the peer as sourceIp) and the event's answer becomes the
// HTTP response. The local stack serves the endpoint through it. The handler
// refuses headers over MaxHeaderBytes with 431; the server's own
// http.Server.MaxHeaderBytes should be at least that.
func NewHTTPHandler(handle HandleFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if headerBytes(r) > MaxHeaderBytes {
			writeError(w, http.StatusRequestHeaderFieldsTooLarge, "bad_request", "request headers too large")
			return
		}
		ev, err := eventOf(r)
		if err != nil {
			writeError(w, http.StatusRequestEntityTooLarge, "bad_request", "request body too large")
			return
		}
		resp, err := safeHandle(handle, r.Context(), ev)
		if err != nil {
			// Service.Handle never fails; another handler might.
			w.Header().Set("Retry-After", strconv.Itoa(RetryAfterSeconds))
			writeError(w, http.StatusServiceUnavailable, "unavailable", unavailableMessage)
			return
		}
		writeResponse(w, resp)
	})
}

func safeHandle(handle HandleFunc, ctx context.Context, ev events.APIGatewayV2HTTPRequest) (resp events.APIGatewayV2HTTPResponse, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errPanic
		}
	}()
	return handle(ctx, ev)
}

var (
	errPanic        = errors.New("handler panicked")
	errBodyTooLarge = errors.New("request body too large")
)

func headerBytes(r *http.Request) int {
	n := len(r.Method) + len(r.RequestURI) + len(r.Host)
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// eventOf converts a request to an API Gateway HTTP API payload 2.0 event.
func eventOf(r *http.Request) (events.APIGatewayV2HTTPRequest, error) {
	now := time.Now()
	path := r.URL.EscapedPath()
	headers := make(map[string]string, len(r.Header)+1)
	var cookies []string
	for k, vs := range r.Header {
		name := strings.ToLower(k)
		if name == "cookie" {
			for _, v := range vs {
				for c := range strings.SplitSeq(v, ";") {
					if c = strings.TrimSpace(c); c != "" {
						cookies = append(cookies, c)
					}
				}
			}
			continue
		}
		headers[name] = strings.Join(vs, ",")
	}
	if r.Host != "" {
		headers["host"] = r.Host
	}
	var query map[string]string
	if values, _ := url.ParseQuery(r.URL.RawQuery); len(values) > 0 {
		query = make(map[string]string, len(values))
		for k, vs := range values {
			query[k] = strings.Join(vs, ",")
		}
	}
	ev := events.APIGatewayV2HTTPRequest{
		Version:               "2.0",
		RouteKey:              "$default",
		RawPath:               path,
		RawQueryString:        r.URL.RawQuery,
		Cookies:               cookies,
		Headers:               headers,
		QueryStringParameters: query,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey:     "$default",
			AccountID:    "anonymous",
			Stage:        "$default",
			RequestID:    newID(),
			APIID:        "local",
			DomainName:   r.Host,
			DomainPrefix: strings.Split(r.Host, ".")[0],
			Time:         now.UTC().Format("02/Jan/2006:15:04:05 -0700"),
			TimeEpoch:    now.UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method:    r.Method,
				Path:      path,
				Protocol:  r.Proto,
				SourceIP:  sourceIP(r.RemoteAddr),
				UserAgent: r.UserAgent(),
			},
		},
	}
	if r.Body != nil && r.Body != http.NoBody {
		body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
		if err != nil || len(body) > MaxBodyBytes {
			return ev, errBodyTooLarge
		}
		if utf8.Valid(body) {
			ev.Body = string(body)
		} else {
			ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
		}
	}
	return ev, nil
}

func sourceIP(remoteAddr string) string {
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil {
		return host
	}
	return remoteAddr
}

func writeResponse(w http.ResponseWriter, resp events.APIGatewayV2HTTPResponse) {
	h := w.Header()
	for k, v := range resp.Headers {
		h.Set(k, v)
	}
	for k, vs := range resp.MultiValueHeaders {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	for _, c := range resp.Cookies {
		h.Add("Set-Cookie", c)
	}
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		if b, err := base64.StdEncoding.DecodeString(resp.Body); err == nil {
			body = b
		}
	}
	status := resp.StatusCode
	if status == 0 {
		status = http.StatusOK
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	body, _ := json.Marshal(ErrorBody{Error: code, Message: msg})
	for k, v := range baseHeaders() {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
