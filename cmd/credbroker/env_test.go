package main

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/exitcode"
)

// The export lines survive a real shell whatever the values hold.
func TestEnvPrintsExportLinesAShellReadsBackExactly(t *testing.T) {
	w := newWorld(t, twoSets)
	w.login(t, "alice", "Alice-Passw0rd!")
	code, out, errOut := w.run(t, nil, "env", "--stack", w.stackFile, "--bucket", "exports")
	if code != exitcode.OK || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	exp := w.clock.Now().Add(15 * time.Minute).UTC().Format(time.RFC3339)
	if !strings.Contains(out, "\n# credbroker: credentials for s3://exports/, valid until "+exp+"\n") {
		t.Errorf("no comment with the expiration in:\n%s", out)
	}
	got := shellRead(t, out, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
	if d := cmp.Diff([]string{"K2", secretOf(2), "session-2"}, got); d != "" {
		t.Errorf("what the shell read (-want +got):\n%s", d)
	}
}

func TestShellQuoteRoundTrips(t *testing.T) {
	values := []string{"", "plain", "it's", "''", `a\b`, "$HOME", "`id`", "$(id)", "a b\tc", "line\nbreak", `"q"`, "!x", "*", "~", "é ü 🙂", "-n"}
	var script strings.Builder
	for i, v := range values {
		script.WriteString("export V" + string(rune('A'+i)) + "=" + shellQuote(v) + "\n")
	}
	var names []string
	for i := range values {
		names = append(names, "V"+string(rune('A'+i)))
	}
	if d := cmp.Diff(values, shellRead(t, script.String(), names...)); d != "" {
		t.Errorf("values read back (-want +got):\n%s", d)
	}
}

// shellRead runs script in sh and returns the variables' values.
func shellRead(t *testing.T, script string, names ...string) []string {
	t.Helper()
	for _, n := range names {
		script += `printf '%s\0' "$` + n + `"` + "\n"
	}
	out, err := exec.Command("sh", "-c", script).Output()
	if err != nil {
		t.Fatalf("sh: %v", err)
	}
	got := strings.Split(string(out), "\x00")
	return got[:len(got)-1]
}

func TestUsageErrorsExit2WithNothingWritten(t *testing.T) {
	w := newWorld(t, twoSets)
	w.login(t, "alice", "Alice-Passw0rd!")
	st := w.stackFile
	tests := []struct {
		name string
		args []string
		says string
	}{
		{"login without a username", []string{"login", "--stack", st}, "--username is required"},
		{"login with an unknown flow", []string{"login", "--stack", st, "--username", "alice", "--flow", "kerberos"}, "--flow must be"},
		{"login with a stray argument", []string{"login", "--stack", st, "--username", "alice", "now"}, "unexpected arguments"},
		{"an unknown flag", []string{"credential-process", "--stack", st, "--bucket", "raw-data", "--profile", "x"}, "flag provided but not defined: -profile"},
		{"no scope", []string{"credential-process", "--stack", st}, "--bucket B (or --project P)"},
		{"a key without a bucket", []string{"credential-process", "--stack", st, "--project", "p1", "--key", "k"}, "need --bucket"},
		{"an access level without a bucket", []string{"env", "--stack", st, "--project", "p1", "--access", "write"}, "need --bucket"},
		{"an unknown access level", []string{"credential-process", "--stack", st, "--bucket", "raw-data", "--access", "admin"}, "--access must be read or write"},
		{"an S3 URL for a bucket", []string{"credential-process", "--stack", st, "--bucket", "s3://raw-data/x"}, "is not an S3 bucket name"},
		{"a bucket name with a newline", []string{"env", "--stack", st, "--bucket", "raw-data\necho hi"}, "is not an S3 bucket name"},
		{"a key with a control character", []string{"env", "--stack", st, "--bucket", "raw-data", "--key", "a\x1b[2J"}, "control characters"},
		{"an invalid project id", []string{"env", "--stack", st, "--project", "p 1"}, "is not a project id"},
		{"no stack named", []string{"credential-process", "--bucket", "raw-data"}, "pass --stack .local/stack.json, or the flags or CREDBROKER_* variables for userPoolId, userPoolClientId, apiUrl"},
		{"a stack file that does not exist", []string{"env", "--stack", st + ".missing", "--bucket", "raw-data"}, "start the local stack with `make run` first"},
		{"a user pool id that is not one", []string{"credential-process", "--user-pool-id", "../../etc", "--client-id", "c", "--api-url", "https://api.example.com", "--bucket", "raw-data"}, "is not a Cognito user pool id"},
		{"an API URL in plain http", []string{"credential-process", "--user-pool-id", testPool, "--client-id", testClient, "--api-url", "http://api.example.com", "--bucket", "raw-data"}, "must use https"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := w.run(t, nil, tt.args...)
			if code != exitcode.Usage || out != "" || !strings.Contains(errOut, tt.says) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 saying %q", code, out, errOut, tt.says)
			}
			if strings.Count(errOut, "\n") != 1 {
				t.Errorf("stderr is not one line: %q", errOut)
			}
		})
	}
	if got := w.api.requests(); len(got) != 0 {
		t.Errorf("usage errors reached the endpoint: %v", got)
	}
	if d := cmp.Diff([]string{"USER_PASSWORD_AUTH"}, w.idp.flows()); d != "" {
		t.Errorf("usage errors reached Cognito (-want +got):\n%s", d)
	}
}
