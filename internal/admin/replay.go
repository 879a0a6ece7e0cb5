package admin

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/cli"
	"github.com/credbroker/credbroker/internal/envconf"
	"github.com/credbroker/credbroker/internal/logging"
	"github.com/credbroker/credbroker/internal/replay"
	"github.com/credbroker/credbroker/internal/wire"
)

// verify, rebuild and replay from a terminal: the replay function's
// operations (internal/replay), run by the operator with no 15-minute
// limit, progress on stderr and the report as JSON on stdout.

func init() {
	register(cli.Command{Path: "admin verify", Summary: "compare the policy table with a recomputation of every user; exit status 1 on drift", Run: replayCommand(replay.ModeVerify)})
	register(cli.Command{Path: "admin rebuild", Summary: "recompute every user of the policy table (safe while the stack runs, idempotent)", Run: replayCommand(replay.ModeRebuild)})
	register(cli.Command{Path: "admin replay", Summary: "replay the membership table's stream through the projector (--since skips older records)", Run: replayCommand(replay.ModeReplay)})
}

const replayHelp = `usage: credbroker admin %s [flags]

%s
The report is printed as JSON on stdout, progress on stderr. Exit status: 0
all well, 1 verify found drift, 2 usage or configuration, 3 any other failure
(a verify that could not check every user included).

Flags:
`

var replayIntro = map[replay.Mode]string{
	replay.ModeVerify: `Recomputes every user without writing and compares the result with the
policy table: missing, different and extra items, missing and stale
member-index entries. A clean verify means a rebuild has nothing to do.
`,
	replay.ModeRebuild: `Recomputes every user found in the membership table through the
projector, turns the items of users without memberships into tombstones and
removes the member-index entries of memberships that no longer exist.
`,
	replay.ModeReplay: `Reads the membership table's stream from TRIM_HORIZON (streams keep 24
hours) and hands the records to the projector's own handler, 100 at a time.
`,
}

// expiryFlags name where a deployed stack's recomputes arm the membership
// expiry timers (the replay function's EXPIRY_* variables).
type expiryFlags struct{ group, role, target, dlq *string }

func addExpiryFlags(fs *flag.FlagSet) *expiryFlags {
	return &expiryFlags{
		group:  fs.String("expiry-schedule-group", "", "a deployed stack's ExpiryScheduleGroup (CREDBROKER_EXPIRY_SCHEDULE_GROUP): the recomputes arm its expiry timers; without it they arm none"),
		role:   fs.String("expiry-scheduler-role-arn", "", "with --expiry-schedule-group: the role the schedules invoke the projector with (CREDBROKER_EXPIRY_SCHEDULER_ROLE_ARN)"),
		target: fs.String("expiry-target-arn", "", "with --expiry-schedule-group: the projector function's ARN (CREDBROKER_EXPIRY_TARGET_ARN)"),
		dlq:    fs.String("expiry-dlq-arn", "", "with --expiry-schedule-group: the schedules' dead-letter queue (CREDBROKER_EXPIRY_DLQ_ARN)"),
	}
}

// given reports whether any of the flags is on the command line.
func (e *expiryFlags) given(fs *flag.FlagSet) bool {
	return cli.Given(fs, "expiry-schedule-group") || cli.Given(fs, "expiry-scheduler-role-arn") ||
		cli.Given(fs, "expiry-target-arn") || cli.Given(fs, "expiry-dlq-arn")
}

// resolve reads the flags, else the CREDBROKER_EXPIRY_* variables.
func (e *expiryFlags) resolve(env *cli.Env) (envconf.Expiry, error) {
	r := envconf.New(env.Getenv)
	x := envconf.Expiry{
		Group:         cmp.Or(*e.group, r.String("CREDBROKER_EXPIRY_SCHEDULE_GROUP", "")),
		RoleARN:       cmp.Or(*e.role, r.String("CREDBROKER_EXPIRY_SCHEDULER_ROLE_ARN", "")),
		TargetARN:     cmp.Or(*e.target, r.String("CREDBROKER_EXPIRY_TARGET_ARN", "")),
		DeadLetterARN: cmp.Or(*e.dlq, r.String("CREDBROKER_EXPIRY_DLQ_ARN", "")),
	}
	if x.Group != "" && (x.RoleARN == "" || x.TargetARN == "") {
		return x, cli.Usagef("--expiry-schedule-group needs --expiry-scheduler-role-arn and --expiry-target-arn (or CREDBROKER_EXPIRY_SCHEDULER_ROLE_ARN and CREDBROKER_EXPIRY_TARGET_ARN): the schedules invoke the projector with that role")
	}
	return x, nil
}

func replayCommand(mode replay.Mode) func(ctx context.Context, env *cli.Env, args []string) error {
	return func(ctx context.Context, env *cli.Env, args []string) error {
		path := "admin " + string(mode)
		fs := cli.NewFlags(env, path)
		tf := cli.AddTargetFlags(fs, cli.MembershipTable, cli.PolicyTable, cli.EventBus, cli.BaseRole)
		segments := fs.Int("segments", 4, "parallel Scan segments")
		concurrency := fs.Int("concurrency", 16, "users processed at once")
		every := fs.Duration("progress", 2*time.Second, "interval between progress lines")
		var since *string
		if mode == replay.ModeReplay {
			since = fs.String("since", "", "skip records created before this RFC 3339 time (2025-03-15T08:00:00Z)")
		}
		var expiry *expiryFlags
		if mode != replay.ModeVerify {
			expiry = addExpiryFlags(fs)
		}
		fs.Usage = func() {
			fmt.Fprintf(fs.Output(), replayHelp, mode, replayIntro[mode])
			fs.PrintDefaults()
		}
		if err := cli.Parse(fs, args); err != nil {
			return err
		}
		req, err := replay.NewRequest(string(mode), deref(since))
		switch {
		case err != nil:
			return err
		case *segments < 1 || *concurrency < 1:
			return cli.Usagef("--segments and --concurrency must be at least 1")
		}
		t, err := tf.Resolve(env, cli.MembershipTable, cli.PolicyTable, cli.EventBus)
		if err != nil {
			return err
		}
		cfg := replay.Config{MembershipTable: t.MembershipTable, PolicyTable: t.PolicyTable, AuditBusName: t.EventBusName}
		switch {
		case expiry == nil:
		case t.Local && expiry.given(fs):
			return cli.Usagef("--expiry-* name a deployed stack's timers: the local stack arms its own")
		case !t.Local:
			if cfg.Expiry, err = expiry.resolve(env); err != nil {
				return err
			}
		}
		awsCfg, err := t.AWS(ctx)
		if err != nil {
			return broker.Wrap(broker.Invalid, "load AWS configuration", err)
		}
		cfg.Partition = broker.Partition(t.BaseRoleARN, awsCfg.Region)
		if req.Mode == replay.ModeReplay {
			if cfg.StreamARN, err = wire.MembershipStreamARN(ctx, awsCfg, cfg.MembershipTable); err != nil {
				return fmt.Errorf("find the membership table's stream: %w", err)
			}
		}
		// Progress lines are the terminal's; the log says only what went
		// wrong. Both write from the run's goroutines.
		stderr := &cli.LockedWriter{W: env.Stderr}
		svc := wire.Rebuild(cfg, awsCfg, logging.New(stderr, slog.LevelWarn, "replay"))
		svc.Segments, svc.Concurrency = *segments, *concurrency
		svc.Progress, svc.ProgressEvery = replay.TerminalProgress(stderr), *every

		rep, err := svc.Run(ctx, req)
		if perr := cli.PrintJSON(env.Stdout, rep); perr != nil && err == nil {
			err = perr
		}
		if rep.Rejected > 0 {
			fmt.Fprintf(stderr, "%d records of the membership table break the rules and grant nothing; `credbroker admin rejected%s` lists them with the reasons\n", rep.Rejected, tf.Where())
		}
		var drift *replay.DriftError
		if errors.As(err, &drift) {
			return cli.Foundf("%s", drift.Error())
		}
		return err
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
