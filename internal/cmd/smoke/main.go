// Command smoke is `make smoke`: the post-deployment smoke check (docs/operations.md
// "Smoke check"). It creates a throwaway Cognito user, gives it write
// access to one bucket through a membership of its own, signs it in,
// fetches its credentials with the Go client, writes and reads an object
// with them, removes the membership, measures the seconds until S3 denies
// the old credentials, cleans up and prints the figures.
//
// With -stack-name (STACK_NAME) it runs against a deployed stack, whose
// outputs it reads with CloudFormation DescribeStacks, in a bucket the
// operator names (-bucket); real IAM judges the S3 calls. Without it, it
// starts its own local stack on free ports (and its own moto_server,
// unless -moto names one), with a judge in front of moto: moto enforces
// no IAM, so the judge evaluates every S3 call of the user's credentials
// with the project's IAM evaluator (session policy, the base role's
// policies and boundary as moto's IAM holds them, the session's tags and
// issue time) before moto sees it.
//
// Exit status: 0 passed, 1 the check failed (the message says at which
// step), 2 usage.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/credbroker/credbroker/internal/exitcode"
)

// options are the flags.
type options struct {
	StackName    string
	Region       string
	Bucket       string
	Moto         string
	GrantTimeout time.Duration
	DenyTimeout  time.Duration
	PollEvery    time.Duration
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(cli(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func cli(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	o, err := parse(args, getenv, stderr)
	if err != nil {
		if err != flag.ErrHelp {
			fmt.Fprintln(stderr, "smoke:", err)
		}
		return exitcode.Usage
	}
	t, stop, err := open(ctx, o, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "smoke:", err)
		return exitcode.Found
	}
	res, err := run(ctx, t, o, stderr)
	stop(err != nil)
	if res != nil {
		res.writeText(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "smoke: FAILED:", err)
		return exitcode.Found
	}
	fmt.Fprintln(stdout, "smoke: passed")
	return exitcode.OK
}

// parse reads the flags; STACK_NAME, SMOKE_BUCKET and AWS_REGION fill in
// what they leave out.
func parse(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("smoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.StackName, "stack-name", getenv("STACK_NAME"), "a deployed stack's name (default $STACK_NAME); empty: start a local stack in this process")
	fs.StringVar(&o.Region, "region", getenv("AWS_REGION"), "the deployed stack's region (default $AWS_REGION, else the AWS configuration's)")
	fs.StringVar(&o.Bucket, "bucket", getenv("SMOKE_BUCKET"), "deployed stack: an existing bucket within the base role's ceiling, where the check writes and deletes one object (default $SMOKE_BUCKET)")
	fs.StringVar(&o.Moto, "moto", "", "local stack: the URL of a moto_server to use instead of starting one")
	fs.DurationVar(&o.GrantTimeout, "grant-timeout", 30*time.Second, "how long the new membership may take to show in the credentials")
	fs.DurationVar(&o.DenyTimeout, "deny-timeout", 60*time.Second, "how long the old credentials may stay allowed after the membership's removal")
	fs.DurationVar(&o.PollEvery, "poll", 250*time.Millisecond, "the wait between two calls of the old credentials")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: smoke [-stack-name NAME -bucket BUCKET [-region REGION]] [-deny-timeout 60s]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	case o.StackName != "" && o.Bucket == "":
		return o, fmt.Errorf("a deployed stack needs -bucket (SMOKE_BUCKET): an existing bucket within the base role's ceiling")
	case o.StackName != "" && o.Moto != "":
		return o, fmt.Errorf("-moto is for the local stack only")
	case o.StackName == "" && o.Bucket != "":
		return o, fmt.Errorf("-bucket is for a deployed stack only: the local check creates its own")
	case o.GrantTimeout <= 0 || o.DenyTimeout <= 0 || o.PollEvery <= 0:
		return o, fmt.Errorf("-grant-timeout, -deny-timeout and -poll must be positive")
	}
	return o, nil
}

// open returns the target and what stops it (keepLogs: the run failed).
func open(ctx context.Context, o options, progress io.Writer) (*target, func(keepLogs bool), error) {
	if o.StackName != "" {
		t, err := openDeployed(ctx, o)
		return t, func(bool) {}, err
	}
	return openLocal(ctx, o, progress)
}
