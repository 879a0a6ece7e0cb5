// Command load is `make load`: N concurrent clients ask the credential
// endpoint for the credentials of M users for T seconds while a writer adds
// and removes the buckets of a project they all share, then the clients go
// on until every user's answer matches the final state. It reports answers
// per second, latency, statuses, the stack's AWS calls per answer, and the
// convergence time, and checks the broker's invariants on every answer:
//
//   - no over-grant: no answer lists, and no credential set's session
//     policy allows, anything the user was never granted;
//   - no stale grant: an answer to a request during which the user's policy
//     item did not change carries exactly that item's version and grants;
//   - every request gets a 200 or a 503 with Retry-After (a token of one
//     of the run's users never deserves a 401 or 403), within -timeout;
//   - every user converges, and verify finds no drift afterwards.
//
// A broken invariant exits 1; latency and call-count targets are only
// reported. By default it starts its own moto and local stack in process,
// with a proxy between the stack and moto that counts the stack's calls and
// can inject faults (-faults); -stack runs against a stack started by
// `make run` instead (no call counts, no faults). docs/benchmarks.md "Load".
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/credbroker/credbroker/internal/exitcode"
	"github.com/credbroker/credbroker/internal/replay"
	"github.com/credbroker/credbroker/internal/wire"
)

// Exit codes.
const (
	exitOK       = exitcode.OK
	exitBroken   = exitcode.Found // a hard invariant broke
	exitUsage    = exitcode.Usage
	exitNoTarget = exitcode.Failure // the stack or the run's data could not be set up
)

// options are the flags.
type options struct {
	Stack           string
	Moto            string
	Clients         int
	Users           int
	Duration        time.Duration
	ChangeEvery     time.Duration
	Places          int
	Faults          *faultSpec
	Check           float64
	RequestTimeout  time.Duration
	ConvergeTimeout time.Duration
	Archive         bool
	Verify          bool
	JSON            bool
	Seed            int64
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(cli(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func cli(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var faults string
	fs.StringVar(&o.Stack, "stack", "", "a running local stack's stack.json (make run); empty: start a stack in this process")
	fs.StringVar(&o.Moto, "moto", "", "with an in-process stack: the URL of a moto_server to use instead of starting one")
	fs.IntVar(&o.Clients, "clients", 16, "concurrent clients, each with one request in flight")
	fs.IntVar(&o.Users, "users", 20, "users, asked for in turn")
	fs.DurationVar(&o.Duration, "duration", 60*time.Second, "length of the measured load")
	fs.DurationVar(&o.ChangeEvery, "change-every", time.Second, "the writer adds or removes a bucket of the shared project this often (0: no writer)")
	fs.IntVar(&o.Places, "places", 8, "buckets and folders the writer adds and removes")
	fs.StringVar(&faults, "faults", "", `fault window between the stack and moto (in-process stack only), e.g. "at=20s,for=10s,latency=300ms,reset=0.1,hang=0.05,fail=0.2,only=sts+events"`)
	fs.Float64Var(&o.Check, "check", 0.25, "fraction of requests bracketed by strongly consistent reads of the user's policy item (the stale-grant check; each costs moto two reads)")
	fs.DurationVar(&o.RequestTimeout, "timeout", 10*time.Second, "a request without an answer by then is a hang (the credentials function's timeout in template.yaml)")
	fs.DurationVar(&o.ConvergeTimeout, "converge-timeout", 30*time.Second, "how long after the load the answers may take to match the final state")
	fs.BoolVar(&o.Archive, "archive", false, "in-process stack: give the audit bus its archive, as in template.yaml (slow in moto)")
	fs.BoolVar(&o.Verify, "verify", true, "run verify (make verify) after the run")
	fs.BoolVar(&o.JSON, "json", false, "print the report as JSON")
	fs.Int64Var(&o.Seed, "seed", 0, "seed of the writer's and the fault window's choices (0: random)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: load [-stack .local/stack.json] [-clients 16] [-users 20] [-duration 60s] [-change-every 1s] [-faults SPEC] [-json]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	err := func() error {
		var err error
		switch {
		case fs.NArg() > 0:
			return fmt.Errorf("unexpected arguments %q", fs.Args())
		case o.Clients < 1 || o.Users < 1 || o.Places < 1:
			return fmt.Errorf("-clients, -users and -places must be at least 1")
		case o.Duration <= 0 || o.RequestTimeout <= 0 || o.ConvergeTimeout <= 0:
			return fmt.Errorf("-duration, -timeout and -converge-timeout must be positive")
		case o.ChangeEvery < 0 || o.Check < 0 || o.Check > 1:
			return fmt.Errorf("-change-every must not be negative and -check must be in 0..1")
		case o.Stack != "" && (faults != "" || o.Moto != "" || o.Archive):
			return fmt.Errorf("-faults, -moto and -archive need the in-process stack: the proxy sits between that stack and moto")
		}
		o.Faults, err = parseFaults(faults, o.Duration)
		return err
	}()
	if err != nil {
		fmt.Fprintln(stderr, "load:", err)
		fs.Usage()
		return exitUsage
	}
	if o.Seed == 0 {
		o.Seed = rand.Int64N(1<<31) + 1
	}

	res, err := run(ctx, o, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "load:", err)
		return exitNoTarget
	}
	if o.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
	} else {
		res.writeText(stdout)
	}
	if broken := res.broken(); len(broken) > 0 {
		for _, b := range broken {
			fmt.Fprintln(stderr, "load: invariant broken:", b)
		}
		return exitBroken
	}
	return exitOK
}

// run sets up the stack and the run's data, loads the stack and reports.
func run(ctx context.Context, o options, progress io.Writer) (res *Result, err error) {
	id := newRunID()
	t, err := openTarget(ctx, o, id, progress)
	if err != nil {
		return nil, err
	}
	defer func() {
		t.keepLogs = err != nil || res == nil || len(res.broken()) > 0
		t.stop()
	}()
	w, err := setUp(ctx, t.aws, t.info, id, o.Users, o.Places)
	if err != nil {
		return nil, err
	}
	r := newRunner(o, t, w)
	fmt.Fprintf(progress, "load: run %s: %d users signed in; waiting for their initial grants\n", id, o.Users)
	if err := r.warmUp(ctx, time.Minute); err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "load: %d clients for %v, a change every %v (seed %d)\n", o.Clients, o.Duration, o.ChangeEvery, o.Seed)

	res = &Result{
		RunID: id, Stack: "in-process", Archive: o.Archive, Clients: o.Clients, Users: o.Users,
		Duration: o.Duration.String(), ChangeEvery: o.ChangeEvery.String(), Faults: o.Faults.String(), Check: o.Check,
	}
	if o.Stack != "" {
		res.Stack = o.Stack
	}
	start := time.Now()
	end := start.Add(o.Duration)
	var window faultWindow
	if o.Faults != nil {
		window = faultWindow{start: start.Add(o.Faults.At), end: start.Add(o.Faults.At + o.Faults.For), spec: o.Faults}
		t.proxy.setWindow(window)
	}
	r.rec.begin(start, end, window)
	var calls0 counts
	if t.proxy != nil {
		calls0 = t.proxy.snapshot()
	}
	moto0, self0 := cpuTime(t.motoPid), selfCPU()

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		clients := make(chan struct{}, o.Clients)
		for range o.Clients {
			go func() { r.client(ctx, stop); clients <- struct{}{} }()
		}
		for range o.Clients {
			<-clients
		}
	}()
	stopClients := func() { close(stop); <-done }

	rng := rand.New(rand.NewPCG(uint64(o.Seed), 1))
	lastChange, changes, werr := r.write(ctx, start, end, rng)
	res.Changes = changes
	elapsed := time.Since(start)
	if t.proxy != nil {
		res.Calls = callsOf(t.proxy.snapshot().minus(calls0), elapsed)
	}
	res.MotoCPU = (cpuTime(t.motoPid) - moto0).Seconds() / elapsed.Seconds()
	res.ProcessCPU = (selfCPU() - self0).Seconds() / elapsed.Seconds()
	if werr != nil {
		stopClients()
		return nil, werr
	}

	if o.ChangeEvery > 0 {
		fmt.Fprintf(progress, "load: writer stopped after %d changes; waiting for every answer to match the final state\n", changes)
		secs, pending := r.awaitConvergence(ctx, lastChange, o.ConvergeTimeout)
		r.rec.mu.Lock()
		answered := len(r.rec.latencies)
		r.rec.mu.Unlock()
		perUser := float64(o.Users) / float64(max(1, answered)) * o.Duration.Seconds()
		res.Convergence = &Convergence{Seconds: secs.Seconds(), Converged: pending == 0, Pending: pending, GranularitySeconds: perUser}
	}
	stopClients()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	r.rec.mu.Lock()
	res.Answers = len(r.rec.latencies)
	res.AnswersPerSecond = float64(res.Answers) / o.Duration.Seconds()
	res.Latency, res.Latency200 = latencyOf(r.rec.latencies), latencyOf(r.rec.latencies200)
	res.Statuses = r.rec.statuses
	res.Problems, res.Examples = r.rec.problems, r.rec.examples
	res.Checked, res.Decided = r.rec.checked, r.rec.decided
	if window.spec != nil {
		res.FaultWindow = &FaultReport{AtSeconds: o.Faults.At.Seconds(), ForSeconds: o.Faults.For.Seconds(), Statuses: r.rec.phases}
		if !r.rec.lastFailure.IsZero() {
			res.FaultWindow.RecoveredSeconds = r.rec.lastFailure.Sub(window.end).Seconds()
		}
	}
	r.rec.mu.Unlock()
	if res.Calls != nil && res.Answers > 0 {
		res.Calls.perAnswer(res.Answers)
	}

	if err := t.stackStopped(); err != nil {
		res.Problems["stack stopped"]++
		res.Examples = append(res.Examples, "stack stopped: "+err.Error())
	}
	if o.Verify {
		fmt.Fprintln(progress, "load: verifying the policy table")
		res.Verify = verify(ctx, t)
		if !res.Verify.Clean {
			res.Problems["verify"] = max(1, res.Verify.Drift)
		}
	}
	res.targets()
	return res, nil
}

func callsOf(c counts, elapsed time.Duration) *Calls {
	total := 0
	for _, n := range c.Calls {
		total += n
	}
	return &Calls{
		PerOperation: c.Calls, PerSecond: float64(total) / elapsed.Seconds(),
		DuplicateAssumeRoles: c.DuplicateMints, ReauditedIssuances: c.Reaudited, DeniedOnArrival: c.DeniedOnArrival,
		Faults: c.Faults, ProxyErrors: c.ProxyErrors,
		EventsPerAnswer: map[string]float64{}, eventCounts: c.Events,
	}
}

// perAnswer fills the ratios once the number of answers is known.
func (c *Calls) perAnswer(answers int) {
	n := float64(answers)
	c.AssumeRolePerAnswer = float64(c.PerOperation["sts.AssumeRole"]) / n
	c.PutEventsPerAnswer = float64(c.PerOperation["AWSEvents.PutEvents"]) / n
	c.EventsPerAnswer = map[string]float64{}
	for k, v := range c.eventCounts {
		c.EventsPerAnswer[k] = float64(v) / n
	}
}

// verify runs the rebuild package's Verify on the stack's tables, straight
// against moto: a clean result means no change was lost.
func verify(ctx context.Context, t *target) *VerifyResult {
	cfg := replay.Config{
		MembershipTable: t.info.MembershipTable, PolicyTable: t.info.PolicyTable, AuditBusName: t.info.EventBusName,
		Partition: "aws",
	}
	svc := wire.Rebuild(cfg, t.aws, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	rep, err := svc.Verify(ctx)
	v := &VerifyResult{Users: rep.Users, Drift: rep.Drift(), Clean: err == nil}
	var drift *replay.DriftError
	if err != nil && !errors.As(err, &drift) {
		v.Error = err.Error()
	}
	return v
}
