package admin

import (
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/testkit/clitest"
)

// runCLI runs the command line as an operator would and returns its exit
// status and what it wrote.
func runCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	return runCLIAt(t, nil, env, args...)
}

// runCLIAt is runCLI with the command line's clock set to now (nil: the
// machine's).
func runCLIAt(t *testing.T, now func() time.Time, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	return clitest.Run(t, Commands(), clitest.Options{Env: env, Clock: now}, args...)
}
