package admin

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/cli"
	"github.com/credbroker/credbroker/internal/exitcode"
	"github.com/credbroker/credbroker/internal/stackfile"
	"github.com/credbroker/credbroker/internal/userpool"
)

// fakeDirectory stands in for the user pool, for the faults moto cannot
// serve (a pool the caller may not read).
type fakeDirectory struct {
	people func() (map[string]userpool.Person, error)
	calls  int
}

func (f *fakeDirectory) SubOf(context.Context, string) (string, error) { panic("not called") }
func (f *fakeDirectory) People(context.Context) (map[string]userpool.Person, error) {
	f.calls++
	return f.people()
}

// The listings name the people when the pool can say who a sub is, and
// list subs alone, with a line on stderr saying why, when it cannot.
func TestListingsNameThePeopleWhenThePoolSays(t *testing.T) {
	ana := map[string]userpool.Person{"sub-1": {Username: "ana", Email: "ana@example.com"}}
	tests := []struct {
		name   string
		pool   string
		names  bool
		people func() (map[string]userpool.Person, error)
		want   map[string]userpool.Person
		stderr string
		calls  int
	}{
		{"a pool that answers names everyone", "us-east-1_P", true, func() (map[string]userpool.Person, error) { return ana, nil }, ana, "", 1},
		{"a pool that cannot be read leaves the subs alone, and says so", "us-east-1_P", true,
			func() (map[string]userpool.Person, error) {
				return nil, errors.New("AccessDeniedException: cognito-idp:ListUsers")
			},
			nil, "warning: user pool us-east-1_P cannot be read (AccessDeniedException: cognito-idp:ListUsers): users are shown by sub alone", 1},
		{"no pool named leaves the subs alone, and says so", "", true, nil, nil, "note: no user pool named", 0},
		{"--names=false asks nothing", "us-east-1_P", false, nil, nil, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := &fakeDirectory{people: tt.people}
			a := &admin{target: cli.Target{Stack: stackfile.Stack{UserPoolID: tt.pool}}, users: dir}
			var stderr bytes.Buffer
			got := (&nameFlags{names: tt.names}).people(t.Context(), &cli.Env{Stderr: &stderr}, a)
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("people (-want +got):\n%s", d)
			}
			if tt.stderr == "" && stderr.Len() > 0 || !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q, want %q", stderr.String(), tt.stderr)
			}
			if dir.calls != tt.calls {
				t.Errorf("%d ListUsers pages asked for, want %d", dir.calls, tt.calls)
			}
		})
	}
}

func TestANameCellSaysWhatThePoolKnows(t *testing.T) {
	for _, tt := range []struct {
		p    userpool.Person
		want string
	}{
		{userpool.Person{}, "-"},
		{userpool.Person{Username: "ana"}, "ana"},
		{userpool.Person{Username: "ana", Email: "ana@example.com"}, "ana <ana@example.com>"},
		{userpool.Person{Username: "ana@example.com", Email: "ana@example.com"}, "ana@example.com"},
		{userpool.Person{Email: "ana@example.com"}, "ana@example.com"},
	} {
		if got := nameCell(tt.p); got != tt.want {
			t.Errorf("nameCell(%+v) = %q, want %q", tt.p, got, tt.want)
		}
	}
}

// The operators' verify, rebuild and replay print their usage on --help
// and exit 0, as `credbroker admin` alone lists the operators' commands.
func TestAdminHelpExits0(t *testing.T) {
	for _, tt := range []struct {
		args         []string
		says, hasnot []string
	}{
		{[]string{"admin", "verify", "--help"}, []string{"usage: credbroker admin verify", "exit status: 0", "-segments", "-stack"}, []string{"-since", "-expiry-schedule-group"}},
		{[]string{"admin", "rebuild", "--help"}, []string{"usage: credbroker admin rebuild", "-concurrency", "-expiry-schedule-group"}, []string{"-since"}},
		{[]string{"admin", "replay", "-h"}, []string{"usage: credbroker admin replay", "-since"}, nil},
		{[]string{"admin", "rejected", "delete", "-h"}, []string{"-pk", "-sk", "-dry-run"}, nil},
	} {
		code, out, errOut := runCLI(t, nil, tt.args...)
		if code != exitcode.OK || out != "" {
			t.Errorf("%v: exit %d, stdout %q", tt.args, code, out)
		}
		for _, s := range tt.says {
			if !strings.Contains(strings.ToLower(errOut), strings.ToLower(s)) {
				t.Errorf("%v does not say %q:\n%s", tt.args, s, errOut)
			}
		}
		for _, s := range tt.hasnot {
			if strings.Contains(errOut, s) {
				t.Errorf("%v lists %q:\n%s", tt.args, s, errOut)
			}
		}
	}
	for _, args := range [][]string{{"admin"}, {"admin", "-h"}, {"admin", "--help"}} {
		code, out, _ := runCLI(t, nil, args...)
		if code != exitcode.OK || !strings.Contains(out, "usage: credbroker admin <command>") || !strings.Contains(out, "admin verify") || strings.Contains(out, "  login ") {
			t.Errorf("%v: exit %d, stdout %q", args, code, out)
		}
	}
}
