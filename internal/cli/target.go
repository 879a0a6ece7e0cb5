package cli

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/credbroker/credbroker/internal/awsconfig"
	"github.com/credbroker/credbroker/internal/envconf"
	"github.com/credbroker/credbroker/internal/stackfile"
)

// Part is a part of a stack a command may need, named as stack.json names
// it.
type Part string

// The parts of a stack.
const (
	APIURL          Part = "apiUrl"
	MembershipTable Part = "membershipTable"
	PolicyTable     Part = "policyTable"
	EventBus        Part = "eventBusName"
	UserPool        Part = "userPoolId"
	Client          Part = "userPoolClientId"
	BaseRole        Part = "baseRoleArn"
	Revoker         Part = "revokerFunction"
)

// part is how a deployed stack names a Part: a flag, a variable, the
// stack's output that gives it.
type part struct {
	Part
	flag, variable, usage, output string
	field                         func(*stackfile.Stack) *string
}

var parts = []part{
	{APIURL, "api-url", "CREDBROKER_API_URL", "the credential endpoint's base URL", "the HTTP API's URL (ApiUrl output)",
		func(s *stackfile.Stack) *string { return &s.APIURL }},
	{MembershipTable, "membership-table", "CREDBROKER_MEMBERSHIP_TABLE", "the membership table's name", "(MembershipTableName output)",
		func(s *stackfile.Stack) *string { return &s.MembershipTable }},
	{PolicyTable, "policy-table", "CREDBROKER_POLICY_TABLE", "the policy table's name", "(PolicyTableName output)",
		func(s *stackfile.Stack) *string { return &s.PolicyTable }},
	{EventBus, "event-bus", "CREDBROKER_EVENT_BUS", "the audit bus's name", "(AuditBusName output)",
		func(s *stackfile.Stack) *string { return &s.EventBusName }},
	{UserPool, "user-pool-id", "CREDBROKER_USER_POOL_ID", "the Cognito user pool's id", "(UserPoolId output)",
		func(s *stackfile.Stack) *string { return &s.UserPoolID }},
	{Client, "client-id", "CREDBROKER_CLIENT_ID", "the Cognito app client's id", "(UserPoolClientId output)",
		func(s *stackfile.Stack) *string { return &s.UserPoolClientID }},
	{BaseRole, "base-role-arn", "CREDBROKER_BASE_ROLE_ARN", "the base role's ARN", "(BaseRoleArn output)",
		func(s *stackfile.Stack) *string { return &s.BaseRoleARN }},
	{Revoker, "revoker-function", "CREDBROKER_REVOKER_FUNCTION", "the revoker function's name or ARN", "(RevokerFunctionName output)",
		func(s *stackfile.Stack) *string { return &s.RevokerFunction }},
}

// RegionVariable names a deployed stack's region.
const RegionVariable = "CREDBROKER_REGION"

// TargetHelp documents how every command finds the stack it works on.
var TargetHelp = func() string {
	var b strings.Builder
	b.WriteString(`Which stack: --stack FILE reads a local stack's .local/stack.json (written by
make run). For a deployed stack, name its parts with flags or variables, and
use your usual AWS credentials (profile, environment, SSO):
`)
	fmt.Fprintf(&b, "  %-18s %-28s %s\n", "--region", RegionVariable, "(default: the AWS SDK's region)")
	for _, p := range parts {
		fmt.Fprintf(&b, "  %-18s %-28s %s\n", "--"+p.flag, p.variable, p.output)
	}
	b.WriteString(`A command has flags for, and asks for, only the parts it uses. The user
commands (login, credential-process, env, grants) use --api-url,
--user-pool-id and --client-id, and no AWS credentials; they keep the tokens
and cached credentials, readable by the user only, in the user's
configuration directory (credbroker/ in $XDG_CONFIG_HOME or ~/.config on
Linux), one set of files per user pool and app client. admin revoke uses
--region and --revoker-function only: it invokes the revoker
(lambda:InvokeFunction), whose clock sets the cutoff. admin teardown uses
--base-role-arn only: it calls IAM on the base role and its deny-list pages.
`)
	return b.String()
}()

// Target is the stack a command works on, as stack.json describes one.
type Target struct {
	stackfile.Stack
	// Local is set for a local stack: moto on loopback, static keys.
	Local bool
}

// TargetFlags are the flags that name a stack.
type TargetFlags struct {
	// Stack is --stack: a local stack's stack file.
	Stack  string
	region string
	values map[Part]*string
}

// AddTargetFlags registers --stack, --region and the flags of the parts
// the command uses: its -h lists no other.
func AddTargetFlags(fs *flag.FlagSet, uses ...Part) *TargetFlags {
	t := &TargetFlags{values: map[Part]*string{}}
	fs.StringVar(&t.Stack, "stack", "", "a local stack's stack.json (e.g. .local/stack.json)")
	fs.StringVar(&t.region, "region", "", "AWS region of a deployed stack")
	for _, p := range parts {
		for _, u := range uses {
			if u == p.Part {
				t.values[p.Part] = fs.String(p.flag, "", p.usage)
			}
		}
	}
	return t
}

// Resolve returns the stack: from the stack file, or from the flags and
// CREDBROKER_* variables; need names the parts the command cannot do
// without. env keeps it for the next steps of the command's AWS errors
// (ExplainAWS).
func (t *TargetFlags) Resolve(env *Env, need ...Part) (Target, error) {
	if t.Stack != "" {
		st, err := stackfile.Load(t.Stack)
		if err != nil {
			return Target{}, Usagef("%s", Message(err))
		}
		// Fields a stack file may lack: one written by an older stack.
		if missing := missingParts(st, need); len(missing) > 0 {
			return Target{}, Usagef("%s lacks %s: restart the local stack (`make run`) to rewrite it", t.Stack, strings.Join(missing, ", "))
		}
		env.target = &Target{Stack: st, Local: true}
		return *env.target, nil
	}
	r := envconf.New(env.Getenv)
	st := stackfile.Stack{Region: cmp.Or(t.region, r.String(RegionVariable, ""))}
	for _, p := range parts {
		flagValue := ""
		if v := t.values[p.Part]; v != nil {
			flagValue = strings.TrimSpace(*v)
		}
		*p.field(&st) = cmp.Or(flagValue, r.String(p.variable, ""))
	}
	if missing := missingParts(st, need); len(missing) > 0 {
		return Target{}, Usagef("no stack named: pass --stack .local/stack.json, or the flags or CREDBROKER_* variables for %s (see `credbroker help`)", strings.Join(missing, ", "))
	}
	env.target = &Target{Stack: st}
	return *env.target, nil
}

// Where is how a command line names the target again: " --stack FILE"
// for a local stack, "" for a deployed one.
func (t *TargetFlags) Where() string {
	if t.Stack == "" {
		return ""
	}
	return " --stack " + t.Stack
}

// missingParts returns the parts among need that st lacks.
func missingParts(st stackfile.Stack, need []Part) []string {
	var missing []string
	for _, n := range need {
		for _, p := range parts {
			if p.Part == n && *p.field(&st) == "" {
				missing = append(missing, string(n))
			}
		}
	}
	return missing
}

// AWS returns the SDK configuration for the target: moto's for a local
// stack, the caller's own credentials and region otherwise.
func (t Target) AWS(ctx context.Context) (aws.Config, error) {
	if t.Local {
		return awsconfig.Local(t.Region, t.AWSEndpoint), nil
	}
	cfg, err := awsconfig.Load(ctx)
	if err != nil {
		return aws.Config{}, fmt.Errorf("%w; check AWS_PROFILE and the AWS config files (`aws configure list-profiles` lists the profiles)", err)
	}
	if t.Region != "" {
		cfg.Region = t.Region
	}
	return cfg, nil
}
