package admin

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/cli"
	"github.com/credbroker/credbroker/internal/projector"
	"github.com/credbroker/credbroker/internal/userpool"
)

// The questions over whole tables: who-can and report read the policy
// table, which is exactly what the credential endpoint serves (the same
// items, decoded by the same code, with the same refusals); rejected reads
// the membership table with the projector's rules. All scan in parallel
// segments, page by page, and stream their rows: memory does not grow with
// the tables.

func init() {
	register(cli.Command{Path: "admin who-can", Summary: "every user who can reach a bucket (or a folder of it), how, and through which projects", Run: runWhoCan})
	register(cli.Command{Path: "admin rejected", Summary: "every record of the membership table that grants nothing because it breaks the rules", Run: runRejected})
	register(cli.Command{Path: "admin report", Summary: "every user, bucket, folder, access and projects, as CSV or JSON (access reviews)", Run: runReport})
}

// reach is one row of who-can.
type reach struct {
	UserID    string        `json:"userId"`
	Username  string        `json:"username,omitempty"`
	Email     string        `json:"email,omitempty"`
	Access    broker.Access `json:"access"`
	Prefix    string        `json:"prefix"`
	Projects  []string      `json:"projects"`
	ExpiresAt time.Time     `json:"expiresAt,omitzero"`
}

func runWhoCan(ctx context.Context, env *cli.Env, args []string) error {
	fs := cli.NewFlags(env, "admin who-can")
	tf := cli.AddTargetFlags(fs, cli.PolicyTable, cli.UserPool)
	sf := addScanFlags(fs)
	nf := addNameFlags(fs)
	bucket := fs.String("bucket", "", "the bucket (required)")
	prefix := fs.String("prefix", "", "a folder of the bucket: users who reach any of it (the whole bucket, the folder, a folder above or below it)")
	asJSON := fs.Bool("json", false, `print [{"userId","username"?,"email"?,"access","prefix","projects","expiresAt"?}]`)
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if err := sf.check(); err != nil {
		return err
	}
	if err := checkBucketFlag(*bucket); err != nil {
		return err
	}
	if err := broker.ValidateBucketName(*bucket); err != nil {
		return broker.Errorf(broker.Invalid, "bucket", "%s: no grant can name it (docs/contract.md \"Source records\")", broker.MessageOf(err))
	}
	folderOf, err := broker.NormalizePrefix(*prefix)
	if err != nil {
		return broker.Errorf(broker.Invalid, "prefix", "%s: no grant can name it (docs/contract.md \"Source records\")", broker.MessageOf(err))
	}
	a, err := openAdmin(ctx, env, tf, cli.PolicyTable)
	if err != nil {
		return err
	}
	people := nf.people(ctx, env, a)
	format := map[bool]string{true: cli.FormatJSON, false: cli.FormatTable}[*asJSON]
	out := cli.NewRows(env.Stdout, format, "USER", "NAME", "ACCESS", "FOLDER", "THROUGH PROJECTS", "UNTIL")
	now := a.now()
	var users atomic.Int64
	prog := cli.StartProgress(env, "credbroker admin who-can", "policy items", sf.quiet)
	unserved, err := a.scanServed(ctx, sf.segments, prog, func(userID string, p broker.UserPolicy) error {
		found := false
		for _, g := range p.Grants {
			// A grant past its expiry reaches nothing, even before the
			// recompute that drops it.
			if g.Bucket != *bucket || !overlaps(g.Prefix, folderOf) || !g.LiveAt(now) {
				continue
			}
			found = true
			who := people[userID]
			r := reach{UserID: userID, Username: who.Username, Email: who.Email, Access: g.Access, Prefix: g.Prefix, Projects: nonNil(g.Projects), ExpiresAt: g.ExpiresAt}
			if err := out.Add(r, r.UserID, nameCell(who), string(r.Access), cli.Folder(r.Prefix), strings.Join(r.Projects, " "), cli.Until(r.ExpiresAt)); err != nil {
				return err
			}
		}
		if found {
			users.Add(1)
		}
		return nil
	})
	what := "bucket " + *bucket
	if folderOf != "" {
		what = "folder " + folderOf + " of bucket " + *bucket
	}
	prog.Finish(fmt.Sprintf("%d grant(s) to %d user(s) reach %s", out.Count(), users.Load(), what), err)
	if err != nil {
		return err
	}
	warnUnserved(env, unserved)
	return out.Close()
}

// overlaps reports whether a grant on folder g reaches some of folder x:
// either holds the other ("" is the whole bucket).
func overlaps(g, x string) bool {
	return strings.HasPrefix(x, g) || strings.HasPrefix(g, x)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// scanServed calls fn with the grants of every user's policy item that the
// endpoint would serve, and counts those it would refuse (an item that
// does not decode, or names another user than its key). fn is called
// from several segments at once.
func (a *admin) scanServed(ctx context.Context, segments int, prog *cli.Progress, fn func(userID string, p broker.UserPolicy) error) (unserved int64, err error) {
	var bad atomic.Int64
	err = scanAll(ctx, segments, func(ctx context.Context, seg int) error {
		return a.store.ScanPolicies(ctx, seg, segments, func(userID string, p broker.UserPolicy, err error) error {
			prog.Items.Add(1)
			if err != nil || p.UserID != userID {
				bad.Add(1)
				return nil
			}
			if p.Empty() {
				return nil
			}
			return fn(userID, p)
		})
	})
	return bad.Load(), err
}

func warnUnserved(env *cli.Env, n int64) {
	if n > 0 {
		fmt.Fprintf(env.Stderr, "warning: %d policy item(s) do not decode or name another user: the endpoint serves nothing from them, and a rebuild replaces them\n", n)
	}
}

// rejection is one row of rejected.
type rejection struct {
	PK     string `json:"pk"`
	SK     string `json:"sk"`
	Reason string `json:"reason"`
}

func runRejected(ctx context.Context, env *cli.Env, args []string) error {
	fs := cli.NewFlags(env, "admin rejected")
	tf := cli.AddTargetFlags(fs, cli.MembershipTable, cli.BaseRole)
	sf := addScanFlags(fs)
	asJSON := fs.Bool("json", false, `print [{"pk","sk","reason"}]`)
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if err := sf.check(); err != nil {
		return err
	}
	a, err := openAdmin(ctx, env, tf, cli.MembershipTable)
	if err != nil {
		return err
	}
	format := map[bool]string{true: cli.FormatJSON, false: cli.FormatTable}[*asJSON]
	out := cli.NewRows(env.Stdout, format, "PK", "SK", "REASON")
	prog := cli.StartProgress(env, "credbroker admin rejected", "membership items", sf.quiet)
	err = scanAll(ctx, sf.segments, func(ctx context.Context, seg int) error {
		return a.store.ScanMemberships(ctx, seg, sf.segments, func(it broker.SourceItem) error {
			prog.Items.Add(1)
			if _, err := projector.Validate(a.compiler, it); err != nil {
				r := rejection{PK: it.PK, SK: it.SK, Reason: broker.MessageOf(err)}
				return out.Add(r, r.PK, r.SK, r.Reason)
			}
			return nil
		})
	})
	prog.Finish(fmt.Sprintf("%d record(s) break the rules", out.Count()), err)
	if err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	if n := out.Count(); n > 0 {
		return cli.Foundf("%d record(s) break the rules of docs/contract.md \"Source records\" and grant nothing: fix each with `credbroker admin member put` or `credbroker admin bucket put`, or delete it with `credbroker admin rejected delete --pk PK --sk SK%s`", n, tf.Where())
	}
	return nil
}

// reportRow is one row of report.
type reportRow struct {
	UserID    string        `json:"userId"`
	Username  string        `json:"username,omitempty"`
	Email     string        `json:"email,omitempty"`
	Bucket    string        `json:"bucket"`
	Prefix    string        `json:"prefix"`
	Access    broker.Access `json:"access"`
	Projects  []string      `json:"projects"`
	ExpiresAt time.Time     `json:"expiresAt,omitzero"`
}

// expiringWithin is how far ahead report counts the memberships that end.
const expiringWithin = 24 * time.Hour

func runReport(ctx context.Context, env *cli.Env, args []string) error {
	fs := cli.NewFlags(env, "admin report")
	tf := cli.AddTargetFlags(fs, cli.PolicyTable, cli.UserPool)
	sf := addScanFlags(fs)
	nf := addNameFlags(fs)
	format := fs.String("format", cli.FormatCSV, `"csv" (projects separated by spaces) or "json" (an array)`)
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if err := sf.check(); err != nil {
		return err
	}
	if *format != cli.FormatCSV && *format != cli.FormatJSON {
		return cli.Usagef(`--format must be "csv" or "json"`)
	}
	a, err := openAdmin(ctx, env, tf, cli.PolicyTable)
	if err != nil {
		return err
	}
	people := nf.people(ctx, env, a)
	out := cli.NewRows(env.Stdout, *format, "userId", "username", "email", "bucket", "prefix", "access", "projects", "expiresAt")
	var users, expiring atomic.Int64
	now := a.now()
	prog := cli.StartProgress(env, "credbroker admin report", "policy items", sf.quiet)
	unserved, err := a.scanServed(ctx, sf.segments, prog, func(userID string, p broker.UserPolicy) error {
		users.Add(1)
		for _, e := range p.Expires {
			if e.After(now) && !e.After(now.Add(expiringWithin)) {
				expiring.Add(1)
			}
		}
		for _, g := range broker.LiveGrants(p.Grants, now) {
			who := people[userID]
			r := reportRow{UserID: userID, Username: who.Username, Email: who.Email, Bucket: g.Bucket, Prefix: g.Prefix, Access: g.Access, Projects: nonNil(g.Projects), ExpiresAt: g.ExpiresAt}
			if err := out.Add(r, r.UserID, r.Username, r.Email, r.Bucket, r.Prefix, string(r.Access), strings.Join(r.Projects, " "), csvTime(r.ExpiresAt)); err != nil {
				return err
			}
		}
		return nil
	})
	prog.Finish(fmt.Sprintf("%d grant(s) of %d user(s)", out.Count(), users.Load()), err)
	if err != nil {
		return err
	}
	warnUnserved(env, unserved)
	if err := out.Close(); err != nil {
		return err
	}
	// On stderr, as the progress line: stdout stays the CSV or JSON.
	fmt.Fprintf(env.Stderr, "%d membership(s) expire within a day (before %s)\n", expiring.Load(), now.Add(expiringWithin).UTC().Format(time.RFC3339))
	return nil
}

// nameFlags is --names, which the listings of users have.
type nameFlags struct{ names bool }

func addNameFlags(fs *flag.FlagSet) *nameFlags {
	n := &nameFlags{}
	fs.BoolVar(&n.names, "names", true, "show each user's username and email from the user pool (cognito-idp:ListUsers); --names=false shows the sub alone")
	return n
}

// people returns the user pool's users by sub, or nil when --names=false,
// when no user pool is named, or when the pool cannot be read: a listing
// of subs is still the answer, and stderr says why the names are missing.
func (n *nameFlags) people(ctx context.Context, env *cli.Env, a *admin) map[string]userpool.Person {
	switch {
	case !n.names:
		return nil
	case a.target.UserPoolID == "":
		fmt.Fprintln(env.Stderr, "note: no user pool named (--user-pool-id or CREDBROKER_USER_POOL_ID): users are shown by sub alone")
		return nil
	}
	people, err := a.users.People(ctx)
	if err != nil {
		fmt.Fprintf(env.Stderr, "warning: user pool %s cannot be read (%s): users are shown by sub alone\n", a.target.UserPoolID, cli.OneLine(cli.Message(err)))
		return nil
	}
	return people
}

// nameCell is a user's name in a table: the username and, when it says
// more, the email; "-" when the pool does not know the sub.
func nameCell(p userpool.Person) string {
	switch {
	case p.Username == "" && p.Email == "":
		return "-"
	case p.Email == "" || p.Email == p.Username:
		return cmp.Or(p.Username, p.Email)
	case p.Username == "":
		return p.Email
	}
	return p.Username + " <" + p.Email + ">"
}

// csvTime is an expiry in a CSV cell: empty for none.
func csvTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
