package samtemplate_test

import (
	"testing"

	"github.com/credbroker/credbroker/internal/samtemplate"
	"github.com/credbroker/credbroker/internal/testkit/iameval"
)

// allowAll is what a compromised revoker could write as the base role's
// inline policy, and the widest session policy.
const allowAll = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`

// beyondCeiling are requests that no session of the base role may make,
// whatever its policies say: other actions, other accounts' buckets,
// plain HTTP. bucket is one the ceiling covers.
func beyondCeiling(bucket string) map[string]iameval.Request {
	own := map[string]string{"aws:SecureTransport": "true", "s3:ResourceAccount": samtemplate.LocalAccountID}
	return map[string]iameval.Request{
		"changing the bucket's policy":   {Action: "s3:PutBucketPolicy", Resource: "arn:aws:s3:::" + bucket, Context: own},
		"deleting the bucket":            {Action: "s3:DeleteBucket", Resource: "arn:aws:s3:::" + bucket, Context: own},
		"writing the base role's policy": {Action: "iam:PutRolePolicy", Resource: "arn:aws:iam::" + samtemplate.LocalAccountID + ":role/base", Context: own},
		"reading another account's bucket": {Action: "s3:GetObject", Resource: "arn:aws:s3:::" + bucket + "/k",
			Context: map[string]string{"aws:SecureTransport": "true", "s3:ResourceAccount": "210987654321"}},
		"reading over plain HTTP": {Action: "s3:GetObject", Resource: "arn:aws:s3:::" + bucket + "/k",
			Context: map[string]string{"aws:SecureTransport": "false", "s3:ResourceAccount": samtemplate.LocalAccountID}},
	}
}

// withinCeiling is a request the ceiling allows on bucket.
func withinCeiling(bucket string) iameval.Request {
	return iameval.Request{Action: "s3:GetObject", Resource: "arn:aws:s3:::" + bucket + "/k",
		Context: map[string]string{"aws:SecureTransport": "true", "s3:ResourceAccount": samtemplate.LocalAccountID}}
}

// checkBounded checks that a base role whose inline policy allows
// everything still reaches only what its ceiling allows, and that the
// boundary is what stops it.
func checkBounded(t *testing.T, role iameval.Role, beyond map[string]iameval.Request, within iameval.Request) {
	t.Helper()
	session, err := iameval.Parse(allowAll)
	if err != nil {
		t.Fatal(err)
	}
	if role.Boundary == nil {
		t.Fatal("the base role has no permissions boundary")
	}
	unbounded := iameval.Role{Policies: role.Policies}
	for name, req := range beyond {
		if role.Allows(session, req) {
			t.Errorf("%s is allowed: an inline Allow reaches beyond the ceiling", name)
		}
		if !unbounded.Allows(session, req) {
			t.Errorf("%s is denied even without the boundary: this case shows nothing", name)
		}
	}
	if !role.Allows(session, within) {
		t.Errorf("%+v, within the ceiling, is denied", within)
	}
}

// The revoker may write any inline policy on the base role; IAM keeps
// whatever it writes within the ceiling, which is the role's boundary.
func TestAnInlineAllowOnTheBaseRoleReachesNothingBeyondTheCeiling(t *testing.T) {
	tpl := mustLoad(t)
	s, err := tpl.Stack(samtemplate.Env{Pseudo: map[string]string{"AWS::StackName": "credbroker"}})
	if err != nil {
		t.Fatal(err)
	}
	ceiling, err := s.BaseRolePolicy()
	if err != nil {
		t.Fatal(err)
	}
	// As IAM would hold the role: the ceiling attached and as its boundary,
	// and the inline policy.
	role, err := iameval.ParseRole(ceiling, ceiling, allowAll)
	if err != nil {
		t.Fatal(err)
	}
	beyond := beyondCeiling("credbroker-raw")
	beyond["reading a bucket outside AllowedBuckets"] = withinCeiling("other-raw")
	checkBounded(t, role, beyond, withinCeiling("credbroker-raw"))
}
