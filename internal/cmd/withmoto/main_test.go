package main

import (
	"testing"

	"github.com/credbroker/credbroker/internal/exitcode"
)

// Without moto_server on PATH the machine is not ready: Environment, and
// the command is not run.
func TestWithoutMotoServerTheStatusIsEnvironment(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if code := run([]string{"sh", "-c", "exit 0"}); code != exitcode.Environment {
		t.Errorf("exit %d, want %d", code, exitcode.Environment)
	}
}
