// Command replay rebuilds, verifies or replays the policy table.
//
// Under Lambda (AWS_LAMBDA_RUNTIME_API set) it takes an event
// {"mode":"rebuild"|"verify"|"replay","since":"<RFC 3339, replay only>"}
// and answers with a JSON report; the daily schedule sends {"mode":"verify"}.
//
// From a terminal:
//
//	replay -stack .local/stack.json -mode verify          # the local stack
//	replay -mode rebuild                                  # a deployed stack: MEMBERSHIP_TABLE,
//	                                                      # POLICY_TABLE, AUDIT_BUS_NAME, ... and
//	                                                      # the usual AWS credentials
//
// It prints the report as JSON on stdout and progress on stderr, and exits
// 0 when all is well, 1 when verify found drift, 2 on a usage or
// configuration error, 3 on any other failure.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/credbroker/credbroker/internal/awsconfig"
	"github.com/credbroker/credbroker/internal/ddbstore"
	"github.com/credbroker/credbroker/internal/exitcode"
	"github.com/credbroker/credbroker/internal/logging"
	"github.com/credbroker/credbroker/internal/replay"
	"github.com/credbroker/credbroker/internal/stackfile"
	"github.com/credbroker/credbroker/internal/wire"
)

func main() {
	if os.Getenv("AWS_LAMBDA_RUNTIME_API") != "" {
		os.Exit(lambdaMain())
	}
	os.Exit(cli(os.Args[1:], os.Stdout, os.Stderr))
}

func lambdaMain() int {
	cfg, err := replay.ConfigFromEnv(os.Getenv)
	log := logging.New(os.Stdout, cfg.LogLevel, "replay")
	if err != nil {
		log.Error("invalid configuration", "err", err)
		return exitcode.Usage
	}
	awsCfg, err := awsconfig.Load(context.Background())
	if err != nil {
		log.Error("load AWS configuration", "err", err)
		return exitcode.Failure
	}
	svc := wire.Rebuild(cfg, awsCfg, log)
	svc.Progress, svc.ProgressEvery = replay.LogProgress(log), 30*time.Second
	lambda.Start(func(ctx context.Context, payload json.RawMessage) (replay.Report, error) {
		req, err := replay.DecodeEvent(payload)
		if err != nil {
			log.Error("invalid event", "err", err, "event", string(payload))
			return replay.Report{}, err
		}
		if req.Mode == replay.ModeReplay && cfg.StreamARN == "" {
			return replay.Report{}, fmt.Errorf("MEMBERSHIP_STREAM_ARN is required for replay")
		}
		rep, err := svc.Run(ctx, req)
		// An error result carries only a message; the whole report goes
		// to the log.
		log.Info("report", "report", rep, "exitCode", replay.ExitCode(err))
		return rep, err
	})
	return 0
}

// cli runs one operation from a terminal and returns the exit code.
func cli(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mode := fs.String("mode", "", `operation: "rebuild", "verify" or "replay"`)
	since := fs.String("since", "", "replay only: skip records created before this RFC 3339 time")
	stack := fs.String("stack", "", "path to the local stack's stack.json; without it, the environment names a deployed stack")
	segments := fs.Int("segments", 4, "parallel Scan segments")
	concurrency := fs.Int("concurrency", 16, "users processed at once")
	every := fs.Duration("progress", 2*time.Second, "interval between progress lines")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: replay -mode rebuild|verify|replay [-since RFC3339] [-stack .local/stack.json]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitcode.Usage
	}
	req, err := replay.NewRequest(*mode, *since)
	switch {
	case err != nil:
	case fs.NArg() > 0:
		err = fmt.Errorf("unexpected arguments %q", fs.Args())
	case *segments < 1 || *concurrency < 1:
		err = fmt.Errorf("-segments and -concurrency must be at least 1")
	}
	if err != nil {
		fmt.Fprintln(stderr, "replay:", err)
		fs.Usage()
		return exitcode.Usage
	}

	var cfg replay.Config
	if *stack != "" {
		st, err := stackfile.Load(*stack)
		if err != nil {
			fmt.Fprintln(stderr, "replay:", err)
			return exitcode.Usage
		}
		cfg = wire.ReplayConfigFromStack(st)
	} else if cfg, err = replay.ConfigFromEnv(os.Getenv); err != nil {
		fmt.Fprintln(stderr, "replay:", err, "(or pass -stack .local/stack.json for the local stack)")
		return exitcode.Usage
	}
	// Progress lines are the terminal's; the log says only what went
	// wrong, unless LOG_LEVEL asks for more.
	log := logging.New(stderr, max(cfg.LogLevel, slog.LevelWarn), "replay")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var awsCfg aws.Config
	if cfg.Endpoint != "" {
		// The local stack is moto on loopback, which takes any
		// credentials: nothing from the environment is needed or wanted.
		awsCfg = awsconfig.Local(cfg.Region, cfg.Endpoint)
	} else if awsCfg, err = awsconfig.Load(ctx); err != nil {
		fmt.Fprintln(stderr, "replay: load AWS configuration:", err)
		return exitcode.Usage
	}
	if req.Mode == replay.ModeReplay && cfg.StreamARN == "" {
		tables := ddbstore.Tables{Client: dynamodb.NewFromConfig(awsCfg), MembershipTable: cfg.MembershipTable}
		if cfg.StreamARN, err = tables.MembershipStreamARN(ctx); err != nil {
			fmt.Fprintln(stderr, "replay: find the membership table's stream:", err)
			return exitcode.Failure
		}
	}
	svc := wire.Rebuild(cfg, awsCfg, log)
	svc.Segments, svc.Concurrency = *segments, *concurrency
	svc.Progress, svc.ProgressEvery = replay.TerminalProgress(stderr), *every

	rep, err := svc.Run(ctx, req)
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(rep)
	if rep.Rejected > 0 {
		where := ""
		if *stack != "" {
			where = " --stack " + *stack
		}
		fmt.Fprintf(stderr, "replay: %d records of the membership table break the rules and grant nothing; `credbroker admin rejected%s` lists them with the reasons\n", rep.Rejected, where)
	}
	if err != nil {
		fmt.Fprintln(stderr, "replay:", err)
	}
	return replay.ExitCode(err)
}
