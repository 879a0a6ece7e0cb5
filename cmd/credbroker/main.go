// Command credbroker is the broker's command-line tool: sign in and hand
// credentials to the AWS CLI and SDKs (login, credential-process, env,
// grants: this package), and the operators' commands (admin ...:
// internal/admin). Run `credbroker help` for the list.
//
// Every subcommand works against the local stack (--stack .local/stack.json)
// or a deployed one (flags or CREDBROKER_* variables; see `credbroker help`).
// Errors are one line on stderr that names the next step, and a nonzero exit
// status (internal/exitcode): 2 for usage and validation errors, and
// nothing is written then; 5 when the user must sign in again; 6 when the
// user has no access to what was asked.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/credbroker/credbroker/internal/admin"
	"github.com/credbroker/credbroker/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], &cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv})
	stop()
	os.Exit(code)
}

// userCommands are this package's: each file registers its own in init.
var userCommands []cli.Command

func register(c cli.Command) { userCommands = append(userCommands, c) }

// commands are the user's commands and the operators'.
func commands() []cli.Command { return append(admin.Commands(), userCommands...) }

// run runs the command line.
func run(ctx context.Context, args []string, env *cli.Env) int {
	return cli.Run(ctx, commands(), args, env)
}
