package credentials_test

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/credbroker/credbroker/internal/credentials"
)

// capture returns a handle func that keeps the events it gets and answers
// with resp.
func capture(resp events.APIGatewayV2HTTPResponse) (credentials.HandleFunc, *[]events.APIGatewayV2HTTPRequest) {
	var got []events.APIGatewayV2HTTPRequest
	return func(_ context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		got = append(got, ev)
		return resp, nil
	}, &got
}

func TestNewHTTPHandlerBuildsThePayloadAPIGatewaySends(t *testing.T) {
	handle, got := capture(events.APIGatewayV2HTTPResponse{StatusCode: 200})
	srv := httptest.NewServer(credentials.NewHTTPHandler(handle))
	defer srv.Close()

	req, err := http.NewRequest(http.MethodGet, srv.URL+"/auths/resources?project=a&project=b&x=%2F", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer abc")
	req.Header.Add("X-Multi", "one")
	req.Header.Add("X-Multi", "two")
	req.Header.Set("User-Agent", "curl/8.5")
	req.Header.Set("Cookie", "a=1; b=2")
	for range 2 {
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if len(*got) != 2 {
		t.Fatalf("%d events, want 2", len(*got))
	}
	ev := (*got)[0]
	host := strings.TrimPrefix(srv.URL, "http://")
	want := events.APIGatewayV2HTTPRequest{
		Version:               "2.0",
		RouteKey:              "$default",
		RawPath:               "/auths/resources",
		RawQueryString:        "project=a&project=b&x=%2F",
		Cookies:               []string{"a=1", "b=2"},
		QueryStringParameters: map[string]string{"project": "a,b", "x": "/"},
		Headers: map[string]string{
			"authorization": "Bearer abc", "x-multi": "one,two", "user-agent": "curl/8.5",
			"accept-encoding": "gzip", "host": host,
		},
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey: "$default", AccountID: "anonymous", Stage: "$default", APIID: "local",
			DomainName: host, DomainPrefix: strings.Split(host, ".")[0],
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method: "GET", Path: "/auths/resources", Protocol: "HTTP/1.1", SourceIP: "127.0.0.1", UserAgent: "curl/8.5",
			},
		},
	}
	ignore := cmpopts.IgnoreFields(events.APIGatewayV2HTTPRequestContext{}, "RequestID", "Time", "TimeEpoch")
	if diff := cmp.Diff(want, ev, ignore); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}
	if id0, id1 := ev.RequestContext.RequestID, (*got)[1].RequestContext.RequestID; id0 == "" || id0 == id1 {
		t.Errorf("request ids %q and %q, want distinct non-empty ids", id0, id1)
	}
	if ev.RequestContext.TimeEpoch == 0 || ev.RequestContext.Time == "" {
		t.Error("event without a request time")
	}
}

func TestNewHTTPHandlerWritesTheAnswerBack(t *testing.T) {
	handle, _ := capture(events.APIGatewayV2HTTPResponse{
		StatusCode:        418,
		Headers:           map[string]string{"Content-Type": "application/json", "Retry-After": "2"},
		MultiValueHeaders: map[string][]string{"X-Multi": {"one", "two"}},
		Cookies:           []string{"session=x; Secure"},
		Body:              base64.StdEncoding.EncodeToString([]byte{0xff, 0x00, 'k'}),
		IsBase64Encoded:   true,
	})
	rec := httptest.NewRecorder()
	credentials.NewHTTPHandler(handle).ServeHTTP(rec, httptest.NewRequest("GET", "/auths/resources", nil))
	got := struct {
		Status int
		Header http.Header
		Body   []byte
	}{rec.Code, rec.Header(), rec.Body.Bytes()}
	want := struct {
		Status int
		Header http.Header
		Body   []byte
	}{418, http.Header{
		"Content-Type": {"application/json"}, "Retry-After": {"2"}, "X-Multi": {"one", "two"},
		"Set-Cookie": {"session=x; Secure"}, "Content-Length": {"3"},
	}, []byte{0xff, 0x00, 'k'}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("response (-want +got):\n%s", diff)
	}
}

func TestNewHTTPHandlerRefusesWhatAPIGatewayWould(t *testing.T) {
	handle, got := capture(events.APIGatewayV2HTTPResponse{StatusCode: 200})
	h := credentials.NewHTTPHandler(handle)

	t.Run("headers over the limit are 431", func(t *testing.T) {
		req := httptest.NewRequest("GET", "/auths/resources", nil)
		req.Header.Set("X-Big", strings.Repeat("b", credentials.MaxHeaderBytes))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusRequestHeaderFieldsTooLarge || !strings.Contains(rec.Body.String(), `"error":"bad_request"`) {
			t.Errorf("status %d body %s, want 431 bad_request", rec.Code, rec.Body)
		}
	})
	t.Run("body over the limit is 413", func(t *testing.T) {
		req := httptest.NewRequest("POST", "/auths/resources", strings.NewReader(strings.Repeat("x", credentials.MaxBodyBytes+1)))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d, want 413", rec.Code)
		}
	})
	if len(*got) != 0 {
		t.Errorf("handle called %d times for refused requests", len(*got))
	}
	t.Run("binary body is passed base64-encoded", func(t *testing.T) {
		req := httptest.NewRequest("POST", "/auths/resources", strings.NewReader("\xff\xfe"))
		h.ServeHTTP(httptest.NewRecorder(), req)
		ev := (*got)[len(*got)-1]
		if !ev.IsBase64Encoded || ev.Body != base64.StdEncoding.EncodeToString([]byte("\xff\xfe")) {
			t.Errorf("body %q base64 %v", ev.Body, ev.IsBase64Encoded)
		}
	})
}

func TestNewHTTPHandlerTurnsHandlerFailuresInto503(t *testing.T) {
	tests := []struct {
		name   string
		handle credentials.HandleFunc
	}{
		{"handler error is 503", func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
			return events.APIGatewayV2HTTPResponse{}, io.ErrUnexpectedEOF
		}},
		{"handler panic is 503", func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
			panic("bug")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			credentials.NewHTTPHandler(tt.handle).ServeHTTP(rec, httptest.NewRequest("GET", "/auths/resources", nil))
			if rec.Code != 503 || rec.Header().Get("Retry-After") != "2" || !strings.Contains(rec.Body.String(), `"error":"unavailable"`) {
				t.Errorf("status %d headers %v body %s, want 503 unavailable with Retry-After", rec.Code, rec.Header(), rec.Body)
			}
		})
	}
}
