package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/testkit/fakeclock"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/client"
)

func TestNewRefusesUnsafeOrInvalidURLs(t *testing.T) {
	for _, u := range []string{"http://api.example.com", "ftp://127.0.0.1", "127.0.0.1:8080", "https://api.example.com?x=1", "https://user:pw@api.example.com", ""} {
		if _, err := client.New(u, client.StaticToken("t")); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
	for _, u := range []string{"https://api.example.com", "https://api.example.com/prod/", "http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080"} {
		if _, err := client.New(u, client.StaticToken("t")); err != nil {
			t.Errorf("New(%q): %v", u, err)
		}
	}
	if _, err := client.New("https://api.example.com", nil); err == nil {
		t.Error("New accepted a nil TokenSource")
	}
}

func TestTheRequestCarriesTheTokenAndTheProject(t *testing.T) {
	clock := newFakeClock()
	f := newFakeEndpoint(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, 200, body("v1", clock.Now().Add(15*time.Minute), set{"K1", []string{"b"}}))
	})
	c := newClient(t, f, client.StaticToken("tok-123"), clock, func(o *client.Options) { o.UserAgent = "credbroker-test/1" })
	if _, err := c.Answer(t.Context(), "team:a@b=c+d"); err != nil {
		t.Fatal(err)
	}
	r := f.requests()[0]
	if got := r.Header.Get("Authorization"); got != "Bearer tok-123" {
		t.Errorf("Authorization %q", got)
	}
	if got := r.URL.Query()["project"]; !slices.Equal(got, []string{"team:a@b=c+d"}) {
		t.Errorf("project query %q (raw %q)", got, r.URL.RawQuery)
	}
	if got := r.Header.Get("User-Agent"); got != "credbroker-test/1" {
		t.Errorf("User-Agent %q", got)
	}
	if got := r.Header.Get("Cache-Control"); got != "" {
		t.Errorf("a plain fetch sent Cache-Control %q", got)
	}
}

func TestAnInvalidProjectIsRefusedWithoutARequest(t *testing.T) {
	f := newFakeEndpoint(t, func(w http.ResponseWriter, r *http.Request, n int) { writeError(w, 500, "x", "") })
	c := newClient(t, f, client.StaticToken("t"), newFakeClock())
	for _, p := range []string{"a b", "a&project=b", strings.Repeat("p", 129), "p/q"} {
		if _, err := c.Answer(t.Context(), p); !errors.Is(err, client.ErrBadRequest) {
			t.Errorf("project %q: %v, want ErrBadRequest", p, err)
		}
	}
	if n := f.count(); n != 0 {
		t.Errorf("%d requests sent for invalid projects", n)
	}
}

func TestErrorAnswersAreTypedAndNameTheTarget(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		code     string
		msg      string
		is       error
		contains []string
	}{
		{"403 no_access names the bucket", 403, "no_access", "no grants", client.ErrNoAccess, []string{"s3://genomics-raw/", "403", "no_access", "no grants"}},
		{"400 bad_request carries the server's message", 400, "bad_request", `unknown query parameter "x"`, client.ErrBadRequest, []string{"400", "bad_request", `unknown query parameter "x"`}},
		{"500 carries status and code", 500, "internal", "boom", nil, []string{"500", "internal", "boom"}},
		{"418 without a body carries the status", 418, "", "", nil, []string{"418"}},
		{"a hostile message is cleaned", 400, "bad_request", "line\x1b[31m\nnext", client.ErrBadRequest, []string{"line [31m next"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeEndpoint(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if tt.code == "" {
					w.WriteHeader(tt.status)
					return
				}
				writeError(w, tt.status, tt.code, tt.msg)
			})
			c := newClient(t, f, client.StaticToken("t"), newFakeClock())
			_, err := c.CredentialsProvider("genomics-raw").Retrieve(t.Context())
			if err == nil {
				t.Fatal("no error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			var ee *client.EndpointError
			if !errors.As(err, &ee) || ee.Status != tt.status || ee.Code != tt.code {
				t.Errorf("errors.As EndpointError: %+v from %v", ee, err)
			}
			for _, s := range tt.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
			if tt.status == 403 {
				var ae *client.AccessError
				if !errors.As(err, &ae) || ae.Target.Bucket != "genomics-raw" {
					t.Errorf("errors.As AccessError: %+v", ae)
				}
			}
			if n := f.count(); n != 1 {
				t.Errorf("%d requests, want 1 (no retry of %d)", n, tt.status)
			}
		})
	}
}

func TestGarbageAnswersAreRefused(t *testing.T) {
	exp := newFakeClock().Now().Add(15 * time.Minute)
	good := string(body("v1", exp, set{"K1", []string{"b"}}))
	tests := []struct{ name, body string }{
		{"not JSON", "<html>gateway</html>"},
		{"a JSON array", "[]"},
		{"empty", ""},
		{"truncated", good[:len(good)/2]},
		{"data after the object", good + `{"userId":"x"}`},
		{"no credential sets", strings.Replace(good, `"credentialSets":[`, `"other":[`, 1)},
		{"no policy version", strings.Replace(good, `"policyVersion":"v1"`, `"policyVersion":""`, 1)},
		{"no user", strings.Replace(good, `"userId":"user-1"`, `"userId":""`, 1)},
		{"a set without secret", strings.Replace(good, `"secretAccessKey":"secret-K1"`, `"secretAccessKey":""`, 1)},
		{"a set without grants", strings.Replace(good, `"grants":[`, `"grantz":[`, 1)},
		{"an unknown access level", strings.Replace(good, `"access":"read"`, `"access":"admin"`, 1)},
		{"a bucket with a wildcard", strings.Replace(good, `"bucket":"b"`, `"bucket":"b*"`, 1)},
		{"an expiration that is not RFC 3339", strings.Replace(good, exp.Format(time.RFC3339), "tomorrow", 1)},
		{"a wrong type", strings.Replace(good, `"userId":"user-1"`, `"userId":7`, 1)},
		{"expired on arrival", string(body("v1", exp.Add(-time.Hour), set{"K1", []string{"b"}}))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeEndpoint(t, func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 200, []byte(tt.body)) })
			c := newClient(t, f, client.StaticToken("t"), newFakeClock())
			_, err := c.Answer(t.Context(), "")
			if !errors.Is(err, client.ErrMalformedAnswer) {
				t.Fatalf("Answer: %v, want ErrMalformedAnswer", err)
			}
			if strings.Contains(err.Error(), "secret-K1") || strings.Contains(err.Error(), "token-K1") {
				t.Errorf("error quotes a secret: %v", err)
			}
		})
	}
}

func TestUnknownFieldsAreIgnored(t *testing.T) {
	clock := newFakeClock()
	b := body("v1", clock.Now().Add(15*time.Minute), set{"K1", []string{"b"}})
	b = []byte(strings.Replace(string(b), `"userId"`, `"newField":{"x":[1]},"userId"`, 1))
	f := newFakeEndpoint(t, func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 200, b) })
	if _, err := newClient(t, f, client.StaticToken("t"), clock).Answer(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
}

func TestAGrantsEndIsDecodedAndAnOpenGrantHasNone(t *testing.T) {
	clock := newFakeClock()
	end := clock.Now().Add(40 * time.Minute)
	b := body("v1", clock.Now().Add(time.Hour), set{"K1", []string{"ends@" + end.Format(time.RFC3339), "open"}})
	f := newFakeEndpoint(t, func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 200, b) })
	a, err := newClient(t, f, client.StaticToken("t"), clock).Answer(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]time.Time{}
	for _, g := range a.CredentialSets[0].Grants {
		got[g.Bucket] = g.ExpiresAt
	}
	if diff := cmp.Diff(map[string]time.Time{"ends": end, "open": {}}, got); diff != "" {
		t.Errorf("grants' ends (-want +got):\n%s", diff)
	}
}

func TestA401RefreshesTheTokenOnceAndRetriesOnce(t *testing.T) {
	tests := []struct {
		name          string
		accept        string // the token the endpoint accepts
		next          []string
		refreshErr    error
		wantErr       error
		wantRequests  int
		wantRefreshes int
	}{
		{"an expired token is refreshed and the answer follows", "fresh", []string{"fresh"}, nil, nil, 2, 1},
		{"a token refused after refresh is ErrInvalidToken", "never", []string{"also-bad", "unused"}, nil, client.ErrInvalidToken, 2, 1},
		{"a failed refresh ends it", "fresh", nil, errors.New("refresh token revoked"), client.ErrInvalidToken, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			f := newFakeEndpoint(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if bearer(r) != tt.accept {
					w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
					writeError(w, 401, "invalid_token", "token expired")
					return
				}
				writeJSON(w, 200, body("v1", clock.Now().Add(15*time.Minute), set{"K1", []string{"b"}}))
			})
			tokens := &fakeTokens{token: "stale", next: tt.next, err: tt.refreshErr}
			_, err := newClient(t, f, tokens, clock).Answer(t.Context(), "")
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("Answer: %v, want %v", err, tt.wantErr)
			}
			if tt.refreshErr != nil && !errors.Is(err, tt.refreshErr) {
				t.Errorf("error %v does not wrap the refresh error", err)
			}
			if n := f.count(); n != tt.wantRequests {
				t.Errorf("%d requests, want %d", n, tt.wantRequests)
			}
			if tokens.refreshes != tt.wantRefreshes {
				t.Errorf("%d refreshes, want %d", tokens.refreshes, tt.wantRefreshes)
			}
		})
	}
}

func TestUnavailableIsRetriedAfterRetryAfterWithinBounds(t *testing.T) {
	tests := []struct {
		name         string
		fail         int // answers before the 200
		status       int
		retryAfter   string
		opts         func(*client.Options)
		wantErr      error
		wantSleeps   []time.Duration
		wantRequests int
	}{
		{name: "two 503s then the answer", fail: 2, status: 503, retryAfter: "2",
			wantSleeps: []time.Duration{2 * time.Second, 2 * time.Second}, wantRequests: 3},
		{name: "an HTTP-date Retry-After", fail: 1, status: 503, retryAfter: "Wed, 01 May 2030 12:00:07 GMT",
			wantSleeps: []time.Duration{7 * time.Second}, wantRequests: 2},
		{name: "429 without Retry-After waits the backoff of the first retry", fail: 1, status: 429,
			wantSleeps: []time.Duration{time.Second}, wantRequests: 2},
		{name: "429s without Retry-After back off further each retry", fail: 3, status: 429,
			wantSleeps: []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}, wantRequests: 4},
		{name: "a 429 with Retry-After waits what it says", fail: 1, status: 429, retryAfter: "4",
			wantSleeps: []time.Duration{4 * time.Second}, wantRequests: 2},
		{name: "429s beyond MaxRetries are unavailable", fail: 10, status: 429, wantErr: client.ErrUnavailable,
			wantSleeps: []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}, wantRequests: 4},
		{name: "more 503s than MaxRetries (3)", fail: 10, status: 503, retryAfter: "1", wantErr: client.ErrUnavailable,
			wantSleeps: []time.Duration{time.Second, time.Second, time.Second}, wantRequests: 4},
		{name: "MaxRetries 1", fail: 10, status: 503, retryAfter: "1", opts: func(o *client.Options) { o.MaxRetries = 1 },
			wantErr: client.ErrUnavailable, wantSleeps: []time.Duration{time.Second}, wantRequests: 2},
		{name: "no retries", fail: 10, status: 503, retryAfter: "1", opts: func(o *client.Options) { o.MaxRetries = -1 },
			wantErr: client.ErrUnavailable, wantRequests: 1},
		{name: "a Retry-After beyond MaxRetryWait is not waited for", fail: 10, status: 503, retryAfter: "3600",
			wantErr: client.ErrUnavailable, wantRequests: 1},
		{name: "the total wait is capped", fail: 10, status: 503, retryAfter: "20",
			opts: func(o *client.Options) { o.MaxRetries = 10 }, wantErr: client.ErrUnavailable,
			wantSleeps: []time.Duration{20 * time.Second}, wantRequests: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			f := newFakeEndpoint(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if n < tt.fail {
					if tt.retryAfter != "" {
						w.Header().Set("Retry-After", tt.retryAfter)
					}
					writeError(w, tt.status, "unavailable", "try later")
					return
				}
				writeJSON(w, 200, body("v1", clock.Now().Add(15*time.Minute), set{"K1", []string{"b"}}))
			})
			// A backoff that tells the retries apart; the default's
			// bounds are TestDefaultBackoffOfA429DoublesUnderItsCeiling's.
			opts := []func(*client.Options){func(o *client.Options) {
				o.Backoff = func(retry int) time.Duration { return time.Duration(retry) * time.Second }
			}}
			if tt.opts != nil {
				opts = append(opts, tt.opts)
			}
			c := newClient(t, f, client.StaticToken("t"), clock, opts...)
			_, err := c.Answer(t.Context(), "")
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if d := cmp.Diff(tt.wantSleeps, clock.Sleeps()); d != "" {
				t.Errorf("waits (-want +got):\n%s", d)
			}
			if n := f.count(); n != tt.wantRequests {
				t.Errorf("%d requests, want %d", n, tt.wantRequests)
			}
			var ee *client.EndpointError
			if tt.wantErr == client.ErrUnavailable && tt.retryAfter != "" && (!errors.As(err, &ee) || ee.RetryAfter == 0) {
				t.Errorf("the final error does not carry Retry-After: %v", err)
			}
		})
	}
}

// Without Retry-After the default backoff is random (clients of one
// throttled wave spread out) under a ceiling of 1 s that doubles per retry.
func TestDefaultBackoffOfA429DoublesUnderItsCeiling(t *testing.T) {
	clock := newFakeClock()
	f := newFakeEndpoint(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeError(w, 429, "throttled", "Too Many Requests")
	})
	c := newClient(t, f, client.StaticToken("t"), clock, func(o *client.Options) { o.MaxRetries = 4 })
	if _, err := c.Answer(t.Context(), ""); !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	sleeps := clock.Sleeps()
	if len(sleeps) != 4 {
		t.Fatalf("waits %v, want 4", sleeps)
	}
	for i, d := range sleeps {
		if ceil := time.Second << i; d <= 0 || d > ceil {
			t.Errorf("wait %d is %v, want within (0, %v]", i+1, d, ceil)
		}
	}
}

// The caller is context-aware, and a fetch nobody waits for any more
// stops waiting to retry.
func TestAFetchStopsWhenItsLastCallerGivesUp(t *testing.T) {
	clock := newFakeClock()
	ctx, cancel := context.WithCancel(t.Context())
	f := newFakeEndpoint(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Retry-After", "5")
		writeError(w, 503, "unavailable", "try later")
	})
	stopped := make(chan error, 1)
	c := newClient(t, f, client.StaticToken("t"), clock, func(o *client.Options) {
		o.Sleep = func(sctx context.Context, d time.Duration) error {
			cancel() // the caller gives up while the fetch waits
			<-sctx.Done()
			stopped <- sctx.Err()
			return sctx.Err()
		}
	})
	if _, err := c.Answer(ctx, ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("Answer = %v, want context.Canceled", err)
	}
	if err := <-stopped; !errors.Is(err, context.Canceled) {
		t.Errorf("the abandoned fetch's wait ended with %v", err)
	}
	if n := f.count(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestAnAnswerIsReusedUntilTheMarginBeforeItExpires(t *testing.T) {
	tests := []struct {
		name     string
		lifetime time.Duration
		margin   time.Duration
		reuseFor time.Duration // reused just before, refetched at
		// grantEnds, when set, ends the grant this long after the first
		// answer (the answer's expiresAt).
		grantEnds time.Duration
	}{
		{"a 15-minute answer with the default margin", 15 * time.Minute, 0, 10 * time.Minute, 0},
		{"a 15-minute answer with a 1-minute margin", 15 * time.Minute, time.Minute, 14 * time.Minute, 0},
		{"an answer with 4 minutes left is kept half of them", 4 * time.Minute, 0, 2 * time.Minute, 0},
		{"a one-hour answer with the default margin", time.Hour, 0, 55 * time.Minute, 0},
		{"a grant that ends first is refetched at its end", time.Hour, 0, 20 * time.Minute, 20 * time.Minute},
		{"a grant that ends after the margin changes nothing", 15 * time.Minute, 0, 10 * time.Minute, 14 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			grant := "b"
			if tt.grantEnds > 0 {
				grant += "@" + clock.Now().Add(tt.grantEnds).Format(time.RFC3339)
			}
			f := newFakeEndpoint(t, func(w http.ResponseWriter, r *http.Request, n int) {
				writeJSON(w, 200, body("v1", clock.Now().Add(tt.lifetime), set{"K" + string(rune('A'+n)), []string{grant}}))
			})
			c := newClient(t, f, client.StaticToken("t"), clock, func(o *client.Options) { o.Margin = tt.margin })
			p := c.CredentialsProvider("b")
			first, err := p.Retrieve(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if !first.CanExpire || !first.Expires.Equal(clock.Now().Add(tt.lifetime)) || first.Source != client.CredentialsSource {
				t.Errorf("credentials %+v: want expiry at the set's expiration", first)
			}
			clock.Add(tt.reuseFor - time.Second)
			if again, _ := p.Retrieve(t.Context()); again.AccessKeyID != first.AccessKeyID || f.count() != 1 {
				t.Fatalf("refetched %s before the margin (%d requests)", again.AccessKeyID, f.count())
			}
			clock.Add(time.Second)
			next, err := p.Retrieve(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if next.AccessKeyID == first.AccessKeyID || f.count() != 2 {
				t.Errorf("not refetched at the margin: key %s, %d requests", next.AccessKeyID, f.count())
			}
		})
	}
}

func TestConcurrentCallersShareOneFetch(t *testing.T) {
	clock := newFakeClock()
	release := make(chan struct{})
	f := newFakeEndpoint(t, func(w http.ResponseWriter, r *http.Request, n int) {
		<-release
		writeJSON(w, 200, body("v1", clock.Now().Add(15*time.Minute), set{"K1", []string{"a"}}, set{"K2", []string{"b"}}))
	})
	c := newClient(t, f, client.StaticToken("t"), clock)
	var wg sync.WaitGroup
	keys := make([]string, 64)
	errs := make([]error, 64)
	for i := range keys {
		wg.Go(func() {
			bucket := []string{"a", "b"}[i%2]
			creds, err := c.CredentialsProvider(bucket).Retrieve(t.Context())
			keys[i], errs[i] = creds.AccessKeyID, err
		})
	}
	close(release)
	wg.Wait()
	for i := range keys {
		if want := []string{"K1", "K2"}[i%2]; errs[i] != nil || keys[i] != want {
			t.Errorf("caller %d: %q, %v; want %s", i, keys[i], errs[i], want)
		}
	}
	if n := f.count(); n != 1 {
		t.Errorf("%d requests for 64 concurrent callers, want 1", n)
	}
}

func TestACallerThatGivesUpDoesNotCancelTheFetchOthersWaitFor(t *testing.T) {
	clock := newFakeClock()
	release := make(chan struct{})
	arrived := make(chan struct{})
	f := newFakeEndpoint(t, func(w http.ResponseWriter, r *http.Request, n int) {
		close(arrived)
		<-release
		writeJSON(w, 200, body("v1", clock.Now().Add(15*time.Minute), set{"K1", []string{"a"}}))
	})
	c := newClient(t, f, client.StaticToken("t"), clock)
	ctx, cancel := context.WithCancel(t.Context())
	quitter := make(chan error)
	go func() {
		_, err := c.Answer(ctx, "")
		quitter <- err
	}()
	<-arrived
	stayer := make(chan error)
	go func() {
		_, err := c.Answer(t.Context(), "")
		stayer <- err
	}()
	// The stayer has joined once the fetch it waits for is the only one:
	// poll until a third caller's Answer would join rather than start one.
	for c.Waiting("") < 2 {
		runtime.Gosched()
	}
	cancel()
	if err := <-quitter; !errors.Is(err, context.Canceled) {
		t.Fatalf("the caller that gave up got %v", err)
	}
	close(release)
	if err := <-stayer; err != nil {
		t.Fatalf("the caller that stayed got %v", err)
	}
	if n := f.count(); n != 1 {
		t.Errorf("%d requests: the fetch was not shared", n)
	}
}

// versionedEndpoint answers with the version set (first "v1"); each
// answer's one set has the key "<version>-<project>".
func versionedEndpoint(t *testing.T, clock *fakeclock.Clock) (*fakeEndpoint, func(string)) {
	var mu sync.Mutex
	version := "v1"
	f := newFakeEndpoint(t, func(w http.ResponseWriter, r *http.Request, n int) {
		mu.Lock()
		v := version
		mu.Unlock()
		writeJSON(w, 200, body(v, clock.Now().Add(15*time.Minute), set{v + "-" + r.URL.Query().Get("project"), []string{"b"}}))
	})
	return f, func(v string) {
		mu.Lock()
		defer mu.Unlock()
		version = v
	}
}

func TestANewPolicyVersionDropsEveryAnswerOfTheOldOne(t *testing.T) {
	clock := newFakeClock()
	f, setVersion := versionedEndpoint(t, clock)
	c := newClient(t, f, client.StaticToken("t"), clock)
	for _, p := range []string{"", "p1", "p2"} {
		if _, err := c.Answer(t.Context(), p); err != nil {
			t.Fatal(err)
		}
	}
	setVersion("v2")
	// Cached: no request, still v1.
	if a, _ := c.Answer(t.Context(), "p1"); a.PolicyVersion != "v1" || f.count() != 3 {
		t.Fatalf("p1 = %s after %d requests", a.PolicyVersion, f.count())
	}
	if a, err := c.Refresh(t.Context(), ""); err != nil || a.PolicyVersion != "v2" {
		t.Fatalf("Refresh = %v, %v", a, err)
	}
	for _, p := range []string{"p1", "p2"} {
		a, err := c.Answer(t.Context(), p)
		if err != nil || a.PolicyVersion != "v2" {
			t.Errorf("project %s after the change: %v, %v", p, a, err)
		}
	}
	if n := f.count(); n != 6 {
		t.Errorf("%d requests, want 6: %s", n, describe(f.requests()))
	}
}

// An answer that was in flight while another one established a new
// version may be the older of the two: it is fetched again rather than
// allowed to drop the newer one.
func TestAnAnswerThatRacedANewVersionIsFetchedAgain(t *testing.T) {
	clock := newFakeClock()
	slowArrived := make(chan struct{})
	releaseSlow := make(chan struct{})
	f := newFakeEndpoint(t, func(w http.ResponseWriter, r *http.Request, n int) {
		exp := clock.Now().Add(15 * time.Minute)
		project := r.URL.Query().Get("project")
		switch {
		case project == "slow" && n == 1:
			close(slowArrived)
			<-releaseSlow
			writeJSON(w, 200, body("v1", exp, set{"OLD", []string{"b"}})) // read before the change
		case n == 0:
			writeJSON(w, 200, body("v1", exp, set{"V1", []string{"b"}}))
		default:
			writeJSON(w, 200, body("v2", exp, set{"V2-" + project, []string{"b"}}))
		}
	})
	c := newClient(t, f, client.StaticToken("t"), clock)
	if _, err := c.Answer(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	slow := make(chan *client.Answer)
	go func() {
		a, err := c.Answer(t.Context(), "slow")
		if err != nil {
			t.Error(err)
		}
		slow <- a
	}()
	<-slowArrived
	if a, err := c.Refresh(t.Context(), ""); err != nil || a.PolicyVersion != "v2" {
		t.Fatalf("Refresh = %v, %v", a, err)
	}
	close(releaseSlow)
	if a := <-slow; a == nil || a.PolicyVersion != "v2" || a.CredentialSets[0].AccessKeyID != "V2-slow" {
		t.Fatalf("the raced answer was served: %+v", a)
	}
	// The newer answer of all grants is still cached.
	if a, _ := c.Answer(t.Context(), ""); a.PolicyVersion != "v2" || f.count() != 4 {
		t.Errorf("all grants: %s after %d requests (%s)", a.PolicyVersion, f.count(), describe(f.requests()))
	}
}

func TestInvalidateAsksForFreshCredentialsOnce(t *testing.T) {
	clock := newFakeClock()
	f := newFakeEndpoint(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, 200, body("v1", clock.Now().Add(15*time.Minute), set{"K" + string(rune('A'+n)), []string{"b"}}))
	})
	c := newClient(t, f, client.StaticToken("t"), clock)
	p := c.CredentialsProvider("b")
	if _, err := p.Retrieve(t.Context()); err != nil {
		t.Fatal(err)
	}
	c.Invalidate()
	for range 2 {
		if creds, err := p.Retrieve(t.Context()); err != nil || creds.AccessKeyID != "KB" {
			t.Fatalf("after Invalidate: %v, %v", creds.AccessKeyID, err)
		}
	}
	got := []string{}
	for _, r := range f.requests() {
		got = append(got, r.Header.Get("Cache-Control"))
	}
	if d := cmp.Diff([]string{"", "no-cache"}, got); d != "" {
		t.Errorf("Cache-Control of the requests (-want +got):\n%s", d)
	}
}

// Reload goes past the Client's cache but not the endpoint's: no
// Cache-Control, and its answer is the one cached afterwards.
func TestReloadRefetchesWithoutAskingForAMint(t *testing.T) {
	clock := newFakeClock()
	f := newFakeEndpoint(t, func(w http.ResponseWriter, r *http.Request, n int) {
		grants := []string{"a"}
		if n > 0 {
			grants = append(grants, "b") // granted after the first answer
		}
		writeJSON(w, 200, body(fmt.Sprintf("v%d", n+1), clock.Now().Add(15*time.Minute), set{"K" + string(rune('A'+n)), grants}))
	})
	c := newClient(t, f, client.StaticToken("t"), clock)
	if _, err := c.CredentialsProvider("b").Retrieve(t.Context()); !errors.Is(err, client.ErrNoAccess) {
		t.Fatalf("before the grant: %v, want ErrNoAccess", err)
	}
	a, err := c.Reload(t.Context(), "")
	if err != nil || a.PolicyVersion != "v2" {
		t.Fatalf("Reload = %v, %v; want the answer of v2", a, err)
	}
	creds, err := c.CredentialsProvider("b").Retrieve(t.Context())
	if err != nil || creds.AccessKeyID != "KB" {
		t.Errorf("after Reload: %s, %v; want KB from the cache", creds.AccessKeyID, err)
	}
	got := []string{}
	for _, r := range f.requests() {
		got = append(got, r.Header.Get("Cache-Control"))
	}
	if d := cmp.Diff([]string{"", ""}, got); d != "" {
		t.Errorf("Cache-Control of the requests (-want +got):\n%s", d)
	}
}

// An answer fetched before Invalidate may hold the refused credentials:
// a caller after Invalidate never gets it, even while it is in flight.
func TestAFetchInFlightDuringInvalidateIsNotServedAfterIt(t *testing.T) {
	clock := newFakeClock()
	release := make(chan struct{})
	f := newFakeEndpoint(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 0 {
			<-release
		}
		writeJSON(w, 200, body("v1", clock.Now().Add(15*time.Minute), set{"K" + string(rune('A'+n)), []string{"b"}}))
	})
	c := newClient(t, f, client.StaticToken("t"), clock)
	before := goFirstKey(t, c)
	for c.Waiting("") < 1 {
		runtime.Gosched()
	}
	c.Invalidate()
	after := goFirstKey(t, c)
	for c.Waiting("") < 2 {
		runtime.Gosched()
	}
	close(release)
	if got := <-before; got != "KA" {
		t.Errorf("the caller before Invalidate got %s, want KA", got)
	}
	if got := <-after; got != "KB" {
		t.Errorf("the caller after Invalidate got %s, want the fresh KB", got)
	}
	if got := cacheControls(f); !slices.Equal(got, []string{"", "no-cache"}) {
		t.Errorf("Cache-Control of the requests %q", got)
	}
	if a, _ := c.Answer(t.Context(), ""); a.CredentialSets[0].AccessKeyID != "KB" || f.count() != 2 {
		t.Errorf("cached %s after %d requests, want KB after 2", a.CredentialSets[0].AccessKeyID, f.count())
	}
}

// goFirstKey asks c for the answer in a goroutine and sends the key of
// its first set.
func goFirstKey(t *testing.T, c *client.Client) chan string {
	ch := make(chan string, 1)
	go func() {
		a, err := c.Answer(t.Context(), "")
		if err != nil {
			t.Error(err)
			ch <- ""
			return
		}
		ch <- a.CredentialSets[0].AccessKeyID
	}()
	return ch
}

func TestHeldCredentialsServeWhileTheEndpointIsUnavailable(t *testing.T) {
	clock := newFakeClock()
	var mu sync.Mutex
	down := false
	f := newFakeEndpoint(t, func(w http.ResponseWriter, r *http.Request, n int) {
		mu.Lock()
		defer mu.Unlock()
		if down {
			w.Header().Set("Retry-After", "1")
			writeError(w, 503, "unavailable", "down")
			return
		}
		writeJSON(w, 200, body("v1", clock.Now().Add(15*time.Minute), set{"K1", []string{"b"}}))
	})
	c := newClient(t, f, client.StaticToken("t"), clock, func(o *client.Options) { o.MaxRetries = -1 })
	p := c.CredentialsProvider("b")
	if _, err := p.Retrieve(t.Context()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	down = true
	mu.Unlock()
	clock.Add(11 * time.Minute) // past the margin, 4 minutes before expiry
	if creds, err := p.Retrieve(t.Context()); err != nil || creds.AccessKeyID != "K1" {
		t.Fatalf("while down: %v, %v; want the held K1", creds.AccessKeyID, err)
	}
	before := f.count()
	if _, err := p.Retrieve(t.Context()); err != nil || f.count() != before {
		t.Errorf("retried at once while down: %d requests, %v", f.count()-before, err)
	}
	clock.Add(4 * time.Minute) // expired
	if _, err := p.Retrieve(t.Context()); !errors.Is(err, client.ErrUnavailable) {
		t.Errorf("after expiry while down: %v, want ErrUnavailable", err)
	}
}

func TestRefusalsAreNotPapered(t *testing.T) {
	clock := newFakeClock()
	var mu sync.Mutex
	status := 200
	f := newFakeEndpoint(t, func(w http.ResponseWriter, r *http.Request, n int) {
		mu.Lock()
		defer mu.Unlock()
		if status == 403 {
			writeError(w, 403, "no_access", "no grants")
			return
		}
		writeJSON(w, 200, body("v1", clock.Now().Add(15*time.Minute), set{"K1", []string{"b"}}))
	})
	c := newClient(t, f, client.StaticToken("t"), clock)
	p := c.CredentialsProvider("b")
	if _, err := p.Retrieve(t.Context()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	status = 403
	mu.Unlock()
	clock.Add(11 * time.Minute)
	if creds, err := p.Retrieve(t.Context()); !errors.Is(err, client.ErrNoAccess) {
		t.Errorf("a 403 on refetch served %s, %v", creds.AccessKeyID, err)
	}
}

func TestAFileCacheServesTheNextProcess(t *testing.T) {
	clock := newFakeClock()
	f, setVersion := versionedEndpoint(t, clock)
	path := filepath.Join(t.TempDir(), "cache", "answers.json")
	process := func() *client.Client {
		return newClient(t, f, client.StaticToken("t"), clock, func(o *client.Options) { o.Cache = client.FileCache{Path: path} })
	}
	// Two processes, each with its own scope: the file keeps both.
	if _, err := process().Answer(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := process().Answer(t.Context(), "p1"); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("cache file mode %04o, want 0600", st.Mode().Perm())
	}
	if dir, _ := os.Stat(filepath.Dir(path)); dir.Mode().Perm() != 0o700 {
		t.Errorf("cache directory mode %04o, want 0700", dir.Mode().Perm())
	}
	third := process()
	for _, p := range []string{"", "p1"} {
		if a, err := third.Answer(t.Context(), p); err != nil || a.CredentialSets[0].AccessKeyID != "v1-"+p {
			t.Fatalf("from the cache, project %q: %v, %v", p, a, err)
		}
	}
	if n := f.count(); n != 2 {
		t.Errorf("%d requests, want 2: the third process answered from the file", n)
	}

	// A new version, seen by one process, retires the other scopes of
	// the file.
	setVersion("v2")
	if _, err := process().Refresh(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	if a, err := process().Answer(t.Context(), "p1"); err != nil || a.PolicyVersion != "v2" {
		t.Errorf("p1 after the change: %v, %v", a, err)
	}

	// An answer past its margin is not served from the file.
	clock.Add(11 * time.Minute)
	before := f.count()
	if _, err := process().Answer(t.Context(), ""); err != nil || f.count() != before+1 {
		t.Errorf("a stale cached answer was served: %d new requests, %v", f.count()-before, err)
	}
}

func TestAFileCacheOthersCanReadIsNotUsed(t *testing.T) {
	clock := newFakeClock()
	f := newFakeEndpoint(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, 200, body("v1", clock.Now().Add(15*time.Minute), set{"K1", []string{"b"}}))
	})
	path := filepath.Join(t.TempDir(), "answers.json")
	process := func() *client.Client {
		return newClient(t, f, client.StaticToken("t"), clock, func(o *client.Options) { o.Cache = client.FileCache{Path: path} })
	}
	if _, err := process().Answer(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := process().Answer(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	if n := f.count(); n != 2 {
		t.Errorf("%d requests, want 2: a world-readable cache was used", n)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("the replaced cache file has mode %04o", st.Mode().Perm())
	}
}
