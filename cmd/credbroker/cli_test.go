package main

import (
	"strings"
	"testing"

	"github.com/credbroker/credbroker/internal/exitcode"
	"github.com/credbroker/credbroker/internal/testkit/clitest"
)

// runCLI runs the command line as a user would, with the variables env,
// and returns its exit status and what it wrote.
func runCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	return clitest.Run(t, commands(), clitest.Options{Env: env}, args...)
}

func TestHelpListsTheCommandsAndHowToNameAStack(t *testing.T) {
	code, out, _ := runCLI(t, nil, "help")
	if code != exitcode.OK || !strings.Contains(out, "--stack FILE") || !strings.Contains(out, "CREDBROKER_API_URL") {
		t.Errorf("help: exit %d\n%s", code, out)
	}
	for _, c := range commands() {
		if !strings.Contains(out, c.Path) {
			t.Errorf("help does not list %q", c.Path)
		}
	}
}

func TestAnUnknownCommandIsAUsageErrorOnOneLine(t *testing.T) {
	code, out, errOut := runCLI(t, nil, "frobnicate", "--now")
	if code != exitcode.Usage || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, `"frobnicate --now"`) {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
