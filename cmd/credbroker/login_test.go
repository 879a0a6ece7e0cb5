package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/client/cognitoauth"
	"github.com/credbroker/credbroker/internal/exitcode"
)

func TestLoginKeepsTheTokensInAFileOnlyTheUserCanRead(t *testing.T) {
	w := newWorld(t, nil)
	code, out, errOut := w.run(t, map[string]string{"CREDBROKER_PASSWORD": "Alice-Passw0rd!"}, "login", "--stack", w.stackFile, "--username", "alice")
	if code != exitcode.OK || errOut != "" || !strings.Contains(out, w.tokenFile()) {
		t.Fatalf("login: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if m := permOf(t, w.tokenFile()); m != 0o600 {
		t.Errorf("token file mode %04o, want 0600", m)
	}
	if m := permOf(t, w.dir()); m != 0o700 {
		t.Errorf("token directory mode %04o, want 0700", m)
	}
	data, err := os.ReadFile(w.tokenFile())
	if err != nil {
		t.Fatal(err)
	}
	var tok cognitoauth.Tokens
	if err := json.Unmarshal(data, &tok); err != nil {
		t.Fatal(err)
	}
	if u, ok := w.idp.userOf(tok.AccessToken); !ok || u != "alice" || tok.RefreshToken == "" || tok.ClientID != testClient {
		t.Errorf("the file holds %v: want alice's access and refresh tokens from the pool's client", tok)
	}
	// moto does not check SRP proofs: on a local stack the password flow
	// is the default.
	if d := cmp.Diff([]string{"USER_PASSWORD_AUTH"}, w.idp.flows()); d != "" {
		t.Errorf("Cognito calls (-want +got):\n%s", d)
	}
}

func TestLoginRefusesAWrongPasswordWithoutEchoingIt(t *testing.T) {
	w := newWorld(t, nil)
	code, out, errOut := w.run(t, map[string]string{"CREDBROKER_PASSWORD": "Guess-Passw0rd!"}, "login", "--stack", w.stackFile, "--username", "alice")
	if code != exitcode.Usage || out != "" || strings.Count(errOut, "\n") != 1 ||
		!strings.Contains(errOut, "incorrect username or password") || strings.Contains(errOut, "Guess-Passw0rd!") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, err := os.Stat(w.tokenFile()); !os.IsNotExist(err) {
		t.Errorf("a token file after a refused sign-in: %v", err)
	}
}

func TestLoginWithoutAPasswordOrATerminalIsAUsageError(t *testing.T) {
	w := newWorld(t, nil)
	code, out, errOut := w.run(t, nil, "login", "--stack", w.stackFile, "--username", "alice")
	if code != exitcode.Usage || out != "" || !strings.Contains(errOut, "CREDBROKER_PASSWORD") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if calls := w.idp.flows(); len(calls) != 0 {
		t.Errorf("Cognito was called: %v", calls)
	}
}

// Cached credentials belong to the sign-in that fetched them: signing in
// again (as anyone) drops them, which is also how a user gets rid of
// credentials that a revocation made useless.
func TestANewLoginDropsTheCachedCredentials(t *testing.T) {
	w := newWorld(t, map[string][]fakeSet{"alice": {{[]string{"alice-data"}}}, "bob": {{[]string{"bob-data"}}}})
	w.login(t, "alice", "Alice-Passw0rd!")
	alice := w.process(t, "--bucket", "alice-data")
	if files := w.credentialFiles(t); len(files) != 1 {
		t.Fatalf("credential files %v, want alice's", files)
	}
	w.login(t, "bob", "Bob-Passw0rd!")
	if files := w.credentialFiles(t); len(files) != 0 {
		t.Errorf("alice's cached credentials outlived bob's sign-in: %v", files)
	}
	code, out, errOut := w.run(t, nil, "credential-process", "--stack", w.stackFile, "--bucket", "alice-data")
	if code == exitcode.OK || out != "" || strings.Contains(errOut, alice.SecretAccessKey) {
		t.Errorf("bob got alice's bucket: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if bob := w.process(t, "--bucket", "bob-data"); bob.AccessKeyID == alice.AccessKeyID {
		t.Errorf("bob got alice's key %s", bob.AccessKeyID)
	}
	w.login(t, "bob", "Bob-Passw0rd!")
	if files := w.credentialFiles(t); len(files) != 0 {
		t.Errorf("bob's cached credentials outlived his new sign-in: %v", files)
	}
}
