package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/testkit/clitest"
	"github.com/credbroker/credbroker/internal/testkit/fakeclock"

	"github.com/credbroker/credbroker/client"
	"github.com/credbroker/credbroker/internal/stackfile"
)

// The unit tier runs the user commands against hand-written stand-ins for
// Cognito's InitiateAuth and for the credential endpoint, named as such;
// user_moto_test.go runs them against the local stack on moto.

const (
	testPool   = "us-east-1_TestPool1"
	testClient = "testclient1"
)

// fakeCognito is a stand-in for Cognito's InitiateAuth (USER_PASSWORD_AUTH
// and REFRESH_TOKEN_AUTH) over the JSON protocol the SDK speaks. Access
// tokens are JWT-shaped (cognitoauth reads their username claim) and last
// an hour.
type fakeCognito struct {
	*httptest.Server
	clock     *fakeclock.Clock
	passwords map[string]string // username -> password
	mu        sync.Mutex
	calls     []map[string]any // the requests' bodies
	issued    int
	valid     map[string]string // access token -> username
	refresh   map[string]string // refresh token -> username
	// refuseRefresh answers every refresh with NotAuthorizedException.
	refuseRefresh bool
}

func newFakeCognito(t testing.TB, c *fakeclock.Clock, passwords map[string]string) *fakeCognito {
	t.Helper()
	f := &fakeCognito{clock: c, passwords: passwords, valid: map[string]string{}, refresh: map[string]string{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeCognito) serve(w http.ResponseWriter, r *http.Request) {
	var in struct {
		AuthFlow       string
		ClientId       string
		AuthParameters map[string]string
	}
	body, _ := io.ReadAll(r.Body)
	var raw map[string]any
	_ = json.Unmarshal(body, &raw)
	_ = json.Unmarshal(body, &in)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, raw)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	refuse := func(msg string) {
		w.WriteHeader(400)
		fmt.Fprintf(w, `{"__type":"NotAuthorizedException","message":%q}`, msg)
	}
	if r.Header.Get("X-Amz-Target") != "AWSCognitoIdentityProviderService.InitiateAuth" || in.ClientId != testClient {
		w.WriteHeader(400)
		fmt.Fprint(w, `{"__type":"InvalidParameterException","message":"unexpected request"}`)
		return
	}
	var user string
	switch in.AuthFlow {
	case "USER_PASSWORD_AUTH":
		user = in.AuthParameters["USERNAME"]
		if p, ok := f.passwords[user]; !ok || p != in.AuthParameters["PASSWORD"] {
			refuse("Incorrect username or password.")
			return
		}
	case "REFRESH_TOKEN_AUTH":
		var ok bool
		if user, ok = f.refresh[in.AuthParameters["REFRESH_TOKEN"]]; !ok || f.refuseRefresh {
			refuse("Refresh Token has expired")
			return
		}
	default:
		w.WriteHeader(400)
		fmt.Fprintf(w, `{"__type":"InvalidParameterException","message":"%s flow not enabled for this client"}`, in.AuthFlow)
		return
	}
	f.issued++
	claims, _ := json.Marshal(map[string]string{"username": user})
	access := fmt.Sprintf("eyJhbGciOiJSUzI1NiJ9.%s.sig%d", base64.RawURLEncoding.EncodeToString(claims), f.issued)
	f.valid[access] = user
	result := map[string]any{"AccessToken": access, "ExpiresIn": 3600, "IdToken": "id" + access, "TokenType": "Bearer"}
	if in.AuthFlow == "USER_PASSWORD_AUTH" {
		rt := fmt.Sprintf("refresh-%s-%d", user, f.issued)
		f.refresh[rt] = user
		result["RefreshToken"] = rt
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"AuthenticationResult": result, "ChallengeParameters": map[string]string{}})
}

// flows returns the AuthFlow of each call so far.
func (f *fakeCognito) flows() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		out = append(out, fmt.Sprint(c["AuthFlow"]))
	}
	return out
}

func (f *fakeCognito) userOf(token string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.valid[token]
	return u, ok
}

// fakeSet is a credential set the fake endpoint hands out: its grants as
// "bucket", "bucket/folder/", either with ":write", then "@<RFC 3339>"
// for a grant that ends.
type fakeSet struct{ grants []string }

// fakeEndpoint is a stand-in for the credential endpoint: it checks the
// bearer token with the fake Cognito and mints, on every request, new sets
// (keys K1, K2, ... in request order) for the user's grants, valid for
// lifetime. With cached set, a request without Cache-Control: no-cache
// gets the previous answer again, as the endpoint's own cache would give.
type fakeEndpoint struct {
	*httptest.Server
	idp      *fakeCognito
	clock    *fakeclock.Clock
	mu       sync.Mutex
	reqs     []*http.Request
	grants   map[string][]fakeSet // by user
	lifetime time.Duration
	cached   bool
	last     []byte
	minted   int
	// status, when set, is the answer to every request.
	status int
}

func newFakeEndpoint(t testing.TB, idp *fakeCognito, c *fakeclock.Clock, grants map[string][]fakeSet) *fakeEndpoint {
	t.Helper()
	f := &fakeEndpoint{idp: idp, clock: c, grants: grants, lifetime: 15 * time.Minute}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, r.Clone(context.Background()))
	w.Header().Set("Content-Type", "application/json")
	fail := func(status int, code string) {
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":%q,"message":"refused by the fake"}`, code)
	}
	user, ok := f.idp.userOf(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
	switch {
	case r.URL.Path != client.Path:
		fail(404, "not_found")
		return
	case !ok:
		fail(401, "invalid_token")
		return
	case f.status != 0:
		fail(f.status, "no_access")
		return
	case len(f.grants[user]) == 0:
		fail(403, "no_access")
		return
	}
	if f.cached && f.last != nil && r.Header.Get("Cache-Control") != "no-cache" {
		_, _ = w.Write(f.last)
		return
	}
	exp := f.clock.Now().Add(f.lifetime).UTC().Format(time.RFC3339)
	type grant struct {
		Bucket    string   `json:"bucket"`
		Prefix    string   `json:"prefix"`
		Access    string   `json:"access"`
		Projects  []string `json:"projects"`
		ExpiresAt string   `json:"expiresAt,omitempty"`
	}
	type set struct {
		AccessKeyID     string  `json:"accessKeyId"`
		SecretAccessKey string  `json:"secretAccessKey"`
		SessionToken    string  `json:"sessionToken"`
		Expiration      string  `json:"expiration"`
		Grants          []grant `json:"grants"`
	}
	answer := struct {
		UserID         string `json:"userId"`
		PolicyVersion  string `json:"policyVersion"`
		Expiration     string `json:"expiration"`
		CredentialSets []set  `json:"credentialSets"`
	}{UserID: "sub-" + user, PolicyVersion: fmt.Sprint(f.grants[user]), Expiration: exp}
	for _, fs := range f.grants[user] {
		f.minted++
		s := set{AccessKeyID: fmt.Sprintf("K%d", f.minted), SecretAccessKey: secretOf(f.minted), SessionToken: fmt.Sprintf("session-%d", f.minted), Expiration: exp}
		for _, spec := range fs.grants {
			g := grant{Access: "read", Projects: []string{"p1"}}
			spec, g.ExpiresAt, _ = strings.Cut(spec, "@")
			if b, ok := strings.CutSuffix(spec, ":write"); ok {
				spec, g.Access = b, "write"
			}
			g.Bucket, g.Prefix, _ = strings.Cut(spec, "/")
			s.Grants = append(s.Grants, g)
		}
		answer.CredentialSets = append(answer.CredentialSets, s)
	}
	f.last, _ = json.Marshal(answer)
	_, _ = w.Write(f.last)
}

// secretOf is the secret key of the n-th set: shell-hostile on purpose.
func secretOf(n int) string { return fmt.Sprintf(`s3cr'et/%d+$HOME "x" `+"`id`", n) }

// requests returns "<query> <cache-control>" of each request so far.
func (f *fakeEndpoint) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []string{}
	for _, r := range f.reqs {
		out = append(out, strings.TrimSpace(r.URL.RawQuery+" "+r.Header.Get("Cache-Control")))
	}
	return out
}

// world is a stack of the two fakes, a stack file naming them and a user
// configuration directory.
type world struct {
	clock     *fakeclock.Clock
	idp       *fakeCognito
	api       *fakeEndpoint
	stackFile string
	configDir string
}

func newWorld(t testing.TB, grants map[string][]fakeSet) *world {
	t.Helper()
	w := &world{clock: fakeclock.New(time.Date(2030, 5, 1, 12, 0, 0, 0, time.UTC)), configDir: t.TempDir()}
	w.idp = newFakeCognito(t, w.clock, map[string]string{"alice": "Alice-Passw0rd!", "bob": "Bob-Passw0rd!"})
	w.api = newFakeEndpoint(t, w.idp, w.clock, grants)
	w.stackFile = filepath.Join(t.TempDir(), "stack.json")
	if err := stackfile.Write(w.stackFile, stackfile.Stack{
		Region: "us-east-1", AWSEndpoint: w.idp.URL, APIURL: w.api.URL,
		MembershipTable: "m", PolicyTable: "p", EventBusName: "b", BaseRoleARN: "arn:aws:iam::123456789012:role/base",
		UserPoolID: testPool, UserPoolClientID: testClient,
	}); err != nil {
		t.Fatal(err)
	}
	return w
}

// run runs the command line against the world with the variables given.
func (w *world) run(t testing.TB, vars map[string]string, args ...string) (int, string, string) {
	t.Helper()
	return clitest.Run(t, commands(), clitest.Options{Env: vars, Clock: w.clock.Now, ConfigDir: w.configDir}, args...)
}

// login signs user in through the CLI.
func (w *world) login(t testing.TB, user, password string) {
	t.Helper()
	code, out, errOut := w.run(t, map[string]string{"CREDBROKER_PASSWORD": password}, "login", "--stack", w.stackFile, "--username", user)
	if code != 0 {
		t.Fatalf("login %s: exit %d, stdout %q, stderr %q", user, code, out, errOut)
	}
}

// process runs credential-process and decodes its answer.
func (w *world) process(t testing.TB, args ...string) processCredentials {
	t.Helper()
	code, out, errOut := w.run(t, nil, append([]string{"credential-process", "--stack", w.stackFile}, args...)...)
	if code != 0 {
		t.Fatalf("credential-process %v: exit %d, stderr %q", args, code, errOut)
	}
	var pc processCredentials
	if err := json.Unmarshal([]byte(out), &pc); err != nil {
		t.Fatalf("credential-process printed %q: %v", out, err)
	}
	return pc
}

func (w *world) dir() string { return filepath.Join(w.configDir, "credbroker") }

func (w *world) tokenFile() string {
	return filepath.Join(w.dir(), testPool+"."+testClient+".tokens.json")
}

// credentialFiles lists the cached credential files.
func (w *world) credentialFiles(t testing.TB) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(w.dir(), "*.credentials.json"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func permOf(t testing.TB, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}
