package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/exitcode"
)

// runCLI runs the command line as a user would and returns its exit status
// and what it wrote.
func runCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	return runCLIAt(t, nil, env, args...)
}

// runCLIAt is runCLI with the command line's clock set to now (nil: the
// machine's).
func runCLIAt(t *testing.T, now func() time.Time, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &cmdEnv{
		Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr,
		Getenv: func(k string) string { return env[k] }, ConfigDir: t.TempDir(), Now: now,
	})
	return code, stdout.String(), stderr.String()
}

func TestHelpListsTheCommandsAndHowToNameAStack(t *testing.T) {
	code, out, _ := runCLI(t, nil, "help")
	if code != exitcode.OK || !strings.Contains(out, "--stack FILE") || !strings.Contains(out, "CREDBROKER_API_URL") {
		t.Errorf("help: exit %d\n%s", code, out)
	}
	for _, c := range commands {
		if !strings.Contains(out, c.path) {
			t.Errorf("help does not list %q", c.path)
		}
	}
}

func TestAnUnknownCommandIsAUsageErrorOnOneLine(t *testing.T) {
	code, out, errOut := runCLI(t, nil, "frobnicate", "--now")
	if code != exitcode.Usage || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, `"frobnicate --now"`) {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
