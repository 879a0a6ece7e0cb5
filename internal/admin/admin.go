// Package admin is the operators' commands of credbroker (credbroker
// admin ...): validated writes of the membership table, the questions
// over the policy table (explain, who-can, report, rejected), verify,
// rebuild and replay, revoke and the deploy's preflight. cmd/credbroker
// wires them next to the user commands; internal/wire builds the services
// they use.
//
// They read and write the stack's tables with the caller's own AWS
// credentials (or the local stack's). They apply the rules of docs/contract.md
// "Source records" with the projector's own code (projector.Validate), and
// answer questions from the policy table, which is what the credential
// endpoint serves.
package admin

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"golang.org/x/sync/errgroup"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/cli"
	"github.com/credbroker/credbroker/internal/policy"
	"github.com/credbroker/credbroker/internal/projector"
	"github.com/credbroker/credbroker/internal/userpool"
	"github.com/credbroker/credbroker/internal/wire"
)

var commands []cli.Command

// register adds a command; each file registers its own in init, so that
// adding a command touches no other file. AWS failing under any of them
// names the next step (cli.ExplainAWS).
func register(c cli.Command) {
	c.Run = cli.ExplainAWS(c.Run)
	commands = append(commands, c)
}

// Commands are the operators' commands.
func Commands() []cli.Command { return append([]cli.Command(nil), commands...) }

// records is what the commands read and write of the tables
// (ddbstore.Store).
type records interface {
	GetSourceItem(ctx context.Context, pk, sk string) (broker.SourceItem, bool, error)
	PutSourceItem(ctx context.Context, it broker.SourceItem) (broker.SourceItem, bool, error)
	DeleteSourceItem(ctx context.Context, pk, sk string) (broker.SourceItem, bool, error)
	DeleteSourceItemIf(ctx context.Context, it broker.SourceItem) (bool, error)
	ScanMemberships(ctx context.Context, segment, total int, fn func(broker.SourceItem) error) error
	ScanPolicies(ctx context.Context, segment, total int, fn func(userID string, p broker.UserPolicy, err error) error) error
	GetPolicy(ctx context.Context, userID string) (broker.UserPolicy, error)
	UserMemberships(ctx context.Context, userID string) ([]broker.SourceItem, error)
}

// directory is the user pool's (userpool.Directory).
type directory interface {
	SubOf(ctx context.Context, username string) (string, error)
	People(ctx context.Context) (map[string]userpool.Person, error)
}

// admin is what an admin command works with.
type admin struct {
	target   cli.Target
	store    records
	compiler policy.Compiler
	// compute is what the membership table grants the user at an instant
	// (projector.ComputeAt).
	compute func(ctx context.Context, userID string, at time.Time) (broker.UserPolicy, error)
	users   directory
	now     func() time.Time // the command's clock: which expiries have passed
}

// openAdmin resolves the stack (need: the parts the command uses) and
// builds the services on its tables. It makes no AWS call.
func openAdmin(ctx context.Context, env *cli.Env, tf *cli.TargetFlags, need ...cli.Part) (*admin, error) {
	t, err := tf.Resolve(env, need...)
	if err != nil {
		return nil, err
	}
	cfg, err := t.AWS(ctx)
	if err != nil {
		return nil, broker.Wrap(broker.Invalid, "load AWS configuration", err)
	}
	svc := wire.NewAdmin(wire.AdminConfig{MembershipTable: t.MembershipTable, PolicyTable: t.PolicyTable,
		Partition: broker.Partition(t.BaseRoleARN, cfg.Region), UserPoolID: t.UserPoolID}, cfg)
	return &admin{
		target:   t,
		store:    svc.Store,
		compiler: svc.Projector.Compiler,
		compute:  svc.Projector.ComputeAt,
		users:    svc.Users,
		now:      env.Now,
	}, nil
}

// lambdaClient is a Lambda client for the target: the local stack's
// Lambda API, or AWS's.
func lambdaClient(ctx context.Context, t cli.Target, optFns ...func(*lambda.Options)) (*lambda.Client, error) {
	cfg, err := t.AWS(ctx)
	if err != nil {
		return nil, broker.Wrap(broker.Invalid, "load AWS configuration", err)
	}
	endpoint := ""
	if t.Local {
		endpoint = t.LambdaEndpoint
	}
	return wire.Lambda(cfg, endpoint, optFns...), nil
}

// validate applies the projector's rules to a record the command is about
// to write; an invalid one is an Invalid error (exit status 2) that names
// the rule.
func (a *admin) validate(it broker.SourceItem) (broker.ParsedItem, error) {
	parsed, err := projector.Validate(a.compiler, it)
	if err != nil {
		return parsed, broker.Errorf(broker.Invalid, "validate", "refused, nothing written: %s (docs/contract.md \"Source records\")", broker.MessageOf(err))
	}
	return parsed, nil
}

// userFlags are --user and --username, one of which names a user.
type userFlags struct{ id, name string }

func addUserFlags(fs *flag.FlagSet) *userFlags {
	u := &userFlags{}
	fs.StringVar(&u.id, "user", "", "the user's id: the Cognito sub (see also --username)")
	fs.StringVar(&u.name, "username", "", "the user's Cognito username, looked up in the user pool (instead of --user)")
	return u
}

// need adds the stack part --username needs.
func (u *userFlags) need(parts ...cli.Part) []cli.Part {
	if u.name != "" {
		return append(parts, cli.UserPool)
	}
	return parts
}

// resolve returns the user id: --user as given, or the sub of --username.
func (u *userFlags) resolve(ctx context.Context, a *admin) (string, error) {
	switch {
	case u.id != "" && u.name != "":
		return "", cli.Usagef("give --user or --username, not both")
	case u.id != "":
		if err := broker.ValidateUserID(u.id); err != nil {
			return "", broker.Errorf(broker.Invalid, "user", "refused: %s (docs/contract.md \"Source records\")", broker.MessageOf(err))
		}
		return u.id, nil
	case u.name == "":
		return "", cli.Usagef("--user (or --username) is required")
	}
	return a.users.SubOf(ctx, u.name)
}

// scanFlags are the flags of the commands that read a whole table.
type scanFlags struct {
	segments int
	quiet    bool
}

func addScanFlags(fs *flag.FlagSet) *scanFlags {
	s := &scanFlags{}
	fs.IntVar(&s.segments, "segments", 4, "parallel Scan segments")
	fs.BoolVar(&s.quiet, "quiet", false, "no progress lines on stderr")
	return s
}

func (s *scanFlags) check() error {
	if s.segments < 1 || s.segments > 1000 {
		return cli.Usagef("--segments must be 1-1000")
	}
	return nil
}

// scanAll runs scan on every segment at once; the first error stops the
// others. Each segment reads page by page: memory does not grow with the
// table.
func scanAll(ctx context.Context, segments int, scan func(ctx context.Context, segment int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	for seg := range segments {
		g.Go(func() error { return scan(gctx, seg) })
	}
	return g.Wait()
}

// describe says what a record grants, in an operator's words.
func describe(p broker.ParsedItem) string {
	switch p.Kind {
	case broker.MembershipRecord:
		return fmt.Sprintf("user %s in project %s, role %s%s", p.Membership.UserID, p.Membership.ProjectID, p.Membership.Access, untilText(p.Membership.ExpiresAt))
	case broker.BucketRecord:
		return fmt.Sprintf("project %s owns %s", p.Bucket.ProjectID, place(p.Bucket.Bucket, p.Bucket.Prefix))
	}
	return "a record of another kind"
}

// untilText says when a membership ends: "" when it does not.
func untilText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return ", until " + t.UTC().Format(time.RFC3339)
}

// place names a bucket or a folder of it.
func place(bucket, prefix string) string {
	if prefix == "" {
		return "bucket " + bucket + " (whole bucket)"
	}
	return "folder " + prefix + " of bucket " + bucket
}
