package cli_test

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/cli"
	"github.com/credbroker/credbroker/internal/exitcode"
)

// One status per outcome, whatever the error's wrapping.
func TestEveryErrorHasTheStatusOfItsKind(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want int
	}{
		{"no error", nil, exitcode.OK},
		{"a finding", cli.Foundf("3 records"), exitcode.Found},
		{"a wrapped finding", errors.Join(errors.New("x"), cli.Foundf("drift")), exitcode.Found},
		{"a usage error", cli.Usagef("--bucket is required"), exitcode.Usage},
		{"a sign-in problem", broker.Errorf(broker.Unauthenticated, "credentials", "run credbroker login"), exitcode.SignIn},
		{"a refusal", broker.Errorf(broker.NoAccess, "credentials", "no access"), exitcode.NoAccess},
		{"a dependency failing", broker.Errorf(broker.Transient, "scan", "throttled"), exitcode.Failure},
		{"an error of no kind", errors.New("boom"), exitcode.Failure},
		{"the machine not ready", exitcode.ErrEnvironment, exitcode.Environment},
	} {
		if got := cli.ExitCode(tt.err); got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
		}
	}
}

// A flag names a part of a deployed stack before its variable does; a
// command has flags for the parts it uses only.
func TestAFlagNamesAStackBeforeItsVariable(t *testing.T) {
	vars := map[string]string{"CREDBROKER_API_URL": " https://from-variable.example.com ", "CREDBROKER_USER_POOL_ID": "us-east-1_Var", "CREDBROKER_REGION": "eu-west-1"}
	env := &cli.Env{Getenv: func(k string) string { return vars[k] }}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	tf := cli.AddTargetFlags(fs, cli.APIURL, cli.UserPool)
	if err := fs.Parse([]string{"--api-url", "https://from-flag.example.com"}); err != nil {
		t.Fatal(err)
	}
	got, err := tf.Resolve(env, cli.APIURL, cli.UserPool)
	if err != nil {
		t.Fatal(err)
	}
	if got.APIURL != "https://from-flag.example.com" || got.UserPoolID != "us-east-1_Var" || got.Region != "eu-west-1" || got.Local {
		t.Errorf("resolved %+v", got)
	}
	if fs.Lookup("policy-table") != nil || fs.Lookup("revoker-function") != nil {
		t.Error("flags registered for parts the command does not use")
	}
	_, err = tf.Resolve(env, cli.APIURL, cli.PolicyTable)
	if cli.ExitCode(err) != exitcode.Usage || !strings.Contains(cli.Message(err), "CREDBROKER_* variables for policyTable") {
		t.Errorf("a missing part: %v", err)
	}
}

// Writers sharing stderr through a LockedWriter never interleave a line.
func TestALockedWriterKeepsEachWriteWhole(t *testing.T) {
	var b strings.Builder
	w := &cli.LockedWriter{W: &b}
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 100 {
				_, _ = io.WriteString(w, "0123456789\n")
			}
		}()
	}
	for range 4 {
		<-done
	}
	for _, line := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		if line != "0123456789" {
			t.Fatalf("a torn line: %q", line)
		}
	}
}
