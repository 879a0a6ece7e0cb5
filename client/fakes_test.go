package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/testkit/fakeclock"

	"github.com/credbroker/credbroker/client"
)

// fakeEndpoint is a hand-written stand-in for the credential endpoint, for
// what the local stack cannot be made to answer on demand: 503s, 429s,
// garbage, interleavings. The stack tests (stack_test.go) use the real one.
type fakeEndpoint struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []*http.Request
	// answer writes the answer to the n-th request (from 0).
	answer func(w http.ResponseWriter, r *http.Request, n int)
}

func newFakeEndpoint(t testing.TB, answer func(w http.ResponseWriter, r *http.Request, n int)) *fakeEndpoint {
	t.Helper()
	f := &fakeEndpoint{answer: answer}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != client.Path || r.Method != http.MethodGet {
			t.Errorf("request %s %s, want GET %s", r.Method, r.URL.Path, client.Path)
		}
		f.mu.Lock()
		n := len(f.reqs)
		f.reqs = append(f.reqs, r.Clone(context.Background()))
		f.mu.Unlock()
		f.answer(w, r, n)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeEndpoint) requests() []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*http.Request(nil), f.reqs...)
}

func (f *fakeEndpoint) count() int { return len(f.requests()) }

// set is a credential set of a fixture: its key id and grants, as
// "bucket", "bucket/folder/" or either with ":write", and then
// "@<RFC 3339>" for a grant that ends.
type set struct {
	key    string
	grants []string
}

// body renders an answer of version whose sets expire at exp.
func body(version string, exp time.Time, sets ...set) []byte {
	type grant struct {
		Bucket    string   `json:"bucket"`
		Prefix    string   `json:"prefix"`
		Access    string   `json:"access"`
		Projects  []string `json:"projects"`
		ExpiresAt string   `json:"expiresAt,omitempty"`
	}
	type cset struct {
		AccessKeyID     string  `json:"accessKeyId"`
		SecretAccessKey string  `json:"secretAccessKey"`
		SessionToken    string  `json:"sessionToken"`
		Expiration      string  `json:"expiration"`
		Grants          []grant `json:"grants"`
	}
	e := exp.UTC().Format(time.RFC3339)
	a := struct {
		UserID         string `json:"userId"`
		PolicyVersion  string `json:"policyVersion"`
		Expiration     string `json:"expiration"`
		CredentialSets []cset `json:"credentialSets"`
	}{UserID: "user-1", PolicyVersion: version, Expiration: e}
	for _, s := range sets {
		cs := cset{AccessKeyID: s.key, SecretAccessKey: "secret-" + s.key, SessionToken: "token-" + s.key, Expiration: e}
		for _, spec := range s.grants {
			g := grant{Access: "read", Projects: []string{"p1"}}
			spec, g.ExpiresAt, _ = strings.Cut(spec, "@")
			if b, ok := strings.CutSuffix(spec, ":write"); ok {
				spec, g.Access = b, "write"
			}
			g.Bucket, g.Prefix, _ = strings.Cut(spec, "/")
			cs.Grants = append(cs.Grants, g)
		}
		a.CredentialSets = append(a.CredentialSets, cs)
	}
	b, _ := json.Marshal(a)
	return b
}

func writeJSON(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	b, _ := json.Marshal(map[string]string{"error": code, "message": msg})
	writeJSON(w, status, b)
}

func newFakeClock() *fakeclock.Clock {
	return fakeclock.New(time.Date(2030, 5, 1, 12, 0, 0, 0, time.UTC))
}

// fakeTokens is a TokenSource whose Refresh hands out the next token.
type fakeTokens struct {
	mu        sync.Mutex
	token     string
	next      []string
	refreshes int
	err       error // returned by Refresh when set
}

func (f *fakeTokens) Token(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.token, nil
}

func (f *fakeTokens) Refresh(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refreshes++
	if f.err != nil {
		return "", f.err
	}
	if len(f.next) > 0 {
		f.token, f.next = f.next[0], f.next[1:]
	}
	return f.token, nil
}

// newClient returns a Client of f with the fake clock.
func newClient(t *testing.T, f *fakeEndpoint, tokens client.TokenSource, clock *fakeclock.Clock, opts ...func(*client.Options)) *client.Client {
	t.Helper()
	c, err := client.New(f.URL, tokens, append([]func(*client.Options){func(o *client.Options) {
		o.Now, o.Sleep = clock.Now, clock.Sleep
	}}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func bearer(r *http.Request) string {
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
}

func describe(reqs []*http.Request) string {
	var out []string
	for _, r := range reqs {
		out = append(out, fmt.Sprintf("%s cache-control=%q", r.URL.RequestURI(), r.Header.Get("Cache-Control")))
	}
	return strings.Join(out, "; ")
}
