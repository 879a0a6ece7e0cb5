//go:build integration

package admin

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/credbroker/credbroker/internal/exitcode"
	"github.com/credbroker/credbroker/internal/iamrole"
	"github.com/credbroker/credbroker/internal/samtemplate"
	"github.com/credbroker/credbroker/internal/stackfile"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
)

// roleState is what IAM holds of a base role, and the pages of the
// account under /credbroker/ that belong to the roles named (other tests
// on the shared moto write pages of their own).
type roleState struct {
	Attached []string
	Inline   []string
	Pages    []string
}

func readRoleState(t *testing.T, client *iam.Client, name string, pagesOf ...string) roleState {
	t.Helper()
	ctx := context.Background()
	var s roleState
	a, err := client.ListAttachedRolePolicies(ctx, &iam.ListAttachedRolePoliciesInput{RoleName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range a.AttachedPolicies {
		s.Attached = append(s.Attached, aws.ToString(p.PolicyArn))
	}
	in, err := client.ListRolePolicies(ctx, &iam.ListRolePoliciesInput{RoleName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	s.Inline = in.PolicyNames
	l := iam.NewListPoliciesPaginator(client, &iam.ListPoliciesInput{Scope: iamtypes.PolicyScopeTypeLocal, PathPrefix: aws.String(iamrole.PagePath)})
	for l.HasMorePages() {
		page, err := l.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page.Policies {
			if arn := aws.ToString(p.Arn); slices.ContainsFunc(pagesOf, func(role string) bool { return iamrole.IsPage(role, arn) }) {
				s.Pages = append(s.Pages, arn)
			}
		}
	}
	slices.Sort(s.Attached)
	slices.Sort(s.Inline)
	slices.Sort(s.Pages)
	return s
}

// The revoker's own writer puts the deny list on a base role made as the
// template makes it: the inline page, pages 1 and 2 (page 2 rewritten past
// IAM's five versions), page 3 emptied. An operator attached a policy of
// their own, and another stack's revoker wrote a page of its role. Without
// --yes the command touches nothing; with it the role keeps only the
// ceiling and the operator's policy, which the command names as what still
// stops CloudFormation; no page of the role is left in the account, the
// other role's is; a second run removes nothing and succeeds. Then the
// role can be deleted as CloudFormation would, once the operator's policy
// is detached (moto refuses DeleteRole before, as IAM does).
func TestTeardownRemovesExactlyWhatTheRevokerWroteOnMoto(t *testing.T) {
	ctx := context.Background()
	tpl, err := samtemplate.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	cfg := mototest.Config(t)
	client := iam.NewFromConfig(cfg)
	base, err := tpl.CreateBaseRole(ctx, client, mototest.Name(t, "base"))
	if err != nil {
		t.Fatal(err)
	}
	neighbour, err := tpl.CreateBaseRole(ctx, client, mototest.Name(t, "other-base"))
	if err != nil {
		t.Fatal(err)
	}
	deny := func(sid string) string {
		return `{"Version":"2012-10-17","Statement":[{"Sid":"` + sid + `","Effect":"Deny","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/credbroker:user":["0123456789"]},"StringNotEquals":{"aws:PrincipalTag/credbroker:cutoff":["0123456789ab"]}}}]}`
	}
	role := &iamrole.Role{Client: client, ARN: base.ARN}
	writes := []struct {
		page int
		doc  string
	}{{0, deny("Inline")}, {1, deny("One")}, {3, deny("Three")}, {3, ""}}
	for n := range 7 {
		writes = append(writes, struct {
			page int
			doc  string
		}{2, deny("Two" + string(rune('a'+n)))})
	}
	for _, w := range writes {
		if err := role.Apply(ctx, w.page, w.doc); err != nil {
			t.Fatalf("write page %d: %v", w.page, err)
		}
	}
	// A page whose creation was interrupted before its attachment.
	if err := (&iamrole.Role{Client: attachRefused{client}, ARN: base.ARN}).Apply(ctx, 4, deny("Four")); err == nil {
		t.Fatal("page 4 was attached through a client that refuses to attach")
	}
	if err := (&iamrole.Role{Client: client, ARN: neighbour.ARN}).Apply(ctx, 1, deny("Neighbour")); err != nil {
		t.Fatal(err)
	}
	neighbourPage, err := iamrole.PageARN(neighbour.ARN, 1)
	if err != nil {
		t.Fatal(err)
	}
	own, err := client.CreatePolicy(ctx, &iam.CreatePolicyInput{PolicyName: aws.String(mototest.Name(t, "operators")),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListAllMyBuckets","Resource":"*"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	ownARN := aws.ToString(own.Policy.Arn)
	if _, err := client.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: aws.String(base.Name), PolicyArn: aws.String(ownARN)}); err != nil {
		t.Fatal(err)
	}
	var pages []string
	for i := 1; i <= 4; i++ {
		arn, err := iamrole.PageARN(base.ARN, i)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, arn)
	}
	before := readRoleState(t, client, base.Name, base.ARN, neighbour.ARN)
	for i, arn := range pages {
		if slices.Contains(before.Attached, arn) != (i < 3) || !slices.Contains(before.Pages, arn) {
			t.Fatalf("the revoker's writer left page %d (%s) missing, or its attachment is not as written: %+v", i+1, arn, before)
		}
	}
	if !slices.Contains(before.Inline, iamrole.PolicyName) {
		t.Fatalf("the revoker's writer wrote no inline page: %+v", before)
	}
	if _, err := client.DeleteRole(ctx, &iam.DeleteRoleInput{RoleName: aws.String(base.Name)}); !isDeleteConflict(err) {
		t.Fatalf("DeleteRole of the role with the pages: %v, want DeleteConflict (moto's as IAM's)", err)
	}

	path := filepath.Join(t.TempDir(), "stack.json")
	// The command uses the base role alone; the other parts name nothing.
	if err := stackfile.Write(path, stackfile.Stack{Region: mototest.Region, AWSEndpoint: mototest.Endpoint(t), APIURL: "http://127.0.0.1:1",
		MembershipTable: "unused", PolicyTable: "unused", EventBusName: "unused", UserPoolID: "us-east-1_unused", UserPoolClientID: "unused",
		BaseRoleARN: base.ARN}); err != nil {
		t.Fatal(err)
	}
	teardown := func(args ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, nil, append([]string{"admin", "teardown", "--stack", path}, args...)...)
	}

	code, out, errOut := teardown()
	if code != exitcode.Usage || out != "" || !strings.Contains(errOut, "--yes") {
		t.Errorf("without --yes: exit %d, stdout %q, stderr %q; want exit 2 naming --yes", code, out, errOut)
	}
	if diff := cmp.Diff(before, readRoleState(t, client, base.Name, base.ARN, neighbour.ARN)); diff != "" {
		t.Fatalf("without --yes the role changed (-before +after):\n%s", diff)
	}

	code, out, errOut = teardown("--yes")
	if code != exitcode.OK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	t.Logf("stdout:\n%s", out)
	wantLines := []string{
		"deleted  inline policy credbroker-revocations of role " + base.Name,
		"deleted  " + pages[0] + ": detached from role " + base.Name + ", 0 older versions deleted",
		"deleted  " + pages[1] + ": detached from role " + base.Name + ", 4 older versions deleted",
		"deleted  " + pages[2] + ": detached from role " + base.Name + ", 1 older version deleted",
		"deleted  " + pages[3] + ": was not attached, 0 older versions deleted",
		"left     " + base.CeilingARN + ": the role's permissions boundary, the template's ceiling; CloudFormation detaches it",
		"left     " + ownARN + ": not the stack's; CloudFormation cannot delete role " + base.Name + " while it is there: aws iam detach-role-policy --role-name " + base.Name + " --policy-arn " + ownARN,
		"next: remove 1 policy that the stack did not put on role " + base.Name + " (CloudFormation cannot delete the role while it holds one), then delete the stack (sam delete)",
	}
	if diff := cmp.Diff(wantLines, strings.Split(strings.TrimSuffix(out, "\n"), "\n")); diff != "" {
		t.Errorf("stdout (-want +got):\n%s", diff)
	}
	after := readRoleState(t, client, base.Name, base.ARN, neighbour.ARN)
	want := roleState{Attached: sorted(base.CeilingARN, ownARN), Pages: slices.DeleteFunc(slices.Clone(before.Pages), func(arn string) bool { return slices.Contains(pages, arn) })}
	if diff := cmp.Diff(want, after, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("after the teardown (-want +got):\n%s", diff)
	}
	if !slices.Contains(after.Pages, neighbourPage) {
		t.Errorf("the other role's page %s is gone", neighbourPage)
	}

	code, out, errOut = teardown("--yes")
	if code != exitcode.OK || !strings.Contains(out, "role "+base.Name+" holds no page of the deny list: nothing removed\n") || strings.Contains(out, "deleted") {
		t.Errorf("second run: exit %d, stdout %q, stderr %q; want exit 0, nothing removed", code, out, errOut)
	}
	code, out, errOut = teardown("--yes", "--json")
	var rep teardownReport
	if err := json.Unmarshal([]byte(out), &rep); code != exitcode.OK || err != nil {
		t.Fatalf("--json run: exit %d (%s), %v in %q", code, errOut, err, out)
	}
	wantRep := teardownReport{Role: base.Name, Removed: []removedView{}, Left: []leftView{{Policy: base.CeilingARN},
		{Policy: ownARN, Blocks: true, Remove: "aws iam detach-role-policy --role-name " + base.Name + " --policy-arn " + ownARN}},
		Next: "remove 1 policy that the stack did not put on role " + base.Name + " (CloudFormation cannot delete the role while it holds one), then delete the stack (sam delete)"}
	if diff := cmp.Diff(wantRep, rep); diff != "" {
		t.Errorf("--json of a run with nothing to remove (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(after, readRoleState(t, client, base.Name, base.ARN, neighbour.ARN)); diff != "" {
		t.Errorf("the later runs changed the role (-before +after):\n%s", diff)
	}

	// CloudFormation detaches the ceiling it attached, then deletes the
	// role: refused while the operator's policy is on it, done after.
	if _, err := client.DetachRolePolicy(ctx, &iam.DetachRolePolicyInput{RoleName: aws.String(base.Name), PolicyArn: aws.String(base.CeilingARN)}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.DeleteRole(ctx, &iam.DeleteRoleInput{RoleName: aws.String(base.Name)}); !isDeleteConflict(err) {
		t.Fatalf("DeleteRole with the operator's policy attached: %v, want DeleteConflict", err)
	}
	if _, err := client.DetachRolePolicy(ctx, &iam.DetachRolePolicyInput{RoleName: aws.String(base.Name), PolicyArn: aws.String(ownARN)}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.DeleteRole(ctx, &iam.DeleteRoleInput{RoleName: aws.String(base.Name)}); err != nil {
		t.Errorf("DeleteRole after the teardown and the operator's detach: %v", err)
	}
	code, _, errOut = teardown("--yes")
	if code != exitcode.Usage || !strings.Contains(errOut, "no role "+base.Name) {
		t.Errorf("a run once the role is deleted: exit %d, stderr %q; want exit 2 saying there is no such role", code, errOut)
	}
}

func isDeleteConflict(err error) bool {
	var dc *iamtypes.DeleteConflictException
	return errors.As(err, &dc)
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}

// attachRefused is the IAM client with a fault moto cannot make: every
// AttachRolePolicy fails, as when the revoker stops between creating a
// page and attaching it.
type attachRefused struct{ *iam.Client }

func (attachRefused) AttachRolePolicy(context.Context, *iam.AttachRolePolicyInput, ...func(*iam.Options)) (*iam.AttachRolePolicyOutput, error) {
	return nil, errors.New("attachRefused: interrupted before the attachment")
}
