//go:build integration

package iamrole_test

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/iamrole"
	"github.com/credbroker/credbroker/internal/samtemplate"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
)

// The managed pages on moto: the budgets count the quota the ceiling
// leaves; a page is created and attached on its first write, takes a new
// default version on every later one (past IAM's five), reads back as
// written, and an emptied page denies nothing and reads back as empty.
func TestManagedPagesAreCreatedAttachedAndRewritten(t *testing.T) {
	ctx := t.Context()
	tpl, err := samtemplate.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	client := iam.NewFromConfig(mototest.Config(t))
	base, err := tpl.CreateBaseRole(ctx, client, mototest.Name(t, "base"))
	if err != nil {
		t.Fatal(err)
	}
	role := &iamrole.Role{Client: client, ARN: base.ARN}
	budgets, err := role.Budgets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(budgets) != 10 || budgets[1] != 6144-128 {
		t.Fatalf("budgets %v: want the inline page and 9 managed pages of %d (the ceiling takes the tenth slot)", budgets, 6144-128)
	}
	if got, err := role.Current(ctx, 3); err != nil || got != "" {
		t.Fatalf("a page never written reads %q, %v", got, err)
	}
	if err := role.Apply(ctx, 3, ""); err != nil {
		t.Fatalf("emptying a page that does not exist: %v", err)
	}
	doc := func(n int) string {
		return `{"Version":"2012-10-17","Statement":[{"Sid":"Users` + string(rune('0'+n)) + `","Effect":"Deny","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/credbroker:user":["0123456789"]},"StringNotEquals":{"aws:PrincipalTag/credbroker:cutoff":["0123456789ab"]}}}]}`
	}
	for n := range 7 {
		if err := role.Apply(ctx, 3, doc(n)); err != nil {
			t.Fatalf("write %d of page 3: %v", n+1, err)
		}
		if got, err := role.Current(ctx, 3); err != nil || got != doc(n) {
			t.Fatalf("page 3 after write %d reads %q, %v", n+1, got, err)
		}
	}
	arn, err := iamrole.PageARN(base.ARN, 3)
	if err != nil {
		t.Fatal(err)
	}
	attached, err := client.ListAttachedRolePolicies(ctx, &iam.ListAttachedRolePoliciesInput{RoleName: aws.String(base.Name)})
	if err != nil {
		t.Fatal(err)
	}
	var arns []string
	for _, p := range attached.AttachedPolicies {
		arns = append(arns, aws.ToString(p.PolicyArn))
	}
	if diff := cmp.Diff([]string{base.CeilingARN, arn}, arns); diff != "" {
		t.Errorf("attached policies (-want +got):\n%s", diff)
	}
	if err := role.Apply(ctx, 3, ""); err != nil {
		t.Fatal(err)
	}
	if got, err := role.Current(ctx, 3); err != nil || got != "" {
		t.Errorf("an emptied page reads %q, %v", got, err)
	}
	// The budgets left for pages do not shrink by the pages themselves.
	role2 := &iamrole.Role{Client: client, ARN: base.ARN}
	if again, err := role2.Budgets(ctx); err != nil || len(again) != 10 {
		t.Errorf("budgets with a page attached: %v, %v; want 10 pages still", again, err)
	}
}
