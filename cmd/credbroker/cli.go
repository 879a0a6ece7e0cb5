package main

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

// cmdEnv is what a subcommand may touch: its streams, the environment and
// the clock (tests replace them all).
type cmdEnv struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// ConfigDir overrides the user's configuration directory (tests).
	ConfigDir string
}

func (e *cmdEnv) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// command is one subcommand. Each file registers its own in init, so that
// adding a command touches no other file.
type command struct {
	// path is the words that select it: "login", "admin member put".
	path    string
	summary string
	// run gets the arguments after the path; a flag.FlagSet it parses
	// reports usage errors as usageError.
	run func(ctx context.Context, env *cmdEnv, args []string) error
}

var commands []command

func register(c command) { commands = append(commands, c) }

// usageError is a mistake of the caller's: exit status 2, nothing done.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// run dispatches args to the command whose path they start with, and maps
// its error to one line on stderr and an exit status.
func run(ctx context.Context, args []string, env *cmdEnv) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		help(env.Stdout)
		return exitcode.OK
	}
	c, rest := find(args)
	if c == nil {
		fmt.Fprintf(env.Stderr, "credbroker: unknown command %q (see `credbroker help`)\n", strings.Join(args[:min(len(args), 3)], " "))
		return exitcode.Usage
	}
	err := c.run(ctx, env, rest)
	if err == nil {
		return exitcode.OK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitcode.OK
	}
	fmt.Fprintln(env.Stderr, "credbroker "+c.path+": "+oneLine(message(err)))
	var ue usageError
	if errors.As(err, &ue) {
		return exitcode.Usage
	}
	var fe foundError
	if errors.As(err, &fe) {
		return exitcode.Found
	}
	return exitcode.Of(err)
}

// foundError is a check that ran and found something (exit status 1).
type foundError struct{ msg string }

func (e foundError) Error() string { return e.msg }

// message is what the user reads: the safe message of a broker error with
// its cause when there is one, else the error's text.
func message(err error) string {
	var be *broker.Error
	if errors.As(err, &be) && be.Message != "" {
		if be.Err != nil {
			return be.Message + ": " + be.Err.Error()
		}
		return be.Message
	}
	return err.Error()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// find returns the command with the longest path that args start with.
func find(args []string) (*command, []string) {
	var best *command
	n := 0
	for i := range commands {
		words := strings.Fields(commands[i].path)
		if len(words) > n && len(args) >= len(words) && slices.Equal(args[:len(words)], words) {
			best, n = &commands[i], len(words)
		}
	}
	if best == nil {
		return nil, nil
	}
	return best, args[n:]
}

func help(w io.Writer) {
	fmt.Fprintln(w, "usage: credbroker <command> [flags]")
	fmt.Fprintln(w)
	sorted := slices.Clone(commands)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].path < sorted[j].path })
	for _, c := range sorted {
		fmt.Fprintf(w, "  %-26s %s\n", c.path, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprint(w, targetHelp)
	fmt.Fprintln(w, "\nRun `credbroker <command> -h` for a command's flags. Exit status: 0 ok, 1 found (a check's finding), 2 usage or invalid input (nothing done), 3 failure, 4 environment.")
}

// newFlags returns a flag set for the command whose errors are usage
// errors and whose -h prints to stderr.
func newFlags(env *cmdEnv, path string) *flag.FlagSet {
	fs := flag.NewFlagSet("credbroker "+path, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	return fs
}

// parse parses args and refuses stray arguments. The flag list goes to
// stderr for -h only: a usage error stays one line.
func parse(fs *flag.FlagSet, args []string) error {
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
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	return nil
}
