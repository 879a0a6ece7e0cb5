package admin

import (
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/cli"
	"github.com/credbroker/credbroker/internal/iamrole"
)

func init() {
	register(cli.Command{
		Path:    "admin teardown",
		Summary: "only to delete the stack: remove the revoker's deny-list pages from the base role, lifting every revocation (docs/security.md \"The deny list's policies\")",
		Run:     adminTeardown,
	})
}

const teardownHelp = `usage: credbroker admin teardown --yes [--json] [--base-role-arn ARN | --stack FILE]

Only for deleting the stack: it lifts every revocation. The revoker writes
the deny list on the base role outside CloudFormation, and CloudFormation
cannot delete a role that holds policies it did not put there. Right before
` + "`sam delete`" + `, this removes them from the base role: the inline policy
credbroker-revocations, and the managed policies
/credbroker/<BaseRole>-revocations-<n> (detached, their older versions
deleted, then the policies). It prints a line per policy. It leaves every
other policy of the role alone and lists it; one the template did not put
there (any but the ceiling) still stops CloudFormation, and its line says
how to remove it. A second run finds nothing and succeeds; a revocation
between this and the stack's deletion writes pages again: run it again.
Without --yes it refuses and touches nothing.

It needs, on the base role, iam:GetRole, ListRolePolicies,
DeleteRolePolicy, ListAttachedRolePolicies and DetachRolePolicy; on its
pages iam:ListPolicyVersions, DeletePolicyVersion and DeletePolicy; and
iam:ListPolicies. Exit status: 0 done (or nothing to do), 2 usage (no --yes,
no such role), 3 failure (what was done is printed; run it again).

Flags:
`

// teardownReport is --json's answer.
type teardownReport struct {
	Role    string        `json:"role"`
	Removed []removedView `json:"removed"`
	Left    []leftView    `json:"left"`
	Next    string        `json:"next"`
	// Error is why the run stopped early, after what Removed lists.
	Error string `json:"error,omitempty"`
}

type removedView struct {
	Policy   string `json:"policy"`
	Inline   bool   `json:"inline"`
	Detached bool   `json:"detached"`
	Versions int    `json:"versionsDeleted"`
}

type leftView struct {
	Policy string `json:"policy"`
	Inline bool   `json:"inline"`
	// Blocks says CloudFormation cannot delete the role while it is there.
	Blocks bool   `json:"blocksDelete"`
	Remove string `json:"remove,omitempty"`
}

func adminTeardown(ctx context.Context, env *cli.Env, args []string) error {
	fs := cli.NewFlags(env, "admin teardown")
	tf := cli.AddTargetFlags(fs, cli.BaseRole)
	yes := fs.Bool("yes", false, "remove the pages: every revocation is lifted (for deleting the stack only)")
	asJSON := fs.Bool("json", false, `print {"role","removed":[{"policy","inline","detached","versionsDeleted"}],"left":[{"policy","inline","blocksDelete","remove"?}],"next"}`)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), teardownHelp)
		fs.PrintDefaults()
	}
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if !*yes {
		return cli.Usagef("refused, nothing touched: this lifts every revocation and is only for deleting the stack; right before `sam delete`, run `credbroker admin teardown --yes%s`", tf.Where())
	}
	t, err := tf.Resolve(env, cli.BaseRole)
	if err != nil {
		return err
	}
	cfg, err := t.AWS(ctx)
	if err != nil {
		return broker.Wrap(broker.Invalid, "load AWS configuration", err)
	}
	td, err := iamrole.RemovePages(ctx, iam.NewFromConfig(cfg), t.BaseRoleARN)
	if err != nil && len(td.Removed) == 0 && len(td.Left) == 0 {
		return err // nothing done: the error line says it all
	}
	rep := teardownView(td, err)
	if *asJSON {
		if perr := cli.PrintJSON(env.Stdout, rep); perr != nil && err == nil {
			err = perr
		}
		return err
	}
	printTeardown(env.Stdout, rep)
	return err
}

// teardownView is what the run did, the policies it left and the next
// step; err, when the run stopped early.
func teardownView(td iamrole.Teardown, err error) teardownReport {
	rep := teardownReport{Role: td.Role, Removed: []removedView{}, Left: []leftView{}}
	for _, r := range td.Removed {
		rep.Removed = append(rep.Removed, removedView{Policy: r.Policy, Inline: r.Inline, Detached: r.Detached, Versions: r.Versions})
	}
	blocking := 0
	for _, l := range td.Left {
		v := leftView{Policy: l.Policy, Inline: l.Inline, Blocks: l.Blocks()}
		switch {
		case !l.Blocks():
		case l.Inline:
			v.Remove = fmt.Sprintf("aws iam delete-role-policy --role-name %s --policy-name %s", td.Role, l.Policy)
		default:
			v.Remove = fmt.Sprintf("aws iam detach-role-policy --role-name %s --policy-arn %s", td.Role, l.Policy)
		}
		if v.Blocks {
			blocking++
		}
		rep.Left = append(rep.Left, v)
	}
	switch {
	case err != nil:
		rep.Error = cli.OneLine(cli.Message(err))
		rep.Next = "run `credbroker admin teardown --yes` again once the failure is understood"
	case blocking > 0:
		rep.Next = fmt.Sprintf("remove %s that the stack did not put on role %s (CloudFormation cannot delete the role while it holds one), then delete the stack (sam delete)", count(blocking, "policy", "policies"), td.Role)
	default:
		rep.Next = "delete the stack (sam delete); a revocation before then writes pages again: run this again"
	}
	return rep
}

func printTeardown(w io.Writer, rep teardownReport) {
	for _, r := range rep.Removed {
		switch {
		case r.Inline:
			fmt.Fprintf(w, "deleted  inline policy %s of role %s\n", r.Policy, rep.Role)
		case r.Detached:
			fmt.Fprintf(w, "deleted  %s: detached from role %s, %s deleted\n", r.Policy, rep.Role, count(r.Versions, "older version", "older versions"))
		default:
			fmt.Fprintf(w, "deleted  %s: was not attached, %s deleted\n", r.Policy, count(r.Versions, "older version", "older versions"))
		}
	}
	for _, l := range rep.Left {
		what := l.Policy
		if l.Inline {
			what = "inline policy " + l.Policy
		}
		if !l.Blocks {
			fmt.Fprintf(w, "left     %s: the role's permissions boundary, the template's ceiling; CloudFormation detaches it\n", what)
			continue
		}
		fmt.Fprintf(w, "left     %s: not the stack's; CloudFormation cannot delete role %s while it is there: %s\n", what, rep.Role, l.Remove)
	}
	if len(rep.Removed) == 0 && rep.Error == "" {
		fmt.Fprintf(w, "role %s holds no page of the deny list: nothing removed\n", rep.Role)
	}
	fmt.Fprintf(w, "next: %s\n", rep.Next)
}

// count is "1 policy", "2 policies".
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
