package admin

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/cli"
)

func init() {
	register(cli.Command{
		Path:    "admin preflight",
		Summary: "before a deploy: check that the stack's concurrency parameters fit the account's Lambda concurrency (docs/operations.md \"The preflight\")",
		Run:     adminPreflight,
	})
}

// A template cannot read the account's Lambda concurrency, and a new
// account may have as little as 10: a reservation that does not fit fails
// the deploy, a pool too small for the stack throttles it. The preflight
// reads lambda:GetAccountSettings and says which parameter cannot fit.

// deployParams are the template parameters the preflight checks, as
// `sam deploy --parameter-overrides` gives them; unset ones keep the
// template's defaults (TestPreflightDefaultsAreTheTemplates).
type deployParams struct {
	reserved int // CredentialsReservedConcurrency
	apiRate  int // ApiThrottlingRateLimit
}

var defaultDeployParams = deployParams{reserved: 0, apiRate: 100}

const (
	// Lambda refuses a reservation that leaves fewer than 100 unreserved
	// (PutFunctionConcurrency).
	minUnreserved = 100
	// A credential answer that mints (AssumeRole, PutEvents), docs/benchmarks.md
	// "Capacity on AWS (on paper)": the credential function needs rate × this
	// at once.
	missDuration = 80 * time.Millisecond
	// What the other functions run at once: the projector one per stream
	// shard (ParallelizationFactor 1, counted as one), the revoker two
	// batches (its queue's MaximumConcurrency) and a prune or an operator's
	// revoke, the replay one.
	otherFunctionsConcurrency = 1 + 3 + 1
)

// parseDeployParams reads Key=Value arguments (sam's
// --parameter-overrides form); keys the preflight does not check are
// accepted and ignored, so the deploy's own overrides can be passed as is.
func parseDeployParams(args []string) (deployParams, error) {
	p := defaultDeployParams
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			return p, cli.Usagef("%q is not Key=Value (sam's --parameter-overrides form)", a)
		}
		var field *int
		switch k {
		case "ParameterKey": // the long form would hide the values from the checks
			return p, cli.Usagef("%q: give the overrides as Key=Value", a)
		case "CredentialsReservedConcurrency":
			field = &p.reserved
		case "ApiThrottlingRateLimit":
			field = &p.apiRate
		default:
			continue
		}
		n, err := strconv.Atoi(strings.Trim(v, `"'`))
		if err != nil || n < 0 {
			return p, cli.Usagef("%s=%s: want a whole number, 0 or more", k, v)
		}
		*field = n
	}
	return p, nil
}

// accountConcurrency is what GetAccountSettings says, plus what the
// credential function reserves already (a redeploy gives it back).
type accountConcurrency struct {
	limit, unreserved, currentReservation int
}

// concurrencyProblems lists, in an operator's words, each parameter that
// cannot fit the account.
func concurrencyProblems(a accountConcurrency, p deployParams) []string {
	var problems []string
	raise := fmt.Sprintf(`raise "Concurrent executions" (Service Quotas, AWS Lambda; the account has %d)`, a.limit)
	available := a.unreserved + a.currentReservation // unreserved if the function reserved nothing
	credentialsNeed := int((time.Duration(p.apiRate)*missDuration + time.Second - 1) / time.Second)
	if p.reserved > 0 && p.reserved > available-minUnreserved {
		fits := "no reservation fits: set CredentialsReservedConcurrency=0"
		if available > minUnreserved {
			fits = fmt.Sprintf("set CredentialsReservedConcurrency=%d at most (or 0)", available-minUnreserved)
		}
		problems = append(problems, fmt.Sprintf("CredentialsReservedConcurrency=%d cannot be reserved: %d of the account's concurrency is unreserved and Lambda keeps %d unreserved, so the deploy would fail; %s, or %s",
			p.reserved, available, minUnreserved, fits, raise))
	}
	if p.reserved > 0 && p.reserved < credentialsNeed {
		problems = append(problems, fmt.Sprintf("CredentialsReservedConcurrency=%d serves about %d requests per second (%v each), fewer than ApiThrottlingRateLimit=%d lets in: Lambda would throttle them; set CredentialsReservedConcurrency=%d or more, or ApiThrottlingRateLimit=%d or less",
			p.reserved, int(time.Duration(p.reserved)*time.Second/missDuration), missDuration, p.apiRate, credentialsNeed, int(time.Duration(p.reserved)*time.Second/missDuration)))
	}
	pool, need, what := available-p.reserved, otherFunctionsConcurrency, "the projector, the revoker and the replay"
	if p.reserved == 0 {
		need += credentialsNeed
		what += fmt.Sprintf(", and %d for the credential function at ApiThrottlingRateLimit=%d (%v per request)", credentialsNeed, p.apiRate, missDuration)
	}
	if pool < need {
		fix := raise
		if p.reserved == 0 && pool > otherFunctionsConcurrency {
			fix = fmt.Sprintf("set ApiThrottlingRateLimit=%d or less, or %s", int(time.Duration(pool-otherFunctionsConcurrency)*time.Second/missDuration), raise)
		}
		problems = append(problems, fmt.Sprintf("the account's unreserved concurrency after the deploy, %d, is less than the stack runs at once: %d (%d for %s); Lambda would throttle the functions; %s",
			pool, need, otherFunctionsConcurrency, what, fix))
	}
	return problems
}

// lambdaSettings is what the preflight calls of Lambda.
type lambdaSettings interface {
	GetAccountSettings(ctx context.Context, in *lambda.GetAccountSettingsInput, optFns ...func(*lambda.Options)) (*lambda.GetAccountSettingsOutput, error)
	GetFunctionConcurrency(ctx context.Context, in *lambda.GetFunctionConcurrencyInput, optFns ...func(*lambda.Options)) (*lambda.GetFunctionConcurrencyOutput, error)
}

// readAccountConcurrency reads the account's limits and, when function is
// named (a redeploy), its current reservation.
func readAccountConcurrency(ctx context.Context, api lambdaSettings, function string) (accountConcurrency, error) {
	out, err := api.GetAccountSettings(ctx, &lambda.GetAccountSettingsInput{})
	if err != nil {
		return accountConcurrency{}, broker.Wrap(broker.Transient, "lambda:GetAccountSettings", err)
	}
	if out.AccountLimit == nil {
		return accountConcurrency{}, broker.Errorf(broker.Internal, "lambda:GetAccountSettings", "the answer has no AccountLimit")
	}
	a := accountConcurrency{limit: int(out.AccountLimit.ConcurrentExecutions), unreserved: int(aws.ToInt32(out.AccountLimit.UnreservedConcurrentExecutions))}
	if function == "" {
		return a, nil
	}
	fc, err := api.GetFunctionConcurrency(ctx, &lambda.GetFunctionConcurrencyInput{FunctionName: aws.String(function)})
	var nf *lambdatypes.ResourceNotFoundException
	switch {
	case errors.As(err, &nf):
		return a, nil // a first deploy: nothing reserved yet
	case err != nil:
		return a, broker.Wrap(broker.Transient, "lambda:GetFunctionConcurrency", err)
	}
	a.currentReservation = int(aws.ToInt32(fc.ReservedConcurrentExecutions))
	return a, nil
}

// preflight prints what it read and returns an Invalid error (exit 2)
// listing each parameter that cannot fit.
func preflight(ctx context.Context, env *cli.Env, api lambdaSettings, function string, p deployParams) error {
	a, err := readAccountConcurrency(ctx, api, function)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "Lambda concurrency: %d in the account, %d unreserved (%d of it reserved by the credential function now)\n",
		a.limit, a.unreserved+a.currentReservation, a.currentReservation)
	problems := concurrencyProblems(a, p)
	if len(problems) == 0 {
		fmt.Fprintf(env.Stdout, "fits: CredentialsReservedConcurrency=%d, ApiThrottlingRateLimit=%d\n", p.reserved, p.apiRate)
		return nil
	}
	for _, pr := range problems {
		fmt.Fprintln(env.Stderr, "preflight:", pr)
	}
	return broker.Errorf(broker.Invalid, "preflight", "%d parameter problem(s): fix them before deploying (docs/operations.md \"The preflight\")", len(problems))
}

func adminPreflight(ctx context.Context, env *cli.Env, args []string) error {
	fs := cli.NewFlags(env, "admin preflight")
	t := cli.AddTargetFlags(fs)
	function := fs.String("credentials-function", "", "for a redeploy: the credential function's name (CredentialsFunctionName output), whose current reservation the deploy gives back")
	rest, err := cli.ParseWithArgs(fs, args)
	if err != nil {
		return err
	}
	p, err := parseDeployParams(rest)
	if err != nil {
		return err
	}
	tgt, err := t.Resolve(env)
	if err != nil {
		return err
	}
	client, err := lambdaClient(ctx, tgt)
	if err != nil {
		return err
	}
	return preflight(ctx, env, client, *function, p)
}
