package admin

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/exitcode"
	"github.com/credbroker/credbroker/internal/revoker"
	"github.com/credbroker/credbroker/internal/stackfile"
)

// fakeLambda stands in for Lambda's Invoke API: answer decides the reply
// to each invocation, whose function name and payload it records.
type fakeLambda struct {
	answer func(payload revoker.Action) (functionError string, body string)

	mu    sync.Mutex
	calls []string // "<function> <action> <user>"
	ids   []string // the payloads' requestId
}

func (f *fakeLambda) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/2015-03-31/functions/"), "/invocations")
	body, _ := io.ReadAll(r.Body)
	var a revoker.Action
	_ = json.Unmarshal(body, &a)
	f.mu.Lock()
	f.calls = append(f.calls, name+" "+a.Action+" "+a.UserID)
	f.ids = append(f.ids, a.RequestID)
	f.mu.Unlock()
	fnErr, reply := f.answer(a)
	if fnErr != "" {
		w.Header().Set("X-Amz-Function-Error", fnErr)
	}
	_, _ = io.WriteString(w, reply)
}

// fakeStack writes a stack file whose Lambda API is f.
func fakeStack(t *testing.T, f *fakeLambda) string {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	path := filepath.Join(t.TempDir(), "stack.json")
	if err := stackfile.Write(path, stackfile.Stack{Region: "us-east-1", AWSEndpoint: "http://127.0.0.1:1", APIURL: "http://127.0.0.1:1",
		MembershipTable: "m", PolicyTable: "p", EventBusName: "b", UserPoolID: "us-east-1_x", UserPoolClientID: "c",
		BaseRoleARN: "arn:aws:iam::123456789012:role/r", RevokerFunction: "credbroker-revoker", LambdaEndpoint: srv.URL}); err != nil {
		t.Fatal(err)
	}
	return path
}

// admin revoke asks the revoker and reports its answer: the cutoff the
// revoker set, a refusal as the operator's mistake (exit 2), a failure as
// a failure (exit 3). What the command itself can tell is wrong, it
// refuses with exit 2 before invoking anything.
func TestAdminRevokeReportsTheRevokersAnswer(t *testing.T) {
	ok := func(a revoker.Action) (string, string) {
		return "", `{"userId":"` + a.UserID + `","issuedBefore":"2026-12-06T22:00:05.123Z","scope":"user"}`
	}
	refused := func(revoker.Action) (string, string) {
		return "Unhandled", `{"errorMessage":"revoker payload refused: decode revoker event: user id must be 2-64 characters","errorType":"wrapErrors"}`
	}
	failed := func(revoker.Action) (string, string) {
		return "Unhandled", `{"errorMessage":"put role policy: throttled","errorType":"OperationError"}`
	}
	type outcome struct {
		Code   int
		Stdout string
		Stderr string   // a substring
		Calls  []string // what the fake Lambda received
	}
	tests := []struct {
		name   string
		answer func(revoker.Action) (string, string)
		args   []string
		want   outcome
	}{
		{"a revocation prints the revoker's cutoff and scope", ok, []string{"--user", "alice-1"}, outcome{Code: exitcode.OK,
			Stdout: "sessions of alice-1 issued before 2026-12-06T22:00:05.123Z are denied, scope user",
			Calls:  []string{"credbroker-revoker revoke alice-1"}}},
		{"a refusal of the revoker exits 2", refused, []string{"--user", "alice-1"}, outcome{Code: exitcode.Usage,
			Stderr: "the revoker refused the revocation: revoker payload refused", Calls: []string{"credbroker-revoker revoke alice-1"}}},
		{"a failure of the revoker exits 3", failed, []string{"--user", "alice-1"}, outcome{Code: exitcode.Failure,
			Stderr: "the revoker failed (OperationError): put role policy: throttled", Calls: []string{"credbroker-revoker revoke alice-1"}}},
		{"--session-duration is no flag any more and sends nothing", ok, []string{"--user", "alice-1", "--session-duration", "1h"},
			outcome{Code: exitcode.Usage, Stderr: "flag provided but not defined: -session-duration"}},
		{"an invalid user is refused and sends nothing", ok, []string{"--user", "a*b"},
			outcome{Code: exitcode.Usage, Stderr: "has a character outside [A-Za-z0-9_+=,.@-]"}},
		{"a missing user is refused and sends nothing", ok, nil,
			outcome{Code: exitcode.Usage, Stderr: "--user is required"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeLambda{answer: tc.answer}
			args := append([]string{"admin", "revoke", "--stack", fakeStack(t, f)}, tc.args...)
			code, out, errOut := runCLI(t, nil, args...)
			got := outcome{Code: code, Stdout: tc.want.Stdout, Stderr: tc.want.Stderr, Calls: f.calls}
			if !strings.Contains(out, tc.want.Stdout) || (tc.want.Stdout == "" && out != "") {
				got.Stdout = out
			}
			if !strings.Contains(errOut, tc.want.Stderr) || strings.Count(errOut, "\n") > 1 || (tc.want.Stderr == "" && errOut != "") {
				got.Stderr = errOut
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("outcome (-want +got):\n%s", diff)
			}
		})
	}
}

// Each invocation carries a request id of its own, so that the revoker's
// log and CredentialsRevoked tell two revocations apart.
func TestAdminRevokeNamesEachInvocationApart(t *testing.T) {
	f := &fakeLambda{answer: func(a revoker.Action) (string, string) {
		return "", `{"userId":"` + a.UserID + `","issuedBefore":"2026-12-06T22:00:05Z","scope":"user"}`
	}}
	stack := fakeStack(t, f)
	for range 2 {
		if code, _, errOut := runCLI(t, nil, "admin", "revoke", "--stack", stack, "--user", "alice-1"); code != exitcode.OK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	}
	if len(f.ids) != 2 || f.ids[0] == f.ids[1] || !strings.HasPrefix(f.ids[0], "operator-") || !strings.HasPrefix(f.ids[1], "operator-") {
		t.Errorf("request ids %q, want two distinct operator-... ids", f.ids)
	}
}

// A deployed stack needs only the revoker function's name; without it the
// command says which flag or variable to set and invokes nothing.
func TestAdminRevokeOnADeployedStackNeedsOnlyTheRevokerFunction(t *testing.T) {
	code, out, errOut := runCLI(t, nil, "admin", "revoke", "--user", "alice-1", "--region", "eu-west-1")
	if code != exitcode.Usage || out != "" || !strings.Contains(errOut, "for revokerFunction (see `credbroker help`)") {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 asking for revokerFunction only", code, out, errOut)
	}
	if _, help, _ := runCLI(t, nil, "help"); !strings.Contains(help, "--revoker-function CREDBROKER_REVOKER_FUNCTION") {
		t.Errorf("help does not document --revoker-function:\n%s", help)
	}
}
