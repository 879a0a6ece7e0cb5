package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	ciptypes "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"golang.org/x/sync/errgroup"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/ddbstore"
	"github.com/credbroker/credbroker/internal/policy"
	"github.com/credbroker/credbroker/internal/projector"
)

// The operators' commands (admin ...) read and write the stack's tables
// with the caller's own AWS credentials (or the local stack's). They apply
// the rules of docs/contract.md "Source records" with the projector's own code
// (projector.Validate), and answer questions from the policy table, which
// is what the credential endpoint serves.

// admin is what an admin command works with.
type admin struct {
	target   target
	aws      aws.Config
	store    *ddbstore.Store
	compiler policy.Compiler
	now      func() time.Time // the command's clock: which expiries have passed
}

// openAdmin resolves the stack (need: the stack.json fields the command
// uses) and connects to its tables. It makes no AWS call.
func openAdmin(ctx context.Context, env *cmdEnv, tf *targetFlags, need ...string) (*admin, error) {
	t, err := tf.resolve(env, need...)
	if err != nil {
		return nil, err
	}
	cfg, err := t.aws(ctx)
	if err != nil {
		return nil, broker.Wrap(broker.Invalid, "load AWS configuration", err)
	}
	return &admin{
		target: t,
		aws:    cfg,
		store: &ddbstore.Store{Client: dynamodb.NewFromConfig(cfg),
			MembershipTable: t.MembershipTable, PolicyTable: t.PolicyTable},
		compiler: policy.Compiler{Partition: broker.Partition(t.BaseRoleARN, cfg.Region)},
		now:      env.now,
	}, nil
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

// projector returns a projector that computes what the membership table
// grants now, writing nothing (explain compares it with the policy table).
func (a *admin) projector() *projector.Projector {
	return &projector.Projector{Source: a.store, Compiler: a.compiler, Now: a.now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// userFlags are --user and --username, one of which names a user.
type userFlags struct{ id, name string }

func addUserFlags(fs *flag.FlagSet) *userFlags {
	u := &userFlags{}
	fs.StringVar(&u.id, "user", "", "the user's id: the Cognito sub (see also --username)")
	fs.StringVar(&u.name, "username", "", "the user's Cognito username, looked up in the user pool (instead of --user)")
	return u
}

// need adds the stack field --username needs.
func (u *userFlags) need(fields ...string) []string {
	if u.name != "" {
		return append(fields, "userPoolId")
	}
	return fields
}

// resolve returns the user id: --user as given, or the sub of --username.
func (u *userFlags) resolve(ctx context.Context, a *admin) (string, error) {
	switch {
	case u.id != "" && u.name != "":
		return "", usagef("give --user or --username, not both")
	case u.id != "":
		if err := broker.ValidateUserID(u.id); err != nil {
			return "", broker.Errorf(broker.Invalid, "user", "refused: %s (docs/contract.md \"Source records\")", broker.MessageOf(err))
		}
		return u.id, nil
	case u.name == "":
		return "", usagef("--user (or --username) is required")
	}
	out, err := cip.NewFromConfig(a.aws).AdminGetUser(ctx, &cip.AdminGetUserInput{
		UserPoolId: aws.String(a.target.UserPoolID), Username: aws.String(u.name)})
	if err != nil {
		var nf *ciptypes.UserNotFoundException
		if errors.As(err, &nf) {
			return "", broker.Errorf(broker.Invalid, "username", "no user %q in user pool %s", u.name, a.target.UserPoolID)
		}
		return "", broker.Wrap(broker.Transient, "look up username", err)
	}
	for _, at := range out.UserAttributes {
		if aws.ToString(at.Name) == "sub" {
			return aws.ToString(at.Value), nil
		}
	}
	return "", broker.Errorf(broker.Internal, "look up username", "user %q has no sub attribute", u.name)
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
		return usagef("--segments must be 1-1000")
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

// folder is how tables show a grant's prefix.
func folder(prefix string) string {
	if prefix == "" {
		return "(whole bucket)"
	}
	return prefix
}

// parseWithArgs parses flags that may come before, between or after the
// positional arguments, and returns those.
func parseWithArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
