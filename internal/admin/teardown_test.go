package admin

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/exitcode"
	"github.com/credbroker/credbroker/internal/iamrole"
	"github.com/credbroker/credbroker/internal/stackfile"
)

// Without --yes, or with a role that is no role, the command refuses
// before any AWS call: a stack file points it at a server that counts the
// requests it gets.
func TestTeardownRefusesBeforeAnyAWSCall(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	stack := func(roleARN string) string {
		path := filepath.Join(t.TempDir(), "stack.json")
		if err := stackfile.Write(path, stackfile.Stack{Region: "us-east-1", AWSEndpoint: srv.URL, APIURL: "http://127.0.0.1:1",
			MembershipTable: "m", PolicyTable: "p", EventBusName: "b", UserPoolID: "us-east-1_x", UserPoolClientID: "c",
			BaseRoleARN: roleARN}); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, tc := range []struct {
		name string
		args []string
		says string
	}{
		{"no --yes is refused with the next step", []string{"--stack", stack("arn:aws:iam::123456789012:role/r")}, "refused, nothing touched: this lifts every revocation and is only for deleting the stack; right before `sam delete`, run `credbroker admin teardown --yes --stack "},
		{"--yes=false is refused", []string{"--yes=false", "--base-role-arn", "arn:aws:iam::123456789012:role/r"}, "refused, nothing touched"},
		{"no role named is refused", []string{"--yes"}, "baseRoleArn"},
		{"a role name that is no ARN is refused", []string{"--yes", "--stack", stack("stack-BaseRole")}, "is not an IAM role ARN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, nil, append([]string{"admin", "teardown"}, tc.args...)...)
			if code != exitcode.Usage || out != "" || !strings.Contains(errOut, tc.says) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 saying %q", code, out, errOut, tc.says)
			}
		})
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("%d AWS calls, want none", n)
	}
}

// The report says which policies still stop CloudFormation, and how to
// remove them; the ceiling, the role's boundary, does not.
func TestTeardownViewNamesWhatStillBlocksTheDelete(t *testing.T) {
	const page1 = "arn:aws:iam::123456789012:policy/credbroker/r-revocations-1"
	const ceiling = "arn:aws:iam::123456789012:policy/r-ceiling"
	const other = "arn:aws:iam::123456789012:policy/audit-readonly"
	removed := []iamrole.RemovedPage{{Policy: iamrole.PolicyName, Inline: true}, {Policy: page1, Detached: true, Versions: 2}}
	for _, tc := range []struct {
		name     string
		td       iamrole.Teardown
		err      error
		wantLeft []leftView
		wantNext string
	}{
		{
			name:     "only the ceiling left: delete the stack next",
			td:       iamrole.Teardown{Role: "r", Removed: removed, Left: []iamrole.LeftPolicy{{Policy: ceiling, Boundary: true}}},
			wantLeft: []leftView{{Policy: ceiling}},
			wantNext: "delete the stack (sam delete); a revocation before then writes pages again: run this again",
		},
		{
			name: "another managed and another inline policy left: remove them first",
			td:   iamrole.Teardown{Role: "r", Left: []iamrole.LeftPolicy{{Policy: ceiling, Boundary: true}, {Policy: other}, {Policy: "notes", Inline: true}}},
			wantLeft: []leftView{
				{Policy: ceiling},
				{Policy: other, Blocks: true, Remove: "aws iam detach-role-policy --role-name r --policy-arn " + other},
				{Policy: "notes", Inline: true, Blocks: true, Remove: "aws iam delete-role-policy --role-name r --policy-name notes"},
			},
			wantNext: "remove 2 policies that the stack did not put on role r (CloudFormation cannot delete the role while it holds one), then delete the stack (sam delete)",
		},
		{
			name:     "a failure: run again",
			td:       iamrole.Teardown{Role: "r", Removed: removed[:1]},
			err:      broker.Wrap(broker.Transient, "detach revocation page", errors.New("Throttling")),
			wantLeft: []leftView{},
			wantNext: "run `credbroker admin teardown --yes` again once the failure is understood",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := teardownView(tc.td, tc.err)
			if diff := cmp.Diff(tc.wantLeft, rep.Left); diff != "" {
				t.Errorf("left (-want +got):\n%s", diff)
			}
			if rep.Next != tc.wantNext {
				t.Errorf("next %q, want %q", rep.Next, tc.wantNext)
			}
			if len(rep.Removed) != len(tc.td.Removed) || (tc.err == nil) != (rep.Error == "") {
				t.Errorf("report %+v does not say what was removed and whether it failed", rep)
			}
		})
	}
}
