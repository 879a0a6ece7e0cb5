package credentials_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/credentials"
	"github.com/credbroker/credbroker/internal/stsissuer"
)

func TestMalformedRequestsAreRefusedWithoutCalls(t *testing.T) {
	e := newEnv(t)
	pool := newLocalPool(t)
	const user = "92a3b4c5-d6e7-4f20-8134-8f9012345678"
	e.seed(t, user, map[string][]broker.Place{"p": places("genomics-raw")})
	svc := e.service(pool.verifier)
	bearer := "Bearer " + pool.token(t, user)

	const bad, notAllowed = "bad_request", "method_not_allowed"
	tests := []struct {
		name        string
		method      string
		target      string
		authz       string
		wantStatus  int
		wantCode    string
		wantMessage string
	}{
		{"unknown query parameter is 400", "GET", "/auths/resources?projects=p", bearer, 400, bad, `unknown query parameter "projects": only "project" is accepted`},
		{"extra query parameter beside project is 400", "GET", "/auths/resources?project=p&debug=1", bearer, 400, bad, `unknown query parameter "debug": only "project" is accepted`},
		{"repeated project is 400", "GET", "/auths/resources?project=p&project=q", bearer, 400, bad, `query parameter "project" must be given at most once`},
		{"project with a slash is 400", "GET", "/auths/resources?project=a%2Fb", bearer, 400, bad, `project id "a/b" has a character outside [A-Za-z0-9._:@=+-]`},
		{"empty project is 400", "GET", "/auths/resources?project=", bearer, 400, bad, "project id must be 1-128 characters"},
		{"project of 129 characters is 400", "GET", "/auths/resources?project=" + strings.Repeat("p", 129), bearer, 400, bad, "project id must be 1-128 characters"},
		{"semicolon in the query is 400", "GET", "/auths/resources?project=p;q", bearer, 400, bad, "malformed query string"},
		{"bad percent escape is 400", "GET", "/auths/resources?project=%zz", bearer, 400, bad, "malformed query string"},
		{"POST is 405", "POST", "/auths/resources", bearer, 405, notAllowed, `method "POST" is not allowed: use GET`},
		{"DELETE is 405", "DELETE", "/auths/resources", bearer, 405, notAllowed, `method "DELETE" is not allowed: use GET`},
		{"POST without a token is 405, not 401", "POST", "/auths/resources", "", 405, notAllowed, `method "POST" is not allowed: use GET`},
		{"unknown path is 400", "GET", "/auths/other", bearer, 400, bad, `unknown path "/auths/other": the endpoint is GET /auths/resources`},
		{"malformed request without a token is 400, not 401", "GET", "/auths/resources?x=1", "", 400, bad, `unknown query parameter "x": only "project" is accepted`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.resetCounts()
			r := do(t, svc, tt.method, tt.target, tt.authz)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", r.status, tt.wantStatus, r.body)
			}
			want := credentials.ErrorBody{Error: tt.wantCode, Message: tt.wantMessage}
			if diff := cmp.Diff(want, r.errorBody(t)); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
			if got := r.header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type %q", got)
			}
			if got, want := r.header.Get("Allow"), map[int]string{405: "GET"}[tt.wantStatus]; got != want {
				t.Errorf("Allow %q, want %q", got, want)
			}
			if got := r.header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", got)
			}
			if g, i := e.getPolicy.Load(), e.issue.Load(); g != 0 || i != 0 {
				t.Errorf("%d GetPolicy and %d AssumeRole calls, want none", g, i)
			}
		})
	}
}

// event is a minimal API Gateway HTTP API event for GET /auths/resources.
func event(headers map[string]string, rawQuery string, query map[string]string) events.APIGatewayV2HTTPRequest {
	return events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: "GET /auths/resources", RawPath: "/auths/resources",
		RawQueryString: rawQuery, QueryStringParameters: query, Headers: headers,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RequestID: "req-1",
			HTTP:      events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "GET", Path: "/auths/resources", SourceIP: "203.0.113.9"},
		},
	}
}

func TestHandleReadsTheEventAsAPIGatewaySendsIt(t *testing.T) {
	e := newEnv(t)
	pool := newLocalPool(t)
	const user = "a3b4c5d6-e7f8-4031-9245-901234567890"
	e.seed(t, user, map[string][]broker.Place{"p": places("genomics-raw"), "q": places("climate-models")})
	svc := e.service(pool.verifier)
	token := "Bearer " + pool.token(t, user)

	tests := []struct {
		name   string
		ev     events.APIGatewayV2HTTPRequest
		status int
	}{
		{"lowercase authorization header is read", event(map[string]string{"authorization": token}, "", nil), 200},
		{"mixed-case Authorization header is read", event(map[string]string{"AuThOrIzAtIoN": token}, "", nil), 200},
		{"lowercase bearer scheme is accepted", event(map[string]string{"authorization": "bearer" + strings.TrimPrefix(token, "Bearer")}, "", nil), 200},
		{"two Authorization headers are 401", event(map[string]string{"authorization": token, "Authorization": token}, "", nil), 401},
		{"project from queryStringParameters alone is read", event(map[string]string{"authorization": token}, "", map[string]string{"project": "q"}), 200},
		{"comma-joined repeated project is 400", event(map[string]string{"authorization": token}, "", map[string]string{"project": "p,q"}), 400},
		{"route key of a named stage is accepted", func() events.APIGatewayV2HTTPRequest {
			ev := event(map[string]string{"authorization": token}, "", nil)
			ev.RawPath = "/prod/auths/resources"
			return ev
		}(), 200},
		{"event without a method is 400", func() events.APIGatewayV2HTTPRequest {
			ev := event(map[string]string{"authorization": token}, "", nil)
			ev.RequestContext.HTTP.Method = ""
			return ev
		}(), 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := svc.Handle(t.Context(), tt.ev)
			if err != nil {
				t.Fatalf("Handle() error %v", err)
			}
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d; body %s", resp.StatusCode, tt.status, resp.Body)
			}
		})
	}
	t.Run("event without a request id is audited under a generated one", func(t *testing.T) {
		e.tier.drain(t)
		ev := event(map[string]string{"authorization": token}, "", nil)
		ev.RequestContext.RequestID = ""
		if resp, _ := svc.Handle(t.Context(), ev); resp.StatusCode != 200 {
			t.Fatalf("status %d; body %s", resp.StatusCode, resp.Body)
		}
		var d broker.CredentialsIssuedDetail
		if err := json.Unmarshal(e.events(t, 1)[0], &d); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(d.RequestID, "local-") {
			t.Errorf("request id %q, want a generated local-... id", d.RequestID)
		}
	})
}

func TestChallengeFollowsRFC6750(t *testing.T) {
	pool := newLocalPool(t)
	svc := &credentials.Service{
		Verifier: pool.verifier,
		Policies: policyReaderFunc(func(context.Context, string) (broker.UserPolicy, error) {
			t.Error("policy read")
			return broker.UserPolicy{}, nil
		}),
		Issuer: issuerFunc(func(context.Context, broker.IssueRequest) (broker.Credentials, error) {
			t.Error("issue")
			return broker.Credentials{}, nil
		}),
		Auditor: broker.AuditorFunc(func(context.Context, ...broker.AuditEvent) error { return nil }),
		Logger:  discard(),
	}
	tests := []struct {
		name  string
		authz string
		want  string
	}{
		{"no header gets a bare challenge", "", `Bearer realm="credbroker"`},
		{"basic credentials get a bare challenge", "Basic dXNlcjpwYXNzd29yZA==", `Bearer realm="credbroker"`},
		{"garbage token gets invalid_token with a description", "Bearer garbage",
			`Bearer realm="credbroker", error="invalid_token", error_description="malformed token"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := get(t, svc, "/auths/resources", tt.authz)
			if r.status != 401 {
				t.Fatalf("status %d, want 401", r.status)
			}
			if got := r.header.Get("WWW-Authenticate"); got != tt.want {
				t.Errorf("WWW-Authenticate %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSessionName(t *testing.T) {
	long := strings.Repeat("u", 70)
	tests := []struct {
		name string
		user string
		want string
	}{
		{"cognito sub is kept whole", "6c1f2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b", "cb-6c1f2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b"},
		{"id using every allowed character is kept", "a_b+c=d,e.f@g-h", "cb-a_b+c=d,e.f@g-h"},
		{"id of 61 characters just fits", strings.Repeat("x", 61), "cb-" + strings.Repeat("x", 61)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := credentials.SessionName(tt.user); got != tt.want {
				t.Errorf("SessionName(%q) = %q, want %q", tt.user, got, tt.want)
			}
		})
	}
	odd := []string{long, long + "x", "user/one", "user#one", "üser", strings.Repeat("x", 62)}
	seen := map[string]string{}
	for _, u := range odd {
		t.Run("id "+u[:min(len(u), 12)]+" gives a valid distinct name", func(t *testing.T) {
			got := credentials.SessionName(u)
			if !stsissuer.ValidSessionName(got) {
				t.Errorf("SessionName(%q) = %q is not a valid RoleSessionName", u, got)
			}
			if other, dup := seen[got]; dup {
				t.Errorf("SessionName(%q) = SessionName(%q) = %q", u, other, got)
			}
			seen[got] = u
		})
	}
}

func TestErrorAnswersCarryNoStoreHeaders(t *testing.T) {
	pool := newLocalPool(t)
	svc := &credentials.Service{Verifier: pool.verifier, Logger: discard(),
		Auditor: broker.AuditorFunc(func(context.Context, ...broker.AuditEvent) error { return nil })}
	r := get(t, svc, "/auths/resources", "")
	for name, want := range map[string]string{"Cache-Control": "no-store", "Pragma": "no-cache", "Content-Type": "application/json"} {
		if got := r.header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if r.status != http.StatusUnauthorized {
		t.Errorf("status %d, want 401", r.status)
	}
}
