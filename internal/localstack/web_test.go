package localstack

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/samtemplate"
)

// demoDir is a built page as `make web` leaves it, with a secret beside it
// (what a traversal would reach), a dot file, a subfolder and symbolic links
// out of it and within it.
func demoDir(t *testing.T) (dir, secret string) {
	t.Helper()
	base := t.TempDir()
	dir = filepath.Join(base, "demo")
	for name, body := range map[string]string{
		"index.html":          "<!doctype html><title>demo</title>",
		"app.js":              "console.log(1)",
		"style.css":           "body{}",
		"notes.bin":           "\x00\x01",
		".env":                "SECRET=dot",
		"assets/logo.svg":     "<svg/>",
		"assets/.hidden/x.js": "hidden",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	secret = filepath.Join(base, "stack.json")
	if err := os.WriteFile(secret, []byte(`{"secret":true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, "leak.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("app.js", filepath.Join(dir, "alias.js")); err != nil {
		t.Fatal(err)
	}
	return dir, secret
}

var testInfo = Info{
	Region: "us-east-1", AWSEndpoint: "http://127.0.0.1:4566", APIURL: "http://127.0.0.1:8080",
	UserPoolID: "us-east-1_AbC", UserPoolClientID: "client123", MembershipTable: "m", PolicyTable: "p",
}

func webServer(t *testing.T) *httptest.Server {
	t.Helper()
	dir, _ := demoDir(t)
	h, err := openWeb(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if err := h.configure(testInfo); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// rawGet sends the request target as given: Go's client would clean some
// of these paths before sending them.
func rawGet(t *testing.T, srv *httptest.Server, target string) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET "+target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestTheDemoPageServesItsFilesWithTheirTypesAndNoCaching(t *testing.T) {
	srv := webServer(t)
	tests := []struct {
		name, path, ctype, body string
	}{
		{"the root is index.html", "/", "text/html; charset=utf-8", "<!doctype html><title>demo</title>"},
		{"index.html by name", "/index.html", "text/html; charset=utf-8", "<!doctype html><title>demo</title>"},
		{"a script is JavaScript", "/app.js", "text/javascript; charset=utf-8", "console.log(1)"},
		{"a style sheet is CSS", "/style.css", "text/css; charset=utf-8", "body{}"},
		{"a file in a subfolder", "/assets/logo.svg", "image/svg+xml", "<svg/>"},
		{"a link within the folder is followed", "/alias.js", "text/javascript; charset=utf-8", "console.log(1)"},
		{"an unknown kind is never rendered", "/notes.bin", "application/octet-stream", "\x00\x01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Get(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || string(body) != tt.body {
				t.Fatalf("%d %q, want 200 %q", resp.StatusCode, body, tt.body)
			}
			for k, want := range map[string]string{"Content-Type": tt.ctype, "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"} {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("%s %q, want %q", k, got, want)
				}
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self' http://127.0.0.1:8080 http://127.0.0.1:4566;") {
				t.Errorf("Content-Security-Policy %q does not let the page reach the endpoint and moto, and nothing else", csp)
			}
		})
	}
}

func TestTheDemoPageGetsAConfigForThisStack(t *testing.T) {
	srv := webServer(t)
	resp, err := http.Get(srv.URL + "/config.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "application/json" {
		t.Fatalf("%d %s", resp.StatusCode, ct)
	}
	var got map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"apiUrl": "http://127.0.0.1:8080", "region": "us-east-1", "userPoolId": "us-east-1_AbC",
		"userPoolClientId": "client123", "awsEndpoint": "http://127.0.0.1:4566", "signInFlow": "USER_PASSWORD_AUTH",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config.json (-want +got):\n%s", diff)
	}
}

func TestTheDemoPageServesNothingElse(t *testing.T) {
	srv := webServer(t)
	for _, tt := range []struct{ name, target string }{
		{"a parent folder is not reachable", "/../stack.json"},
		{"an escaped parent folder is not reachable", "/%2e%2e/stack.json"},
		{"an escaped slash does not make a parent reachable", "/..%2fstack.json"},
		{"a parent folder further down is not reachable", "/assets/../../stack.json"},
		{"a backslash is not a separator", "/..%5cstack.json"},
		{"a link out of the folder is not followed", "/leak.json"},
		{"a dot file is not served", "/.env"},
		{"a dot folder is not served", "/assets/.hidden/x.js"},
		{"a folder is not listed", "/assets/"},
		{"a folder without its slash is not listed", "/assets"},
		{"a missing file", "/nope.js"},
		{"an empty element", "/assets//logo.svg"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, body := rawGet(t, srv, tt.target)
			if status != http.StatusNotFound || strings.Contains(body, "secret") || strings.Contains(body, "logo.svg") {
				t.Errorf("GET %s: %d %q, want 404 with nothing of the file or folder", tt.target, status, body)
			}
		})
	}
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions} {
		t.Run(method+" is not allowed", func(t *testing.T) {
			req, _ := http.NewRequest(method, srv.URL+"/index.html", strings.NewReader("x"))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("%d Allow %q, want 405 Allow \"GET, HEAD\"", resp.StatusCode, resp.Header.Get("Allow"))
			}
		})
	}
	t.Run("HEAD answers without a body", func(t *testing.T) {
		resp, err := http.Head(srv.URL + "/app.js")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.Header.Get("Content-Length") != "14" {
			t.Errorf("%d, %d bytes, Content-Length %q", resp.StatusCode, len(body), resp.Header.Get("Content-Length"))
		}
	})
}

func TestAFolderWithoutAPageIsRefused(t *testing.T) {
	if _, err := openWeb(t.TempDir()); err == nil || !strings.Contains(err.Error(), "make web") {
		t.Errorf("openWeb on an empty folder: %v, want an error saying to build the page", err)
	}
}

func TestCorsAnswersThePagesOriginOnly(t *testing.T) {
	const page = "http://127.0.0.1:8081"
	cors := samtemplate.Cors{AllowOrigins: []string{page}, AllowMethods: []string{"GET"},
		AllowHeaders: []string{"Authorization", "Cache-Control"}, ExposeHeaders: []string{"Retry-After", "WWW-Authenticate"}, MaxAge: 600}
	// The function: 405 for anything but GET (docs/contract.md
	// "Credential endpoint"), 401 with a challenge for a GET without a token.
	var reached []string
	fn := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached = append(reached, r.Method)
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET")
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
	})
	h := withCORS(cors, fn)
	preflight := map[string]string{"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization,cache-control"}
	allowed := map[string]string{
		"Access-Control-Allow-Origin": page, "Access-Control-Allow-Methods": "GET",
		"Access-Control-Allow-Headers": "Authorization, Cache-Control", "Access-Control-Max-Age": "600", "Vary": "Origin",
	}
	onAnswers := map[string]string{"Access-Control-Allow-Origin": page, "Access-Control-Expose-Headers": "Retry-After, WWW-Authenticate", "Vary": "Origin"}
	tests := []struct {
		name, method, origin string
		headers              map[string]string
		status               int
		want                 map[string]string // every Access-Control-* header and Vary
		reachesFunction      bool
	}{
		{"a preflight from the page is allowed before the function", http.MethodOptions, page, preflight, http.StatusNoContent, allowed, false},
		{"a preflight from another origin gets no CORS headers", http.MethodOptions, "http://evil.example", preflight, http.StatusNoContent, map[string]string{"Vary": "Origin"}, false},
		{"a preflight from a port of the page's host gets no CORS headers", http.MethodOptions, "http://127.0.0.1:8082", preflight, http.StatusNoContent, map[string]string{"Vary": "Origin"}, false},
		{"an error to the page carries CORS and exposes its challenge", http.MethodGet, page, nil, http.StatusUnauthorized, onAnswers, true},
		{"an answer to another origin has no CORS headers", http.MethodGet, "http://evil.example", nil, http.StatusUnauthorized, map[string]string{"Vary": "Origin"}, true},
		{"an answer without an origin has no CORS headers", http.MethodGet, "", nil, http.StatusUnauthorized, map[string]string{"Vary": "Origin"}, true},
		{"an OPTIONS that is no preflight reaches the function", http.MethodOptions, page, nil, http.StatusMethodNotAllowed, onAnswers, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reached = nil
			req := httptest.NewRequest(tt.method, "/auths/resources", nil)
			if tt.origin != "" {
				req.Header.Set("Origin", tt.origin)
			}
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Errorf("status %d, want %d", rec.Code, tt.status)
			}
			got := map[string]string{}
			for k := range rec.Header() {
				if strings.HasPrefix(k, "Access-Control-") || k == "Vary" {
					got[k] = rec.Header().Get(k)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("headers (-want +got):\n%s", diff)
			}
			if (len(reached) > 0) != tt.reachesFunction {
				t.Errorf("function reached: %v, want %v", reached, tt.reachesFunction)
			}
		})
	}
}
