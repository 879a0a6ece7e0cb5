//go:build integration

package iamrole_test

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/iamrole"
	"github.com/credbroker/credbroker/internal/samtemplate"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
)

// The deny list may take the whole inline budget of the base role, less
// the spare: the ceiling is a managed policy, which IAM counts apart. Any
// other inline policy takes its share; the deny list itself does not.
func TestTheBudgetIsTheInlineLimitLessTheOtherInlinePolicies(t *testing.T) {
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
	budget := func() int {
		t.Helper()
		b, err := (&iamrole.Role{Client: client, ARN: base.ARN}).Budgets(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return b[0]
	}
	const whole = 10240 - 256
	if got := budget(); got != whole {
		t.Errorf("budget of the base role as created: %d, want %d", got, whole)
	}
	deny := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":"2026-11-30T12:00:05Z"}}}]}`
	if err := (&iamrole.Role{Client: client, ARN: base.ARN}).Apply(ctx, 0, deny); err != nil {
		t.Fatal(err)
	}
	if got := budget(); got != whole {
		t.Errorf("budget with the deny list on the role: %d, want %d", got, whole)
	}
	other := `{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::x+y/*"}]}`
	if _, err := client.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(base.Name), PolicyName: aws.String("other"), PolicyDocument: aws.String(other)}); err != nil {
		t.Fatal(err)
	}
	if got, want := budget(), whole-broker.PolicySize(other); got != want {
		t.Errorf("budget with another inline policy of %d characters: %d, want %d", broker.PolicySize(other), got, want)
	}
}
