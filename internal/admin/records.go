package admin

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/credbroker/credbroker/internal/cli"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/projector"
)

// Validated writes of the membership table: one record at a time here,
// many with admin import. Every record is checked with the projector's
// rules before anything is written; an invalid one is refused with exit
// status 2 and the rule it breaks.

func init() {
	register(cli.Command{Path: "admin member put", Summary: "add a user to a project, or change the user's role (validated)", Run: runMemberPut})
	register(cli.Command{Path: "admin member delete", Summary: "remove a user from a project", Run: runMemberDelete})
	register(cli.Command{Path: "admin bucket put", Summary: "give a project a bucket or a folder of one (validated)", Run: runBucketPut})
	register(cli.Command{Path: "admin bucket delete", Summary: "take a bucket away from a project", Run: runBucketDelete})
}

// recordCmd is the flags and set-up shared by the four single-record
// writes: the keys of a membership (--user or --username, --project) or of
// a bucket record (--project, --bucket), --dry-run and the stack.
type recordCmd struct {
	fs      *flag.FlagSet
	tf      *cli.TargetFlags
	kind    broker.RecordKind
	user    *userFlags
	project *string
	bucket  *string
	dry     *bool
}

func newRecordCmd(env *cli.Env, path string, kind broker.RecordKind) *recordCmd {
	c := &recordCmd{fs: cli.NewFlags(env, path), kind: kind}
	if kind == broker.MembershipRecord {
		c.tf = cli.AddTargetFlags(c.fs, cli.MembershipTable, cli.UserPool, cli.BaseRole)
		c.user = addUserFlags(c.fs)
	} else {
		c.tf = cli.AddTargetFlags(c.fs, cli.MembershipTable, cli.BaseRole)
	}
	c.project = c.fs.String("project", "", "the project's id (required)")
	if kind == broker.BucketRecord {
		c.bucket = c.fs.String("bucket", "", "the S3 bucket's name (required)")
	}
	c.dry = c.fs.Bool("dry-run", false, "say what would change and write nothing")
	return c
}

// open parses the arguments, connects to the stack and returns the
// record's keys.
func (c *recordCmd) open(ctx context.Context, env *cli.Env, args []string) (a *admin, pk, sk string, err error) {
	if err := cli.Parse(c.fs, args); err != nil {
		return nil, "", "", err
	}
	if *c.project == "" {
		return nil, "", "", cli.Usagef("--project is required")
	}
	if c.bucket != nil {
		if err := checkBucketFlag(*c.bucket); err != nil {
			return nil, "", "", err
		}
	}
	if c.kind == broker.BucketRecord {
		a, err = openAdmin(ctx, env, c.tf, cli.MembershipTable)
		return a, broker.ProjectKeyPrefix + *c.project, broker.BucketKeyPrefix + *c.bucket, err
	}
	if a, err = openAdmin(ctx, env, c.tf, c.user.need(cli.MembershipTable)...); err != nil {
		return nil, "", "", err
	}
	userID, err := c.user.resolve(ctx, a)
	return a, broker.UserKeyPrefix + userID, broker.ProjectKeyPrefix + *c.project, err
}

func runMemberPut(ctx context.Context, env *cli.Env, args []string) error {
	c := newRecordCmd(env, "admin member put", broker.MembershipRecord)
	role := c.fs.String("role", "read", `the user's role in the project: "read" or "write"`)
	expiresAt := c.fs.String("expires-at", "", "the membership ends at this instant: RFC 3339 with an offset (2026-12-31T18:00:00Z)")
	expiresIn := c.fs.String("expires-in", "", "the membership ends this long from now: a Go duration (8h, 90m)")
	a, pk, sk, err := c.open(ctx, env, args)
	if err != nil {
		return err
	}
	it := broker.SourceItem{PK: pk, SK: sk, Role: broker.StringAttr(*role)}
	if it.ExpiresAt, err = expiryFlag(env.Now(), *expiresAt, *expiresIn); err != nil {
		return err
	}
	return a.putOne(ctx, env, it, *c.dry)
}

// expiryFlag turns --expires-at or --expires-in into the expiresAt
// attribute (absent when neither is given), in UTC to the second as the
// projector reads it. A value that is malformed, or already past at now,
// is refused: a membership written to end before it is written would
// grant nothing, which is never what an operator means.
func expiryFlag(now time.Time, at, in string) (broker.Attr, error) {
	var t time.Time
	switch {
	case at != "" && in != "":
		return broker.Attr{}, cli.Usagef("--expires-at and --expires-in exclude each other")
	case at != "":
		var err error
		if t, err = broker.ParseExpiry(at); err != nil {
			return broker.Attr{}, broker.Errorf(broker.Invalid, "expires-at", "refused, nothing written: --expires-at: %s", broker.MessageOf(err))
		}
	case in != "":
		d, err := time.ParseDuration(in)
		if err != nil {
			return broker.Attr{}, broker.Errorf(broker.Invalid, "expires-in", "refused, nothing written: --expires-in %q is not a duration such as 8h or 90m", in)
		}
		t = now.Add(d).UTC().Truncate(time.Second)
	default:
		return broker.Attr{}, nil
	}
	if !t.After(now) {
		return broker.Attr{}, broker.Errorf(broker.Invalid, "expiry", "refused, nothing written: the expiry %s is not in the future", t.Format(time.RFC3339))
	}
	return broker.StringAttr(t.Format(time.RFC3339)), nil
}

func runMemberDelete(ctx context.Context, env *cli.Env, args []string) error {
	c := newRecordCmd(env, "admin member delete", broker.MembershipRecord)
	a, pk, sk, err := c.open(ctx, env, args)
	if err != nil {
		return err
	}
	return a.deleteOne(ctx, env, pk, sk, *c.dry)
}

func runBucketPut(ctx context.Context, env *cli.Env, args []string) error {
	c := newRecordCmd(env, "admin bucket put", broker.BucketRecord)
	prefix := c.fs.String("prefix", "", "a folder of the bucket: the project gets only the keys under it (default: the whole bucket)")
	a, pk, sk, err := c.open(ctx, env, args)
	if err != nil {
		return err
	}
	it := broker.SourceItem{PK: pk, SK: sk}
	// Only an absent prefix means the whole bucket: an explicit empty
	// --prefix is checked as the empty attribute it would be.
	if cli.Given(c.fs, "prefix") {
		it.Prefix = broker.StringAttr(*prefix)
	}
	return a.putOne(ctx, env, it, *c.dry)
}

func runBucketDelete(ctx context.Context, env *cli.Env, args []string) error {
	c := newRecordCmd(env, "admin bucket delete", broker.BucketRecord)
	a, pk, sk, err := c.open(ctx, env, args)
	if err != nil {
		return err
	}
	return a.deleteOne(ctx, env, pk, sk, *c.dry)
}

// checkBucketFlag refuses an empty --bucket, and an S3 URL in place of a
// bucket's name with the flags that say the same.
func checkBucketFlag(v string) error {
	if v == "" {
		return cli.Usagef("--bucket is required")
	}
	rest, ok := strings.CutPrefix(v, "s3://")
	if !ok {
		return nil
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	if prefix == "" {
		return cli.Usagef("--bucket %q is an S3 URL: drop the s3:// and give the bucket's name, --bucket %s", v, bucket)
	}
	return cli.Usagef("--bucket %q is an S3 URL: drop the s3:// and give the bucket's name and the folder apart, --bucket %s --prefix %s", v, bucket, prefix)
}

// putOne writes one record that follows the rules.
func (a *admin) putOne(ctx context.Context, env *cli.Env, it broker.SourceItem, dry bool) error {
	if _, err := a.validate(it); err != nil {
		return err
	}
	return a.writeOne(ctx, env, op{put: &it, pk: it.PK, sk: it.SK}, dry)
}

// deleteOne deletes one record whose keys follow the rules: a delete
// with keys no record can validly have is most likely a typo.
func (a *admin) deleteOne(ctx context.Context, env *cli.Env, pk, sk string, dry bool) error {
	if _, err := broker.ParseRef(pk, sk); err != nil {
		return broker.Errorf(broker.Invalid, "validate", "refused, nothing written: %s (docs/contract.md \"Source records\"; a record that breaks the rules goes with `credbroker admin rejected delete`)", broker.MessageOf(err))
	}
	return a.writeOne(ctx, env, op{pk: pk, sk: sk}, dry)
}

// writeOne applies one op and says what it did on stdout.
func (a *admin) writeOne(ctx context.Context, env *cli.Env, o op, dry bool) error {
	changes, err := a.apply(ctx, []op{o}, dry)
	if err != nil {
		return err
	}
	c := changes[0]
	if c.err != nil {
		return c.err
	}
	fmt.Fprintf(env.Stdout, "%s: %s (%s / %s)\n", c.verb(dry), c.Detail, c.PK, c.SK)
	return nil
}

// op is one write of the membership table: put is the item to write, or
// nil to delete the item with keys pk and sk.
type op struct {
	line   int // of an import file; 0 otherwise
	put    *broker.SourceItem
	pk, sk string
}

// Actions of a change.
const (
	actionCreate    = "create"
	actionUpdate    = "update"
	actionUnchanged = "unchanged"
	actionDelete    = "delete"
	actionAbsent    = "absent" // a delete of a record that is not there
)

// change is what an op does to the table, as the report shows it.
type change struct {
	Line    int    `json:"line,omitempty"`
	Action  string `json:"action"`
	PK      string `json:"pk"`
	SK      string `json:"sk"`
	Detail  string `json:"change"`
	Written bool   `json:"written"`
	err     error
}

// writes reports whether the change writes anything.
func (c change) writes() bool {
	return c.Action == actionCreate || c.Action == actionUpdate || c.Action == actionDelete
}

func (c change) verb(dry bool) string {
	past := map[string]string{actionCreate: "created", actionUpdate: "updated", actionUnchanged: "unchanged, nothing written",
		actionDelete: "deleted", actionAbsent: "not found, nothing deleted"}
	future := map[string]string{actionCreate: "would create", actionUpdate: "would update", actionUnchanged: "unchanged, nothing to write",
		actionDelete: "would delete", actionAbsent: "not found, nothing to delete"}
	if dry {
		return future[c.Action]
	}
	return past[c.Action]
}

// applyConcurrency bounds the reads and writes in flight.
const applyConcurrency = 8

// apply reads what the table holds for every op, works out each change,
// and, unless dry, writes those that change something: a record that
// already grants the same is not rewritten. A write that fails is kept in
// its change's err; the others go on. ops must not share keys.
func (a *admin) apply(ctx context.Context, ops []op, dry bool) ([]change, error) {
	changes := make([]change, len(ops))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(applyConcurrency)
	for i, o := range ops {
		g.Go(func() error {
			old, found, err := a.store.GetSourceItem(gctx, o.pk, o.sk)
			if err != nil {
				return err
			}
			changes[i] = a.plan(o, old, found)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if dry {
		return changes, nil
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, applyConcurrency)
	for i := range changes {
		c := &changes[i]
		if !c.writes() {
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			o := ops[i]
			var err error
			if o.put != nil {
				_, _, err = a.store.PutSourceItem(ctx, *o.put)
			} else {
				_, _, err = a.store.DeleteSourceItem(ctx, o.pk, o.sk)
			}
			c.err, c.Written = err, err == nil
		})
	}
	wg.Wait()
	return changes, nil
}

// plan works out what op does to a table holding old (found) at its keys.
func (a *admin) plan(o op, old broker.SourceItem, found bool) change {
	c := change{Line: o.line, PK: o.pk, SK: o.sk}
	var was broker.ParsedItem
	var wasErr error
	if found {
		was, wasErr = projector.Validate(a.compiler, old)
	}
	before := func() string {
		if wasErr != nil {
			return "a record that breaks the rules (" + broker.MessageOf(wasErr) + ")"
		}
		return describe(was)
	}
	if o.put == nil {
		if !found {
			c.Action, c.Detail = actionAbsent, "no such record"
		} else {
			c.Action, c.Detail = actionDelete, before()
		}
		return c
	}
	now, _ := projector.Validate(a.compiler, *o.put) // validated by the caller
	switch {
	case !found:
		c.Action, c.Detail = actionCreate, describe(now)
	case wasErr == nil && was == now:
		c.Action, c.Detail = actionUnchanged, describe(now)
	case wasErr == nil && now.Kind == broker.MembershipRecord:
		c.Action, c.Detail = actionUpdate, fmt.Sprintf("user %s in project %s: role %s%s → %s%s",
			now.Membership.UserID, now.Membership.ProjectID, was.Membership.Access, untilText(was.Membership.ExpiresAt),
			now.Membership.Access, untilText(now.Membership.ExpiresAt))
	case wasErr == nil:
		c.Action, c.Detail = actionUpdate, fmt.Sprintf("project %s: %s → %s", now.Bucket.ProjectID,
			place(was.Bucket.Bucket, was.Bucket.Prefix), place(now.Bucket.Bucket, now.Bucket.Prefix))
	default:
		c.Action, c.Detail = actionUpdate, describe(now)+", replacing "+before()
	}
	return c
}
