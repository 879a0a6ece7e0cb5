package admin

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/cli"
	"github.com/credbroker/credbroker/internal/exitcode"
	"github.com/credbroker/credbroker/internal/samtemplate"
)

// fakeLambdaSettings is Lambda's account API as the test says it is.
type fakeLambdaSettings struct {
	accountSettings     func() (*lambda.GetAccountSettingsOutput, error)
	functionConcurrency func(name string) (*lambda.GetFunctionConcurrencyOutput, error)
}

func (f fakeLambdaSettings) GetAccountSettings(context.Context, *lambda.GetAccountSettingsInput, ...func(*lambda.Options)) (*lambda.GetAccountSettingsOutput, error) {
	return f.accountSettings()
}

func (f fakeLambdaSettings) GetFunctionConcurrency(_ context.Context, in *lambda.GetFunctionConcurrencyInput, _ ...func(*lambda.Options)) (*lambda.GetFunctionConcurrencyOutput, error) {
	return f.functionConcurrency(aws.ToString(in.FunctionName))
}

// account answers GetAccountSettings with limit and unreserved, and
// GetFunctionConcurrency with the credential function's reservation
// ("credentials"; any other name does not exist).
func account(limit, unreserved, reserved int32) fakeLambdaSettings {
	return fakeLambdaSettings{
		accountSettings: func() (*lambda.GetAccountSettingsOutput, error) {
			return &lambda.GetAccountSettingsOutput{AccountLimit: &lambdatypes.AccountLimit{
				ConcurrentExecutions: limit, UnreservedConcurrentExecutions: aws.Int32(unreserved)}}, nil
		},
		functionConcurrency: func(name string) (*lambda.GetFunctionConcurrencyOutput, error) {
			if name != "credentials" {
				return nil, &lambdatypes.ResourceNotFoundException{Message: aws.String("Function not found")}
			}
			return &lambda.GetFunctionConcurrencyOutput{ReservedConcurrentExecutions: aws.Int32(reserved)}, nil
		},
	}
}

func TestPreflightStopsWhereAParameterCannotFit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		api      fakeLambdaSettings
		function string
		args     []string
		// wantProblems: a piece of each problem reported, in order; none
		// means the parameters fit.
		wantProblems []string
	}{
		{name: "the defaults fit an account of 1,000", api: account(1000, 1000, 0)},
		{name: "the defaults do not fit a new account of 10", api: account(10, 10, 0),
			wantProblems: []string{"unreserved concurrency after the deploy, 10, is less than the stack runs at once: 13 (5 for the projector, the revoker and the replay, and 8 for the credential function at ApiThrottlingRateLimit=100 (80ms per request)); Lambda would throttle the functions; set ApiThrottlingRateLimit=62 or less"}},
		{name: "a lower rate fits a new account of 10", api: account(10, 10, 0), args: []string{"ApiThrottlingRateLimit=50"}},
		{name: "no reservation fits a new account of 10", api: account(10, 10, 0), args: []string{"CredentialsReservedConcurrency=8"},
			wantProblems: []string{"CredentialsReservedConcurrency=8 cannot be reserved: 10 of the account's concurrency is unreserved and Lambda keeps 100 unreserved, so the deploy would fail; no reservation fits: set CredentialsReservedConcurrency=0",
				"unreserved concurrency after the deploy, 2, is less than the stack runs at once: 5"}},
		{name: "a reservation leaving fewer than 100 unreserved is refused", api: account(1000, 1000, 0), args: []string{"CredentialsReservedConcurrency=950"},
			wantProblems: []string{"CredentialsReservedConcurrency=950 cannot be reserved: 1000 of the account's concurrency is unreserved and Lambda keeps 100 unreserved, so the deploy would fail; set CredentialsReservedConcurrency=900 at most (or 0)"}},
		{name: "a reservation other functions left no room for is refused", api: account(1000, 150, 0), args: []string{"CredentialsReservedConcurrency=100"},
			wantProblems: []string{"CredentialsReservedConcurrency=100 cannot be reserved: 150 of the account's concurrency is unreserved"}},
		{name: "a redeploy gets its own reservation back", api: account(1000, 150, 100), function: "credentials", args: []string{"CredentialsReservedConcurrency=150"}},
		{name: "a first deploy of a named function counts no reservation", api: account(1000, 150, 100), function: "not-yet", args: []string{"CredentialsReservedConcurrency=100"},
			wantProblems: []string{"CredentialsReservedConcurrency=100 cannot be reserved: 150 of the account's concurrency is unreserved"}},
		{name: "a reservation below the stage's rate is refused", api: account(1000, 1000, 0), args: []string{"CredentialsReservedConcurrency=4"},
			wantProblems: []string{"CredentialsReservedConcurrency=4 serves about 50 requests per second (80ms each), fewer than ApiThrottlingRateLimit=100 lets in: Lambda would throttle them; set CredentialsReservedConcurrency=8 or more, or ApiThrottlingRateLimit=50 or less"}},
		{name: "a reservation that serves the stage's rate fits", api: account(1000, 1000, 0),
			args: []string{"CredentialsReservedConcurrency=16", "ApiThrottlingRateLimit=200", "AllowedBuckets=acme-*"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parseDeployParams(tc.args)
			if err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			err = preflight(t.Context(), &cli.Env{Stdout: &stdout, Stderr: &stderr}, tc.api, tc.function, p)
			var got []string
			for line := range strings.Lines(stderr.String()) {
				got = append(got, strings.TrimSpace(line))
			}
			if len(got) != len(tc.wantProblems) {
				t.Fatalf("problems:\n%s\nwant %d", stderr.String(), len(tc.wantProblems))
			}
			for i, want := range tc.wantProblems {
				if !strings.Contains(got[i], want) {
					t.Errorf("problem %d:\n%s\nwant it to contain\n%s", i+1, got[i], want)
				}
			}
			switch {
			case len(tc.wantProblems) == 0 && (err != nil || !strings.Contains(stdout.String(), "fits:")):
				t.Errorf("err = %v, stdout %q; want the parameters to fit", err, stdout.String())
			case len(tc.wantProblems) > 0 && broker.KindOf(err) != broker.Invalid:
				t.Errorf("err = %v, want an Invalid error (exit status 2)", err)
			}
		})
	}
}

func TestPreflightFailsWhenLambdaCannotBeRead(t *testing.T) {
	api := account(1000, 1000, 0)
	api.accountSettings = func() (*lambda.GetAccountSettingsOutput, error) {
		return nil, errors.New("AccessDeniedException: not authorized to perform lambda:GetAccountSettings")
	}
	var stdout, stderr bytes.Buffer
	err := preflight(t.Context(), &cli.Env{Stdout: &stdout, Stderr: &stderr}, api, "", defaultDeployParams)
	if err == nil || !strings.Contains(err.Error(), "lambda:GetAccountSettings") {
		t.Errorf("err = %v, want the failed call named", err)
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout %q, want nothing claimed to fit", stdout.String())
	}
}

func TestPreflightRefusesMalformedParameters(t *testing.T) {
	for _, args := range [][]string{
		{"CredentialsReservedConcurrency"},
		{"CredentialsReservedConcurrency=-1"},
		{"ApiThrottlingRateLimit=fast"},
		{"ParameterKey=CredentialsReservedConcurrency,ParameterValue=5000"},
	} {
		if _, err := parseDeployParams(args); exitcode.Of(err) != exitcode.Usage {
			t.Errorf("%v: err = %v, want a usage error", args, err)
		}
	}
}

// The preflight assumes the template's defaults for what is not given.
func TestPreflightDefaultsAreTheTemplates(t *testing.T) {
	tpl, err := samtemplate.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	params := tpl.Section("Parameters")
	def := func(name string) any { m, _ := params[name].(map[string]any); return m["Default"] }
	got := map[string]any{"CredentialsReservedConcurrency": defaultDeployParams.reserved, "ApiThrottlingRateLimit": defaultDeployParams.apiRate}
	want := map[string]any{"CredentialsReservedConcurrency": def("CredentialsReservedConcurrency"), "ApiThrottlingRateLimit": def("ApiThrottlingRateLimit")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("preflight defaults differ from template.yaml's (-template +preflight):\n%s", diff)
	}
}
