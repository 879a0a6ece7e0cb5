package stackfile_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/exitcode"
	"github.com/credbroker/credbroker/internal/stackfile"
)

func TestWriteThenLoadGivesTheSameStack(t *testing.T) {
	want := stackfile.Stack{Region: "us-east-1", AWSEndpoint: "http://127.0.0.1:4566", APIURL: "http://127.0.0.1:8080",
		MembershipTable: "m", PolicyTable: "p", EventBusName: "bus", UserPoolID: "us-east-1_x", UserPoolClientID: "y",
		BaseRoleARN: "arn:aws:iam::123456789012:role/z", WebURL: "http://127.0.0.1:8080/demo/",
		RevokerFunction: "credbroker-revoker", LambdaEndpoint: "http://127.0.0.1:8082"}
	path := filepath.Join(t.TempDir(), "stack.json")
	if err := stackfile.Write(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := stackfile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestBadStackFilesAreUsageErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct{ name, path, says string }{
		{"missing file asks to start the stack", filepath.Join(dir, "absent.json"), "start the local stack with `make run` first"},
		{"malformed file is rejected", write("bad.json", `{"region":`), "not a stack file"},
		{"missing fields are named", write("partial.json", `{"region":"us-east-1","awsEndpoint":"http://x"}`),
			"lacks apiUrl, membershipTable, policyTable, eventBusName, userPoolId, userPoolClientId, baseRoleArn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := stackfile.Load(tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.says) || exitcode.Of(err) != exitcode.Usage {
				t.Errorf("err %v, want one saying %q with exit status %d", err, tc.says, exitcode.Usage)
			}
		})
	}
}
