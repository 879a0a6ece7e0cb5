package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/client"
	"github.com/credbroker/credbroker/internal/exitcode"
	"github.com/credbroker/credbroker/internal/stackfile"
)

// Every error a user meets names the next step, with the exit status of
// the documented table: sign-in problems 5, refusals 6, the rest 3.

func TestAnUnusableTokenFileAsksForLoginWithStatus5(t *testing.T) {
	tests := []struct {
		name  string
		spoil func(t *testing.T, path string)
		says  string
	}{
		{"a file that is not JSON", func(t *testing.T, path string) { writeMode(t, path, "{not json", 0o600) }, "is not a credbroker token file"},
		{"a JSON file of another shape", func(t *testing.T, path string) { writeMode(t, path, `{"cookie":"x"}`, 0o600) }, "is not a credbroker token file"},
		{"a file others may read", func(t *testing.T, path string) {
			if err := os.Chmod(path, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "lets others read or write it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, twoSets)
			w.login(t, "alice", "Alice-Passw0rd!")
			tt.spoil(t, w.tokenFile())
			for _, cmd := range []string{"credential-process", "env", "grants"} {
				code, out, errOut := w.run(t, nil, cmd, "--stack", w.stackFile, "--bucket", "raw-data")
				if cmd == "grants" {
					code, out, errOut = w.run(t, nil, cmd, "--stack", w.stackFile)
				}
				if code != exitcode.SignIn || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, tt.says) ||
					!strings.Contains(errOut, "run `credbroker login --stack "+w.stackFile+" --username NAME`") {
					t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit %d naming credbroker login", cmd, code, out, errOut, exitcode.SignIn)
				}
			}
			// What it says to do works: a new sign-in replaces the file.
			w.login(t, "alice", "Alice-Passw0rd!")
			if got := w.process(t, "--bucket", "raw-data"); got.AccessKeyID == "" {
				t.Error("no credentials after signing in again")
			}
		})
	}
}

func writeMode(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func TestABucketNotGrantedNamesTheCommandThatListsTheGrants(t *testing.T) {
	w := newWorld(t, twoSets)
	w.login(t, "alice", "Alice-Passw0rd!")
	code, out, errOut := w.run(t, nil, "credential-process", "--stack", w.stackFile, "--bucket", "demo-exports")
	hint := "`credbroker grants --stack " + w.stackFile + "` lists what you can reach"
	if code != exitcode.NoAccess || out != "" || !strings.Contains(errOut, "no access to s3://demo-exports/") || !strings.Contains(errOut, hint) {
		t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d and %q", code, out, errOut, exitcode.NoAccess, hint)
	}
	// The command it names lists them.
	got, _ := w.grantsJSON(t)
	want := []client.Grant{
		{Bucket: "raw-data", Access: "read", Projects: []string{"p1"}},
		{Bucket: "shared", Prefix: "team-a/", Access: "write", Projects: []string{"p1"}},
		{Bucket: "exports", Access: "write", Projects: []string{"p1"}},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("grants (-want +got):\n%s", d)
	}
	code, out, errOut = w.run(t, nil, "grants", "--stack", w.stackFile)
	if code != exitcode.OK || !strings.HasPrefix(out, "BUCKET") || !strings.Contains(out, "team-a/") || !strings.Contains(errOut, "credbroker credential-process --stack "+w.stackFile+" --bucket B") {
		t.Errorf("grants as a table: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestGrantsSayWhenATimeBoundedGrantEnds(t *testing.T) {
	w := newWorld(t, map[string][]fakeSet{})
	end := w.clock.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	w.api.grants["alice"] = []fakeSet{{[]string{"visiting/lab-b/@" + end.Format(time.RFC3339), "raw-data"}}}
	w.login(t, "alice", "Alice-Passw0rd!")
	got, out := w.grantsJSON(t)
	want := []client.Grant{
		{Bucket: "visiting", Prefix: "lab-b/", Access: "read", Projects: []string{"p1"}, ExpiresAt: end},
		{Bucket: "raw-data", Access: "read", Projects: []string{"p1"}},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("grants (-want +got):\n%s", d)
	}
	if strings.Contains(out, `"expiresAt":"0001`) {
		t.Errorf("an open grant printed a zero expiresAt: %s", out)
	}
	code, out, _ := w.run(t, nil, "grants", "--stack", w.stackFile)
	if code != exitcode.OK || !strings.Contains(out, "UNTIL") || !strings.Contains(out, end.Format(time.RFC3339)) {
		t.Errorf("grants as a table: exit %d, stdout %q: want an UNTIL column with %s", code, out, end.Format(time.RFC3339))
	}
}

func TestAUserGrantedNothingIsTold6(t *testing.T) {
	w := newWorld(t, map[string][]fakeSet{})
	w.login(t, "alice", "Alice-Passw0rd!")
	code, out, errOut := w.run(t, nil, "grants", "--stack", w.stackFile)
	if code != exitcode.NoAccess || out != "" || !strings.Contains(errOut, "you are granted nothing on this stack") {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit %d", code, out, errOut, exitcode.NoAccess)
	}
}

func TestAnUnreachableEndpointSaysWhatToCheck(t *testing.T) {
	w := newWorld(t, twoSets)
	w.login(t, "alice", "Alice-Passw0rd!")
	// A stack file whose endpoint nothing listens on: the local stack is
	// not running.
	down := w.stackFile + ".down.json"
	st, err := stackfile.Load(w.stackFile)
	if err != nil {
		t.Fatal(err)
	}
	st.APIURL = "http://127.0.0.1:1"
	if err := stackfile.Write(down, st); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		says []string
	}{
		{"a deployed stack named by --api-url", []string{"--api-url", "http://127.0.0.1:1", "--user-pool-id", testPool, "--client-id", testClient},
			[]string{"cannot reach the credential endpoint at http://127.0.0.1:1: ", "check --api-url (or CREDBROKER_API_URL"}},
		{"a local stack that is not running", []string{"--stack", down},
			[]string{"cannot reach the credential endpoint at http://127.0.0.1:1: ", "is the local stack running? Start it with `make run`"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := w.run(t, nil, append([]string{"credential-process", "--bucket", "raw-data"}, tt.args...)...)
			if code != exitcode.Failure || out != "" || strings.Count(errOut, "\n") != 1 || strings.Contains(errOut, "dial tcp") {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d on one line without Go's dial error", code, out, errOut, exitcode.Failure)
			}
			for _, s := range tt.says {
				if !strings.Contains(errOut, s) {
					t.Errorf("stderr %q does not say %q", errOut, s)
				}
			}
		})
	}
}

// A sign-in that cannot reach the user pool says what to check, not a
// flag login does not have.
func TestALoginThatCannotReachThePoolSaysWhatToCheck(t *testing.T) {
	w := newWorld(t, nil)
	down := w.stackFile + ".down.json"
	st, err := stackfile.Load(w.stackFile)
	if err != nil {
		t.Fatal(err)
	}
	st.AWSEndpoint = "http://127.0.0.1:1"
	if err := stackfile.Write(down, st); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := w.run(t, map[string]string{"CREDBROKER_PASSWORD": "Alice-Passw0rd!"}, "login", "--stack", down, "--username", "alice")
	if code != exitcode.Failure || out != "" || strings.Contains(errOut, "--api-url") || strings.Contains(errOut, "dial tcp") ||
		!strings.Contains(errOut, "cannot reach the user pool's sign-in") || !strings.Contains(errOut, "is the local stack running? Start it with `make run`") {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit %d naming the local stack, not --api-url", code, out, errOut, exitcode.Failure)
	}
	// On a deployed stack it names login's own flags.
	if hint := (&session{}).poolHint(); strings.Contains(hint, "--api-url") || !strings.Contains(hint, "--user-pool-id") {
		t.Errorf("a deployed stack's hint %q names a flag login lacks, or not --user-pool-id", hint)
	}
}

// The user commands' -h lists only the flags they use: no table, bus,
// base role or revoker of the operators' commands.
func TestUserCommandsListNoOperatorFlags(t *testing.T) {
	w := newWorld(t, nil)
	for _, cmd := range []string{"login", "credential-process", "env", "grants"} {
		code, out, errOut := w.run(t, nil, cmd, "-h")
		if code != exitcode.OK || out != "" || !strings.Contains(errOut, "-user-pool-id") || !strings.Contains(errOut, "-stack") {
			t.Errorf("%s -h: exit %d, stdout %q, stderr %q", cmd, code, out, errOut)
		}
		for _, operator := range []string{"-membership-table", "-policy-table", "-event-bus", "-base-role-arn", "-revoker-function"} {
			if strings.Contains(errOut, operator) {
				t.Errorf("%s -h lists the operators' %s", cmd, operator)
			}
		}
		if cmd == "login" && strings.Contains(errOut, "-api-url") {
			t.Errorf("login -h lists --api-url, which it does not use")
		}
	}
}

// grantsJSON runs `grants --json` and returns its rows and output.
func (w *world) grantsJSON(t *testing.T) ([]client.Grant, string) {
	t.Helper()
	code, out, errOut := w.run(t, nil, "grants", "--stack", w.stackFile, "--json")
	if code != exitcode.OK {
		t.Fatalf("grants: exit %d, stderr %q", code, errOut)
	}
	var rows []client.Grant
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("grants --json printed %q: %v", out, err)
	}
	return rows, out
}
