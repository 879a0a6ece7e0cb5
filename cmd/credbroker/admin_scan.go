package main

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/projector"
)

// The questions over whole tables: who-can and report read the policy
// table, which is exactly what the credential endpoint serves (the same
// items, decoded by the same code, with the same refusals); rejected reads
// the membership table with the projector's rules. All scan in parallel
// segments, page by page, and stream their rows: memory does not grow with
// the tables.

func init() {
	register(command{path: "admin who-can", summary: "every user who can reach a bucket (or a folder of it), how, and through which projects", run: runWhoCan})
	register(command{path: "admin rejected", summary: "every record of the membership table that grants nothing because it breaks the rules", run: runRejected})
	register(command{path: "admin report", summary: "every user, bucket, folder, access and projects, as CSV or JSON (access reviews)", run: runReport})
}

// reach is one row of who-can.
type reach struct {
	UserID    string        `json:"userId"`
	Access    broker.Access `json:"access"`
	Prefix    string        `json:"prefix"`
	Projects  []string      `json:"projects"`
	ExpiresAt time.Time     `json:"expiresAt,omitzero"`
}

func runWhoCan(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "admin who-can")
	tf := addTargetFlags(fs)
	sf := addScanFlags(fs)
	bucket := fs.String("bucket", "", "the bucket (required)")
	prefix := fs.String("prefix", "", "a folder of the bucket: users who reach any of it (the whole bucket, the folder, a folder above or below it)")
	asJSON := fs.Bool("json", false, `print [{"userId","access","prefix","projects","expiresAt"?}]`)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := sf.check(); err != nil {
		return err
	}
	if *bucket == "" {
		return usagef("--bucket is required")
	}
	if err := broker.ValidateBucketName(*bucket); err != nil {
		return broker.Errorf(broker.Invalid, "bucket", "%s: no grant can name it (docs/contract.md \"Source records\")", broker.MessageOf(err))
	}
	folderOf, err := broker.NormalizePrefix(*prefix)
	if err != nil {
		return broker.Errorf(broker.Invalid, "prefix", "%s: no grant can name it (docs/contract.md \"Source records\")", broker.MessageOf(err))
	}
	a, err := openAdmin(ctx, env, tf, "policyTable")
	if err != nil {
		return err
	}
	format := map[bool]string{true: formatJSON, false: formatTable}[*asJSON]
	out := newRows(env.Stdout, format, "USER", "ACCESS", "FOLDER", "THROUGH PROJECTS", "UNTIL")
	now := a.now()
	var users atomic.Int64
	prog := startProgress(env, "credbroker admin who-can", "policy items", sf.quiet)
	unserved, err := a.scanServed(ctx, sf.segments, prog, func(userID string, p broker.UserPolicy) error {
		found := false
		for _, g := range p.Grants {
			// A grant past its expiry reaches nothing, even before the
			// recompute that drops it.
			if g.Bucket != *bucket || !overlaps(g.Prefix, folderOf) || !g.LiveAt(now) {
				continue
			}
			found = true
			r := reach{UserID: userID, Access: g.Access, Prefix: g.Prefix, Projects: nonNil(g.Projects), ExpiresAt: g.ExpiresAt}
			if err := out.add(r, r.UserID, string(r.Access), folder(r.Prefix), strings.Join(r.Projects, " "), until(r.ExpiresAt)); err != nil {
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
	prog.finish(fmt.Sprintf("%d grant(s) to %d user(s) reach %s", out.count(), users.Load(), what))
	if err != nil {
		return err
	}
	warnUnserved(env, unserved)
	return out.close()
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
func (a *admin) scanServed(ctx context.Context, segments int, prog *progress, fn func(userID string, p broker.UserPolicy) error) (unserved int64, err error) {
	var bad atomic.Int64
	err = scanAll(ctx, segments, func(ctx context.Context, seg int) error {
		return a.store.ScanPolicies(ctx, seg, segments, func(userID string, p broker.UserPolicy, err error) error {
			prog.items.Add(1)
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

func warnUnserved(env *cmdEnv, n int64) {
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

func runRejected(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "admin rejected")
	tf := addTargetFlags(fs)
	sf := addScanFlags(fs)
	asJSON := fs.Bool("json", false, `print [{"pk","sk","reason"}]`)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := sf.check(); err != nil {
		return err
	}
	a, err := openAdmin(ctx, env, tf, "membershipTable")
	if err != nil {
		return err
	}
	format := map[bool]string{true: formatJSON, false: formatTable}[*asJSON]
	out := newRows(env.Stdout, format, "PK", "SK", "REASON")
	prog := startProgress(env, "credbroker admin rejected", "membership items", sf.quiet)
	err = scanAll(ctx, sf.segments, func(ctx context.Context, seg int) error {
		return a.store.ScanMemberships(ctx, seg, sf.segments, func(it broker.SourceItem) error {
			prog.items.Add(1)
			if _, err := projector.Validate(a.compiler, it); err != nil {
				r := rejection{PK: it.PK, SK: it.SK, Reason: broker.MessageOf(err)}
				return out.add(r, r.PK, r.SK, r.Reason)
			}
			return nil
		})
	})
	prog.finish(fmt.Sprintf("%d record(s) break the rules", out.count()))
	if err != nil {
		return err
	}
	if err := out.close(); err != nil {
		return err
	}
	if n := out.count(); n > 0 {
		return foundError{fmt.Sprintf("%d record(s) break the rules of docs/contract.md \"Source records\" and grant nothing: fix them with admin member put / admin bucket put, or delete them by their keys (aws dynamodb delete-item; docs/operations.md \"Writes, answers and scans\")", n)}
	}
	return nil
}

// reportRow is one row of report.
type reportRow struct {
	UserID    string        `json:"userId"`
	Bucket    string        `json:"bucket"`
	Prefix    string        `json:"prefix"`
	Access    broker.Access `json:"access"`
	Projects  []string      `json:"projects"`
	ExpiresAt time.Time     `json:"expiresAt,omitzero"`
}

// expiringWithin is how far ahead report counts the memberships that end.
const expiringWithin = 24 * time.Hour

func runReport(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "admin report")
	tf := addTargetFlags(fs)
	sf := addScanFlags(fs)
	format := fs.String("format", formatCSV, `"csv" (projects separated by spaces) or "json" (an array)`)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := sf.check(); err != nil {
		return err
	}
	if *format != formatCSV && *format != formatJSON {
		return usagef(`--format must be "csv" or "json"`)
	}
	a, err := openAdmin(ctx, env, tf, "policyTable")
	if err != nil {
		return err
	}
	out := newRows(env.Stdout, *format, "userId", "bucket", "prefix", "access", "projects", "expiresAt")
	var users, expiring atomic.Int64
	now := a.now()
	prog := startProgress(env, "credbroker admin report", "policy items", sf.quiet)
	unserved, err := a.scanServed(ctx, sf.segments, prog, func(userID string, p broker.UserPolicy) error {
		users.Add(1)
		for _, e := range p.Expires {
			if e.After(now) && !e.After(now.Add(expiringWithin)) {
				expiring.Add(1)
			}
		}
		for _, g := range broker.LiveGrants(p.Grants, now) {
			r := reportRow{UserID: userID, Bucket: g.Bucket, Prefix: g.Prefix, Access: g.Access, Projects: nonNil(g.Projects), ExpiresAt: g.ExpiresAt}
			if err := out.add(r, r.UserID, r.Bucket, r.Prefix, string(r.Access), strings.Join(r.Projects, " "), csvTime(r.ExpiresAt)); err != nil {
				return err
			}
		}
		return nil
	})
	prog.finish(fmt.Sprintf("%d grant(s) of %d user(s)", out.count(), users.Load()))
	if err != nil {
		return err
	}
	warnUnserved(env, unserved)
	if err := out.close(); err != nil {
		return err
	}
	// On stderr, as the progress line: stdout stays the CSV or JSON.
	fmt.Fprintf(env.Stderr, "%d membership(s) expire within a day (before %s)\n", expiring.Load(), now.Add(expiringWithin).UTC().Format(time.RFC3339))
	return nil
}

// csvTime is an expiry in a CSV cell: empty for none.
func csvTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
