// Package cli is the plumbing of the credbroker command: what a subcommand
// may touch (Env), how it is found and run (Command, Run), its flags and
// their errors, the stack it works on (Target), and its listings (Rows).
// cmd/credbroker wires the user commands and internal/admin's operator
// commands onto it.
//
// Errors are one line on stderr and an exit status from exitcode.Of: a
// mistake of the caller's is a broker.Invalid error (Usagef), a check that
// found something a FoundError. AWS failing under an operator's command
// names the next step (ExplainAWS).
package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/exitcode"
)

// Env is what a subcommand may touch: its streams, the environment and the
// clock (tests replace them all).
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Clock is the clock; nil means time.Now.
	Clock func() time.Time
	// ConfigDir overrides the user's configuration directory (tests).
	ConfigDir string
	// target is the stack the command resolved (TargetFlags.Resolve), for
	// the next steps of its AWS errors (ExplainAWS).
	target *Target
}

// Now is the command's time.
func (e *Env) Now() time.Time {
	if e.Clock != nil {
		return e.Clock()
	}
	return time.Now()
}

// Command is one subcommand.
type Command struct {
	// Path is the words that select it: "login", "admin member put".
	Path    string
	Summary string
	// Run gets the arguments after the path.
	Run func(ctx context.Context, env *Env, args []string) error
}

// Usagef returns a mistake of the caller's: exit status 2, nothing done.
func Usagef(format string, args ...any) error {
	return broker.Errorf(broker.Invalid, "usage", format, args...)
}

// FoundError is a check that ran and found something (exit status 1).
type FoundError struct{ Msg string }

func (e *FoundError) Error() string { return e.Msg }

// Foundf returns a FoundError.
func Foundf(format string, args ...any) error { return &FoundError{fmt.Sprintf(format, args...)} }

// ExitCode is the exit status of a command's error: FoundError is Found,
// the rest is exitcode.Of's.
func ExitCode(err error) int {
	var fe *FoundError
	if errors.As(err, &fe) {
		return exitcode.Found
	}
	return exitcode.Of(err)
}

// Run dispatches args to the command of cmds whose path they start with,
// and maps its error to one line on stderr and an exit status (ExitCode).
// No command, or help, lists cmds; a group ("admin") alone lists its own.
func Run(ctx context.Context, cmds []Command, args []string, env *Env) int {
	if len(args) == 0 || isHelp(args[0]) {
		help(env.Stdout, cmds, "")
		return exitcode.OK
	}
	c, rest := find(cmds, args)
	if c == nil {
		// `credbroker admin` or `credbroker admin -h`: the commands under it.
		if group := groupOf(cmds, args); group != "" && (len(args) == 1 || isHelp(args[1])) {
			help(env.Stdout, cmds, group)
			return exitcode.OK
		}
		fmt.Fprintf(env.Stderr, "credbroker: unknown command %q (see `credbroker help`)\n", strings.Join(args[:min(len(args), 3)], " "))
		return exitcode.Usage
	}
	err := c.Run(ctx, env, rest)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitcode.OK
	}
	fmt.Fprintln(env.Stderr, "credbroker "+c.Path+": "+OneLine(Message(err)))
	return ExitCode(err)
}

func isHelp(a string) bool { return a == "help" || a == "-h" || a == "--help" }

// groupOf returns args[0] when it is the first word of some command's
// longer path ("admin").
func groupOf(cmds []Command, args []string) string {
	for _, c := range cmds {
		if words := strings.Fields(c.Path); len(words) > 1 && words[0] == args[0] {
			return args[0]
		}
	}
	return ""
}

// Message is what the user reads: the safe message of a broker error with
// its cause when there is one, else the error's text.
func Message(err error) string {
	var be *broker.Error
	if errors.As(err, &be) && be.Message != "" {
		if be.Err != nil {
			return be.Message + ": " + be.Err.Error()
		}
		return be.Message
	}
	return err.Error()
}

// OneLine folds s onto one line.
func OneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// find returns the command with the longest path that args start with.
func find(cmds []Command, args []string) (*Command, []string) {
	var best *Command
	n := 0
	for i := range cmds {
		words := strings.Fields(cmds[i].Path)
		if len(words) > n && len(args) >= len(words) && slices.Equal(args[:len(words)], words) {
			best, n = &cmds[i], len(words)
		}
	}
	if best == nil {
		return nil, nil
	}
	return best, args[n:]
}

// help lists the commands (those under group when it is not empty).
func help(w io.Writer, cmds []Command, group string) {
	if group == "" {
		fmt.Fprintln(w, "usage: credbroker <command> [flags]")
	} else {
		fmt.Fprintf(w, "usage: credbroker %s <command> [flags]\n", group)
	}
	fmt.Fprintln(w)
	sorted := slices.Clone(cmds)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	for _, c := range sorted {
		if group == "" || strings.HasPrefix(c.Path, group+" ") {
			fmt.Fprintf(w, "  %-26s %s\n", c.Path, c.Summary)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprint(w, TargetHelp)
	fmt.Fprintln(w, "\nRun `credbroker <command> -h` for a command's flags. Exit status: 0 ok, 1 found (a check's finding), 2 usage or invalid input (nothing done), 3 failure, 4 environment, 5 not signed in (`credbroker login`), 6 no access.")
}

// NewFlags returns a flag set for the command whose errors are usage
// errors and whose -h prints to stderr.
func NewFlags(env *Env, path string) *flag.FlagSet {
	fs := flag.NewFlagSet("credbroker "+path, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	return fs
}

// Parse parses args and refuses stray arguments. The flag list goes to
// stderr for -h only: a usage error stays one line.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := parseQuiet(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return Usagef("unexpected arguments %q", fs.Args())
	}
	return nil
}

// parseQuiet parses args, printing the flag list on -h only.
func parseQuiet(fs *flag.FlagSet, args []string) error {
	out := fs.Output()
	var listing bytes.Buffer
	fs.SetOutput(&listing)
	err := fs.Parse(args)
	fs.SetOutput(out)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			_, _ = out.Write(listing.Bytes())
			return err
		}
		return Usagef("%s", err)
	}
	return nil
}

// ParseWithArgs parses flags that may come before, between or after the
// positional arguments, and returns those.
func ParseWithArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseQuiet(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// Given reports whether the flag was set on the command line.
func Given(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}
