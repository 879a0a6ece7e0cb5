package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/credbroker/credbroker/internal/broker"
)

// LocalStackDown is the next step when the local stack does not answer.
const LocalStackDown = "is the local stack running? Start it with `make run`"

// URLCause is what went wrong under a URL error, without Go's wrapping:
// "connect: connection refused", "lookup example.invalid: no such host".
func URLCause(ue *url.Error) string {
	var oe *net.OpError
	if errors.As(ue.Err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return ue.Err.Error()
}

// RunFunc is a command's Run.
type RunFunc = func(ctx context.Context, env *Env, args []string) error

// ExplainAWS wraps run so that AWS failing under it names the next step
// (Target.AWSError) for the stack the command resolved.
func ExplainAWS(run RunFunc) RunFunc {
	return func(ctx context.Context, env *Env, args []string) error {
		err := run(ctx, env, args)
		var t Target
		if env.target != nil {
			t = *env.target
		}
		return t.AWSError(err)
	}
}

// What AWS answers when it refuses the caller's credentials (not
// permissions): unknown, badly signed or expired.
var refusedCodes = map[string]bool{
	"UnrecognizedClientException": true, "InvalidClientTokenId": true,
	"InvalidSignatureException": true, "SignatureDoesNotMatch": true,
	"ExpiredToken": true, "ExpiredTokenException": true,
}

// notFound are the parts a service's ResourceNotFoundException may be
// about.
var notFound = map[string][]Part{
	"DynamoDB":                  {MembershipTable, PolicyTable},
	"Cognito Identity Provider": {UserPool},
	"Lambda":                    {Revoker},
}

// noIdentity is how the SDK's request fails when no credentials could be
// had at all (it has no error type for it; the unit tests pin the words).
const noIdentity = "get identity: "

// AWSError returns err in words that name the next step when AWS failed
// under it, with the kind of the documented exit status: unreachable or
// throttled is Transient (3), a resource the target names but AWS lacks is
// Invalid (2, as a flag naming nothing), credentials missing or refused
// are Internal (3). Any other error is returned as it is.
func (t Target) AWSError(err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	service := "AWS"
	var oe *smithy.OperationError
	if errors.As(err, &oe) {
		service = oe.ServiceID
	}
	code, cause := "", ""
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code, cause = ae.ErrorCode(), ae.ErrorCode()
		if ae.ErrorMessage() != "" {
			cause += ": " + ae.ErrorMessage()
		}
	}
	status := 0
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	_, throttled := retry.DefaultThrottleErrorCodes[code]
	var ue *url.Error
	const op = "aws"
	switch msg := err.Error(); {
	case strings.Contains(msg, noIdentity):
		why := msg[strings.Index(msg, noIdentity)+len(noIdentity):]
		why = strings.TrimPrefix(strings.TrimPrefix(why, "get credentials: "), "failed to refresh cached credentials, ")
		return broker.Errorf(broker.Internal, op, "found no AWS credentials to call %s with (%s); provide them as the AWS CLI finds them "+
			"(AWS_PROFILE, `aws sso login`, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) and check them with `aws sts get-caller-identity`, "+
			"or use the local stack (--stack .local/stack.json)", service, why)
	case code == "ResourceNotFoundException":
		return broker.Errorf(broker.Invalid, op, "%s has no %s (%s); %s", service, t.named(notFound[service]), cause, t.notFoundHint(notFound[service]))
	case refusedCodes[code]:
		return broker.Errorf(broker.Internal, op, "%s refused the AWS credentials (%s); renew them if they expired (`aws sso login`), "+
			"and check which ones the command uses (AWS_PROFILE, AWS_ACCESS_KEY_ID) with `aws sts get-caller-identity`", service, cause)
	case code == "AccessDenied" || code == "AccessDeniedException":
		return broker.Errorf(broker.Internal, op, "%s denied the call (%s); the command needs the permissions docs/operations.md \"Which stack\" lists, "+
			"for the identity `aws sts get-caller-identity` shows (AWS_PROFILE)", service, cause)
	case throttled || status >= 500:
		return broker.Errorf(broker.Transient, op, "%s is throttling or failing the calls (%s), still after the SDK's retries; this passes: run the command again in a minute",
			service, cmp.Or(cause, fmt.Sprintf("HTTP %d", status)))
	case errors.As(err, &ue):
		return broker.Errorf(broker.Transient, op, "cannot reach %s at %s: %s; %s", service, ue.URL, URLCause(ue), t.reachHint())
	}
	return err
}

// reachHint says what to check when AWS cannot be reached.
func (t Target) reachHint() string {
	if t.Local {
		return LocalStackDown
	}
	return "check --region (or " + RegionVariable + ") and the network"
}

// named lists the target's values of ps: `membershipTable "m" or
// policyTable "p"`.
func (t Target) named(ps []Part) string {
	var names []string
	for _, p := range parts {
		if v := *p.field(&t.Stack); v != "" && slices.Contains(ps, p.Part) {
			names = append(names, fmt.Sprintf("%s %q", p.Part, v))
		}
	}
	if len(names) == 0 {
		return "resource the command named"
	}
	return strings.Join(names, " or ")
}

// notFoundHint says how to point the command at the right stack.
func (t Target) notFoundHint(ps []Part) string {
	if t.Local {
		return "is the stack file the running local stack's? `make run` writes it to .local/stack.json"
	}
	var checks []string
	for _, p := range parts {
		if slices.Contains(ps, p.Part) {
			checks = append(checks, fmt.Sprintf("--%s or %s %s", p.flag, p.variable, p.output))
		}
	}
	return "check " + strings.Join(append(checks, "--region or "+RegionVariable), ", ") + " (see `credbroker help`)"
}
