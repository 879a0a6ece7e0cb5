// Command localstack is `make run`: the whole broker on loopback, until
// Ctrl-C, or until moto or the stream poller stops (exit status 3, so that a
// stale stack is never left answering; docs/development.md "Exit status"). MOTO_PORT
// (4566), PORT (8080), WEB_PORT (8081, the demo page's) and LAMBDA_PORT
// (8082, Lambda's Invoke API for the revoker) choose the ports; SEED=1 adds a demo user, projects and buckets; AUDIT_TAIL=1 copies
// audit events to an SQS queue; ARCHIVE=1 gives the audit bus its archive,
// as in the template (slow in moto: docs/operations.md "Differences from AWS"). The demo page is
// served when web/dist/demo (`make web`) is built in the working directory.
package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/credbroker/credbroker/internal/envconf"
	"github.com/credbroker/credbroker/internal/exitcode"
	"github.com/credbroker/credbroker/internal/localstack"
	"github.com/credbroker/credbroker/internal/logging"
)

func main() {
	env := envconf.New(os.Getenv)
	level := env.LogLevel()
	o := localstack.Options{
		Out:        os.Stdout,
		MotoPort:   env.Int("MOTO_PORT", 0, 1, 65535),
		Port:       env.Int("PORT", 0, 1, 65535),
		WebPort:    env.Int("WEB_PORT", 0, 1, 65535),
		LambdaPort: env.Int("LAMBDA_PORT", localstack.DefaultLambdaPort, 1, 65535),
		Seed:       env.Bool("SEED", false),
		AuditTail:  env.Bool("AUDIT_TAIL", false),
		Archive:    env.Bool("ARCHIVE", false),
	}
	if st, err := os.Stat(filepath.Join(webDir, "index.html")); err == nil && st.Mode().IsRegular() {
		o.WebDir = webDir
		if p := cmp.Or(o.Port, localstack.DefaultPort); p == cmp.Or(o.WebPort, localstack.DefaultWebPort) {
			env.Bad("PORT and WEB_PORT are both %d: the API and the demo page need a port each", p)
		}
	}
	if err := env.Err("local stack"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(exitcode.Usage)
	}
	o.Logger = logging.New(os.Stderr, level, "")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := localstack.Run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "local stack:", err)
		os.Exit(localstack.ExitCode(err))
	}
}

// webDir is where `make web` puts the demo page.
const webDir = "web/dist/demo"
