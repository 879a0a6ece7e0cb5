package admin

import (
	"context"
	"fmt"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/cli"
	"github.com/credbroker/credbroker/internal/projector"
)

// The validated deletes (admin member delete, admin bucket delete) take
// keys that a valid record can have, so they cannot reach a record whose
// keys break the rules (USER#x, a bucket in capitals). admin rejected
// delete removes such a record by its keys as admin rejected lists them,
// and only one that breaks the rules: a valid record goes through the
// validated deletes, which say what access it took away.

func init() {
	register(cli.Command{Path: "admin rejected delete", Summary: "delete a record that breaks the rules, by its keys as admin rejected lists them (valid records are refused)", Run: runRejectedDelete})
}

func runRejectedDelete(ctx context.Context, env *cli.Env, args []string) error {
	fs := cli.NewFlags(env, "admin rejected delete")
	tf := cli.AddTargetFlags(fs, cli.MembershipTable, cli.BaseRole)
	pk := fs.String("pk", "", "the record's partition key, as admin rejected prints it (required)")
	sk := fs.String("sk", "", "the record's sort key, as admin rejected prints it (required)")
	dry := fs.Bool("dry-run", false, "say what would be deleted and delete nothing")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *pk == "" || *sk == "" {
		return cli.Usagef("--pk and --sk are required: the keys as `credbroker admin rejected%s` prints them", tf.Where())
	}
	a, err := openAdmin(ctx, env, tf, cli.MembershipTable)
	if err != nil {
		return err
	}
	return a.deleteRejected(ctx, env, *pk, *sk, tf.Where(), *dry)
}

// deleteRejected deletes the record at pk / sk when it breaks the rules,
// and only while it still breaks them as read (DeleteSourceItemIf). where
// is how the command line named the stack, for the commands it suggests.
func (a *admin) deleteRejected(ctx context.Context, env *cli.Env, pk, sk, where string, dry bool) error {
	const op = "delete rejected record"
	it, found, err := a.store.GetSourceItem(ctx, pk, sk)
	if err != nil {
		return err
	}
	absent := map[bool]string{true: "not found, nothing to delete", false: "not found, nothing deleted"}[dry]
	if !found {
		fmt.Fprintf(env.Stdout, "%s (%s / %s)\n", absent, pk, sk)
		return nil
	}
	parsed, invalid := projector.Validate(a.compiler, it)
	switch {
	case invalid == nil && parsed.Kind == broker.Ignored:
		return broker.Errorf(broker.Invalid, op, "refused, nothing deleted: %s / %s is neither a membership (USER#…/PROJECT#…) nor a bucket record (PROJECT#…/BUCKET#…); the broker never reads it", pk, sk)
	case invalid == nil:
		return broker.Errorf(broker.Invalid, op, "refused, nothing deleted: %s / %s follows the rules (%s); delete it with `%s`, which says what access that takes away",
			pk, sk, describe(parsed), validatedDelete(parsed, where))
	}
	what := "a record that breaks the rules (" + broker.MessageOf(invalid) + ")"
	if dry {
		fmt.Fprintf(env.Stdout, "would delete: %s (%s / %s)\n", what, pk, sk)
		return nil
	}
	deleted, err := a.store.DeleteSourceItemIf(ctx, it)
	switch {
	case broker.KindOf(err) == broker.Conflict:
		return broker.Errorf(broker.Conflict, op, "nothing deleted: %s / %s changed since it was read; run `credbroker admin rejected%s` again to see it as it is now", pk, sk, where)
	case err != nil:
		return err
	case !deleted:
		fmt.Fprintf(env.Stdout, "%s (%s / %s)\n", absent, pk, sk)
		return nil
	}
	fmt.Fprintf(env.Stdout, "deleted: %s (%s / %s)\n", what, pk, sk)
	return nil
}

// validatedDelete is the command line that deletes a valid record.
func validatedDelete(p broker.ParsedItem, where string) string {
	if p.Kind == broker.MembershipRecord {
		return fmt.Sprintf("credbroker admin member delete --user %s --project %s%s", p.Membership.UserID, p.Membership.ProjectID, where)
	}
	return fmt.Sprintf("credbroker admin bucket delete --project %s --bucket %s%s", p.Bucket.ProjectID, p.Bucket.Bucket, where)
}
