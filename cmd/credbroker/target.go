package main

import (
	"context"
	"flag"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/credbroker/credbroker/internal/awsconfig"
	"github.com/credbroker/credbroker/internal/stackfile"
)

// targetHelp documents how every command finds the stack it works on.
const targetHelp = `Which stack: --stack FILE reads a local stack's .local/stack.json (written by
make run). For a deployed stack, name its parts with flags or variables, and
use your usual AWS credentials (profile, environment, SSO):
  --region           CREDBROKER_REGION            (default: the AWS SDK's region)
  --api-url          CREDBROKER_API_URL           the HTTP API's URL (ApiUrl output)
  --membership-table CREDBROKER_MEMBERSHIP_TABLE  (MembershipTableName output)
  --policy-table     CREDBROKER_POLICY_TABLE      (PolicyTableName output)
  --event-bus        CREDBROKER_EVENT_BUS         (AuditBusName output)
  --user-pool-id     CREDBROKER_USER_POOL_ID      (UserPoolId output)
  --client-id        CREDBROKER_CLIENT_ID         (UserPoolClientId output)
  --base-role-arn    CREDBROKER_BASE_ROLE_ARN     (BaseRoleArn output)
  --revoker-function CREDBROKER_REVOKER_FUNCTION  (RevokerFunctionName output)
A command asks only for the parts it uses. The user commands (login,
credential-process, env) use --api-url, --user-pool-id and --client-id, and
no AWS credentials; they keep the tokens and cached credentials, readable by
the user only, in the user's configuration directory (credbroker/ in
$XDG_CONFIG_HOME or ~/.config on Linux), one set of files per user pool and
app client. admin revoke uses --region and --revoker-function only: it
invokes the revoker (lambda:InvokeFunction), whose clock sets the cutoff.
`

// target is the stack a command works on, as stack.json describes one.
type target struct {
	stackfile.Stack
	// local is set for a local stack: moto on loopback, static keys.
	local bool
}

// targetFlags registers the flags that name a stack.
type targetFlags struct {
	stack                                                                    string
	region, apiURL, membership, policy, bus, pool, client, baseRole, revoker string
}

func addTargetFlags(fs *flag.FlagSet) *targetFlags {
	t := &targetFlags{}
	fs.StringVar(&t.stack, "stack", "", "a local stack's stack.json (e.g. .local/stack.json)")
	fs.StringVar(&t.region, "region", "", "AWS region of a deployed stack")
	fs.StringVar(&t.apiURL, "api-url", "", "the credential endpoint's base URL")
	fs.StringVar(&t.membership, "membership-table", "", "the membership table's name")
	fs.StringVar(&t.policy, "policy-table", "", "the policy table's name")
	fs.StringVar(&t.bus, "event-bus", "", "the audit bus's name")
	fs.StringVar(&t.pool, "user-pool-id", "", "the Cognito user pool's id")
	fs.StringVar(&t.client, "client-id", "", "the Cognito app client's id")
	fs.StringVar(&t.baseRole, "base-role-arn", "", "the base role's ARN")
	fs.StringVar(&t.revoker, "revoker-function", "", "the revoker function's name or ARN")
	return t
}

// resolve returns the stack: from the stack file, or from flags and
// CREDBROKER_* variables; need names the stack.json fields the command
// cannot do without ("apiUrl", "membershipTable", ...).
func (t *targetFlags) resolve(env *cmdEnv, need ...string) (target, error) {
	if t.stack != "" {
		st, err := stackfile.Load(t.stack)
		if err != nil {
			return target{}, usagef("%s", message(err))
		}
		// Fields a stack file may lack: one written by an older stack.
		if missing := missingParts(st, need); len(missing) > 0 {
			return target{}, usagef("%s lacks %s: restart the local stack (`make run`) to rewrite it", t.stack, strings.Join(missing, ", "))
		}
		return target{Stack: st, local: true}, nil
	}
	pick := func(flagValue, variable string) string {
		if flagValue != "" {
			return flagValue
		}
		return strings.TrimSpace(env.Getenv(variable))
	}
	st := stackfile.Stack{
		Region:           pick(t.region, "CREDBROKER_REGION"),
		APIURL:           pick(t.apiURL, "CREDBROKER_API_URL"),
		MembershipTable:  pick(t.membership, "CREDBROKER_MEMBERSHIP_TABLE"),
		PolicyTable:      pick(t.policy, "CREDBROKER_POLICY_TABLE"),
		EventBusName:     pick(t.bus, "CREDBROKER_EVENT_BUS"),
		UserPoolID:       pick(t.pool, "CREDBROKER_USER_POOL_ID"),
		UserPoolClientID: pick(t.client, "CREDBROKER_CLIENT_ID"),
		BaseRoleARN:      pick(t.baseRole, "CREDBROKER_BASE_ROLE_ARN"),
		RevokerFunction:  pick(t.revoker, "CREDBROKER_REVOKER_FUNCTION"),
	}
	if missing := missingParts(st, need); len(missing) > 0 {
		return target{}, usagef("no stack named: pass --stack .local/stack.json, or the flags or CREDBROKER_* variables for %s (see `credbroker help`)", strings.Join(missing, ", "))
	}
	return target{Stack: st}, nil
}

// missingParts returns the stack.json fields among need that st lacks.
func missingParts(st stackfile.Stack, need []string) []string {
	have := map[string]string{
		"apiUrl": st.APIURL, "membershipTable": st.MembershipTable, "policyTable": st.PolicyTable,
		"eventBusName": st.EventBusName, "userPoolId": st.UserPoolID, "userPoolClientId": st.UserPoolClientID,
		"baseRoleArn": st.BaseRoleARN, "revokerFunction": st.RevokerFunction,
	}
	var missing []string
	for _, n := range need {
		if have[n] == "" {
			missing = append(missing, n)
		}
	}
	return missing
}

// aws returns the SDK configuration for the target: moto's for a local
// stack, the caller's own credentials and region otherwise.
func (t target) aws(ctx context.Context) (aws.Config, error) {
	if t.local {
		return awsconfig.Local(t.Region, t.AWSEndpoint), nil
	}
	cfg, err := awsconfig.Load(ctx)
	if err != nil {
		return aws.Config{}, err
	}
	if t.Region != "" {
		cfg.Region = t.Region
	}
	return cfg, nil
}

// lambda returns a Lambda client for the target: the local stack's Lambda
// API, or AWS's.
func (t target) lambda(ctx context.Context, optFns ...func(*lambda.Options)) (*lambda.Client, error) {
	cfg, err := t.aws(ctx)
	if err != nil {
		return nil, err
	}
	return lambda.NewFromConfig(cfg, append([]func(*lambda.Options){func(o *lambda.Options) {
		if t.local && t.LambdaEndpoint != "" {
			o.BaseEndpoint = aws.String(t.LambdaEndpoint)
		}
	}}, optFns...)...), nil
}
