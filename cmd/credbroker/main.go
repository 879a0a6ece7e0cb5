// Command credbroker is the broker's command-line tool: sign in and hand
// credentials to the AWS CLI and SDKs (login, credential-process, env), and
// the operators' commands (admin ...). Run `credbroker help` for the list.
//
// Every subcommand works against the local stack (--stack .local/stack.json)
// or a deployed one (flags or CREDBROKER_* variables; see `credbroker help`).
// Errors are one line on stderr and a nonzero exit status (docs/development.md
// "Exit status"): 2 for usage and validation errors, and nothing is written then.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], &cmdEnv{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv})
	stop()
	os.Exit(code)
}
