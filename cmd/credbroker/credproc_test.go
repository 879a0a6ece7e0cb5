package main

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/client/cognitoauth"
	"github.com/credbroker/credbroker/internal/exitcode"
)

// twoSets is a user whose grants span two credential sets.
var twoSets = map[string][]fakeSet{"alice": {
	{[]string{"raw-data", "shared/team-a/:write"}},
	{[]string{"exports:write"}},
}}

func TestCredentialProcessPrintsTheSetHoldingTheBucket(t *testing.T) {
	w := newWorld(t, twoSets)
	w.login(t, "alice", "Alice-Passw0rd!")
	code, out, errOut := w.run(t, nil, "credential-process", "--stack", w.stackFile, "--bucket", "exports", "--access", "write")
	if code != exitcode.OK || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	// Exactly the fields of the AWS SDKs' credential_process format.
	var raw map[string]any
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatalf("stdout %q: %v", out, err)
	}
	want := map[string]any{
		"Version": float64(1), "AccessKeyId": "K2", "SecretAccessKey": secretOf(2), "SessionToken": "session-2",
		"Expiration": w.clock.Now().Add(15 * time.Minute).UTC().Format(time.RFC3339),
	}
	if d := cmp.Diff(want, raw); d != "" {
		t.Errorf("credential-process output (-want +got):\n%s", d)
	}
	if !strings.HasSuffix(out, "}\n") || strings.Count(out, "\n") != 1 {
		t.Errorf("stdout is not one JSON line: %q", out)
	}

	// The same answer routes every bucket and key to its set, from the
	// cache.
	for _, tt := range []struct {
		args []string
		key  string
	}{
		{[]string{"--bucket", "raw-data"}, "K1"},
		{[]string{"--bucket", "shared", "--key", "team-a/run/1.csv", "--access", "write"}, "K1"},
		{[]string{"--bucket", "shared"}, "K1"},
		{[]string{"--bucket", "exports"}, "K2"},
	} {
		if got := w.process(t, tt.args...); got.AccessKeyID != tt.key {
			t.Errorf("%v: key %s, want %s", tt.args, got.AccessKeyID, tt.key)
		}
	}
	if got := w.api.requests(); len(got) != 1 {
		t.Errorf("endpoint requests %v, want the first run's only", got)
	}
	for _, f := range append(w.credentialFiles(t), w.tokenFile()) {
		if m := permOf(t, f); m != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", f, m)
		}
	}
}

func TestCredentialProcessForAProjectAsksForItsGrantsOnly(t *testing.T) {
	w := newWorld(t, map[string][]fakeSet{"alice": {{[]string{"raw-data"}}}})
	w.login(t, "alice", "Alice-Passw0rd!")
	if got := w.process(t, "--project", "genomics"); got.AccessKeyID != "K1" {
		t.Errorf("key %s", got.AccessKeyID)
	}
	if got := w.process(t, "--project", "genomics", "--bucket", "raw-data"); got.AccessKeyID != "K1" {
		t.Errorf("key %s", got.AccessKeyID)
	}
	if d := cmp.Diff([]string{"project=genomics"}, w.api.requests()); d != "" {
		t.Errorf("endpoint requests (-want +got):\n%s", d)
	}
}

// What botocore needs decides what is handed out: credentials are reused
// until 16 minutes before they expire, never handed out with less than 11
// left, and replaced by freshly minted ones (no-cache) when the endpoint's
// own cache answers with too little left.
func TestCredentialProcessHandsOutWhatBotocoreKeeps(t *testing.T) {
	tests := []struct {
		name     string
		lifetime time.Duration
		// endpointCached: the endpoint's cache answers plain requests
		// with the set it minted first.
		endpointCached bool
		reuseFor       time.Duration // reused until, replaced at this age
		replaced       []string      // the requests that replace it
	}{
		{"one-hour sessions are reused until 16 minutes are left", time.Hour, false, 44 * time.Minute, []string{""}},
		{"15-minute sessions are reused while 11 minutes are left, then minted", 15 * time.Minute, false, 4*time.Minute + time.Second, []string{"no-cache"}},
		{"a set the endpoint's cache holds with too little left is replaced by a minted one", 15 * time.Minute, true, 4*time.Minute + time.Second, []string{"no-cache"}},
		{"30-minute sessions are reused until half their life", 30 * time.Minute, false, 15 * time.Minute, []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, map[string][]fakeSet{"alice": {{[]string{"raw-data"}}}})
			w.api.lifetime, w.api.cached = tt.lifetime, tt.endpointCached
			w.login(t, "alice", "Alice-Passw0rd!")
			first := w.process(t, "--bucket", "raw-data")
			w.clock.Add(tt.reuseFor - time.Second)
			if again := w.process(t, "--bucket", "raw-data"); again != first {
				t.Fatalf("replaced before %v: %s", tt.reuseFor, again.AccessKeyID)
			}
			w.clock.Add(time.Second)
			next := w.process(t, "--bucket", "raw-data")
			left := mustTime(t, next.Expiration).Sub(w.clock.Now())
			if next.AccessKeyID == first.AccessKeyID || left < minValidity {
				t.Errorf("at %v: key %s valid %v more, want a new key valid at least %v", tt.reuseFor, next.AccessKeyID, left, minValidity)
			}
			// The first fetch, the revalidation a second before the set
			// is replaced (which keeps it), then what replaces it.
			if d := cmp.Diff(append([]string{"", ""}, tt.replaced...), w.api.requests()); d != "" {
				t.Errorf("endpoint requests (-want +got):\n%s", d)
			}
		})
	}

	t.Run("the endpoint's cache is used when it holds enough", func(t *testing.T) {
		w := newWorld(t, map[string][]fakeSet{"alice": {{[]string{"raw-data"}}}})
		w.api.lifetime, w.api.cached = time.Hour, true
		w.login(t, "alice", "Alice-Passw0rd!")
		w.process(t, "--bucket", "raw-data")
		if err := os.Remove(w.credentialFiles(t)[0]); err != nil {
			t.Fatal(err)
		}
		w.clock.Add(20 * time.Minute)
		if got := w.process(t, "--bucket", "raw-data"); got.AccessKeyID != "K1" {
			t.Errorf("key %s, want the endpoint's cached K1 (40 minutes left)", got.AccessKeyID)
		}
		if d := cmp.Diff([]string{"", ""}, w.api.requests()); d != "" {
			t.Errorf("endpoint requests (-want +got):\n%s", d)
		}
	})
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A grant added after the cached answer was fetched is found by asking
// again (without forcing a mint); a bucket never granted is an error that
// names it.
func TestABucketTheCachedAnswerLacksIsAskedForAgain(t *testing.T) {
	w := newWorld(t, map[string][]fakeSet{"alice": {{[]string{"raw-data"}}}})
	w.login(t, "alice", "Alice-Passw0rd!")
	w.process(t, "--bucket", "raw-data")
	w.api.mu.Lock()
	w.api.grants["alice"] = []fakeSet{{[]string{"raw-data", "new-data"}}}
	w.api.mu.Unlock()
	if got := w.process(t, "--bucket", "new-data"); got.AccessKeyID != "K2" {
		t.Errorf("key %s, want K2 of the answer with the new grant", got.AccessKeyID)
	}
	code, out, errOut := w.run(t, nil, "credential-process", "--stack", w.stackFile, "--bucket", "other-data")
	if code != exitcode.NoAccess || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "no access to s3://other-data/") ||
		!strings.Contains(errOut, "`credbroker grants --stack "+w.stackFile+"` lists what you can reach") {
		t.Errorf("a bucket never granted: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if d := cmp.Diff([]string{"", "", ""}, w.api.requests()); d != "" {
		t.Errorf("endpoint requests (-want +got):\n%s", d)
	}
}

func TestWithoutLoginTheUserIsToldToLogIn(t *testing.T) {
	w := newWorld(t, twoSets)
	for _, cmd := range []string{"credential-process", "env"} {
		code, out, errOut := w.run(t, nil, cmd, "--stack", w.stackFile, "--bucket", "raw-data")
		if code != exitcode.SignIn || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "run `credbroker login --stack "+w.stackFile+" --username NAME`") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", cmd, code, out, errOut)
		}
	}
	if got := w.api.requests(); len(got) != 0 {
		t.Errorf("the endpoint was asked: %v", got)
	}
}

// An expired access token is refreshed with the refresh token, and the
// new one kept (in a file still only the user can read); a refused
// refresh token asks for a new login.
func TestTokensAreRefreshedWhenTheyExpire(t *testing.T) {
	w := newWorld(t, twoSets)
	w.login(t, "alice", "Alice-Passw0rd!")
	before := readTokens(t, w.tokenFile())
	w.clock.Add(2 * time.Hour) // the access token (1 h) and the credentials are spent
	if got := w.process(t, "--bucket", "raw-data"); got.AccessKeyID != "K1" {
		t.Errorf("key %s", got.AccessKeyID)
	}
	after := readTokens(t, w.tokenFile())
	if after.AccessToken == before.AccessToken || after.RefreshToken != before.RefreshToken || permOf(t, w.tokenFile()) != 0o600 {
		t.Errorf("tokens after the refresh: %v (mode %04o), before: %v", after, permOf(t, w.tokenFile()), before)
	}
	if d := cmp.Diff([]string{"USER_PASSWORD_AUTH", "REFRESH_TOKEN_AUTH"}, w.idp.flows()); d != "" {
		t.Errorf("Cognito calls (-want +got):\n%s", d)
	}

	w.idp.mu.Lock()
	w.idp.refuseRefresh = true
	w.idp.mu.Unlock()
	w.clock.Add(2 * time.Hour)
	code, out, errOut := w.run(t, nil, "credential-process", "--stack", w.stackFile, "--bucket", "raw-data")
	if code != exitcode.SignIn || out != "" || !strings.Contains(errOut, "credbroker login") || strings.Contains(errOut, after.RefreshToken) {
		t.Errorf("a refused refresh: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func readTokens(t *testing.T, path string) cognitoauth.Tokens {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var tok cognitoauth.Tokens
	if err := json.Unmarshal(data, &tok); err != nil {
		t.Fatal(err)
	}
	return tok
}

// Errors are one line on stderr, with nothing on stdout and no secret
// anywhere: not the password, tokens or credentials.
func TestErrorsAreOneLineWithNothingOnStdoutAndNoSecret(t *testing.T) {
	w := newWorld(t, twoSets)
	w.login(t, "alice", "Alice-Passw0rd!")
	w.process(t, "--bucket", "raw-data") // K1, K2 cached
	tok := readTokens(t, w.tokenFile())
	secrets := []string{"Alice-Passw0rd!", tok.AccessToken, tok.RefreshToken, tok.IDToken, secretOf(1), secretOf(2), "session-1", "session-2"}
	tests := []struct {
		name   string
		status int // the endpoint's answer to every request
		args   []string
		code   int
		says   string
	}{
		{"a bucket no set covers", 0, []string{"--bucket", "elsewhere"}, exitcode.NoAccess, "the user's grants do not include this bucket; `credbroker grants --stack"},
		{"a key outside the granted folder", 0, []string{"--bucket", "shared", "--key", "team-b/x"}, exitcode.NoAccess, "team-a/ (write)"},
		{"write on a read grant", 0, []string{"--bucket", "raw-data", "--access", "write"}, exitcode.NoAccess, "no access to s3://raw-data/ (write)"},
		{"a project's grants spread over two sets", 0, []string{"--project", "p1"}, exitcode.Usage, "name a bucket"},
		{"the endpoint refuses the project", 403, []string{"--project", "other"}, exitcode.NoAccess, "403 no_access"},
		{"the endpoint is down", 500, []string{"--project", "p2"}, exitcode.Failure, "answered 500"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w.api.mu.Lock()
			w.api.status = tt.status
			w.api.mu.Unlock()
			for _, cmd := range []string{"credential-process", "env"} {
				code, out, errOut := w.run(t, nil, append([]string{cmd, "--stack", w.stackFile}, tt.args...)...)
				if code != tt.code || out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "credbroker "+cmd+": ") || !strings.Contains(errOut, tt.says) {
					t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit %d saying %q", cmd, code, out, errOut, tt.code, tt.says)
				}
				if i := slices.IndexFunc(secrets, func(s string) bool { return strings.Contains(errOut, s) }); i >= 0 {
					t.Errorf("%s: stderr shows secret %d: %q", cmd, i, errOut)
				}
			}
		})
	}
}

func TestHelpListsTheFlagsAndExits0(t *testing.T) {
	w := newWorld(t, nil)
	code, out, errOut := w.run(t, nil, "credential-process", "-h")
	if code != exitcode.OK || out != "" || !strings.Contains(errOut, "-bucket") || !strings.Contains(errOut, "-project") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// BenchmarkCredentialProcessFromTheCache is a run of credential-process
// that the cache answers, in process: flags, stack file, token file, cache
// file, routing and output. docs/benchmarks.md "The credbroker command (issue 12)" also times the built binary,
// process start included, as botocore runs it.
func BenchmarkCredentialProcessFromTheCache(b *testing.B) {
	w := newWorld(b, twoSets)
	w.login(b, "alice", "Alice-Passw0rd!")
	want := w.process(b, "--bucket", "exports")
	for b.Loop() {
		if got := w.process(b, "--bucket", "exports"); got != want {
			b.Fatalf("got %s, want %s from the cache", got.AccessKeyID, want.AccessKeyID)
		}
	}
	if n := len(w.api.requests()); n != 1 {
		b.Fatalf("%d endpoint requests, want 1", n)
	}
}

// A deployed stack is named by flags or CREDBROKER_* variables instead of
// a stack file; its files are the same, keyed by user pool and app client.
func TestADeployedStackIsNamedByFlagsOrVariables(t *testing.T) {
	w := newWorld(t, twoSets)
	w.login(t, "alice", "Alice-Passw0rd!")
	flags := []string{"credential-process", "--api-url", w.api.URL, "--user-pool-id", testPool, "--client-id", testClient, "--bucket", "exports"}
	code, out, errOut := w.run(t, nil, flags...)
	if code != exitcode.OK || !strings.Contains(out, `"AccessKeyId":"K2"`) {
		t.Fatalf("with flags: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	vars := map[string]string{"CREDBROKER_API_URL": w.api.URL, "CREDBROKER_USER_POOL_ID": testPool, "CREDBROKER_CLIENT_ID": testClient}
	code, out, errOut = w.run(t, vars, "env", "--bucket", "raw-data")
	if code != exitcode.OK || !strings.Contains(out, "export AWS_ACCESS_KEY_ID='K1'\n") {
		t.Fatalf("with variables: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if got := w.api.requests(); len(got) != 1 {
		t.Errorf("endpoint requests %v, want one: the answer cached by the first run", got)
	}
	// Another app client of the same pool is another sign-in.
	code, _, errOut = w.run(t, nil, "credential-process", "--api-url", w.api.URL, "--user-pool-id", testPool, "--client-id", "otherclient", "--bucket", "exports")
	if code != exitcode.SignIn || !strings.Contains(errOut, "credbroker login --username NAME") {
		t.Errorf("another app client: exit %d, stderr %q", code, errOut)
	}
}
