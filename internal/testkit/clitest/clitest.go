// Package clitest runs credbroker's command lines in the test process, as
// a user would run them: streams in buffers, the environment and the clock
// the test's.
package clitest

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/cli"
)

// Options are what a run may set; the zero value is an empty environment,
// the machine's clock and a fresh configuration directory.
type Options struct {
	Env       map[string]string
	Clock     func() time.Time
	ConfigDir string
	Stdin     string
}

// Run runs args on cmds and returns the exit status and what was written.
func Run(tb testing.TB, cmds []cli.Command, o Options, args ...string) (int, string, string) {
	tb.Helper()
	if o.ConfigDir == "" {
		o.ConfigDir = tb.TempDir()
	}
	var stdout, stderr bytes.Buffer
	code := cli.Run(context.Background(), cmds, args, &cli.Env{
		Stdin: strings.NewReader(o.Stdin), Stdout: &stdout, Stderr: &stderr,
		Getenv: func(k string) string { return o.Env[k] }, Clock: o.Clock, ConfigDir: o.ConfigDir,
	})
	return code, stdout.String(), stderr.String()
}
