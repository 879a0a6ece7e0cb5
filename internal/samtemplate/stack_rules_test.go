package samtemplate_test

// Rules of the template that depend on its parameters: each renders the
// template for the parameter sets a deployer would use (samtemplate.Stack) and
// checks what CloudFormation would create.

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/credentials"
	"github.com/credbroker/credbroker/internal/emf"
	"github.com/credbroker/credbroker/internal/projector"
	"github.com/credbroker/credbroker/internal/revoker"
	"github.com/credbroker/credbroker/internal/samtemplate"
)

// ---------------------------------------------------------------- IAM

// Actions whose Service Authorization Reference entry lists no resource
// type: they are only granted on Resource "*", so a statement that scopes
// them to an ARN grants nothing.
var starOnlyActions = []string{
	"cloudwatch:PutMetricData", "dynamodb:DescribeEndpoints", "dynamodb:DescribeLimits",
	"dynamodb:ListStreams", "dynamodb:ListTables", "lambda:ListFunctions", "logs:DescribeLogGroups",
	"s3:ListAllMyBuckets", "sqs:ListQueues", "sts:GetCallerIdentity",
	"xray:PutTelemetryRecords", "xray:PutTraceSegments",
}

func checkStarOnlyActions(t *samtemplate.Template) []string {
	stmts, problems := iamStatements(t)
	for _, s := range stmts {
		if s.trust || !s.allow() {
			continue
		}
		for _, a := range s.actions() {
			if !slices.ContainsFunc(starOnlyActions, func(o string) bool { return strings.EqualFold(o, a) }) {
				continue
			}
			for _, res := range s.resources() {
				if res != "*" {
					problems = append(problems, fmt.Sprintf("%s: %s on %v grants nothing (it takes only Resource \"*\"); drop it or grant it on \"*\" if the code calls it", s, a, res))
				}
			}
		}
	}
	return problems
}

// expirySchedules are the schedules of the expiry timers' group.
var expirySchedules = map[string]any{"Fn::Sub": "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/${ExpiryScheduleGroup}/*"}

// Calls the code makes with each role, and on what. A missing one fails at
// run time (or, like DescribeTable for the replay's progress, silently
// degrades).
var requiredPermissions = []struct {
	role, action string
	resource     any
}{
	{"CredentialsFunctionRole", "dynamodb:GetItem", getAtt("PolicyTable", "Arn")},
	{"CredentialsFunctionRole", "events:PutEvents", getAtt("AuditBus", "Arn")},
	// AssumeRole with the user as SourceIdentity and the cutoff tag.
	{"CredentialsFunctionRole", "sts:AssumeRole", getAtt("BaseRole", "Arn")},
	{"CredentialsFunctionRole", "sts:SetSourceIdentity", getAtt("BaseRole", "Arn")},
	{"CredentialsFunctionRole", "sts:TagSession", getAtt("BaseRole", "Arn")},
	{"ProjectorFunctionRole", "dynamodb:GetRecords", getAtt("MembershipTable", "StreamArn")},
	{"ProjectorFunctionRole", "dynamodb:Query", getAtt("MembershipTable", "Arn")},
	{"ProjectorFunctionRole", "dynamodb:UpdateItem", getAtt("PolicyTable", "Arn")},
	{"ProjectorFunctionRole", "sqs:SendMessage", getAtt("ProjectorDLQ", "Arn")},
	// rebuild and verify scan both tables and read both tables' item counts
	// (ddbstore.Tables) for their progress and ETA.
	{"ReplayFunctionRole", "dynamodb:Scan", getAtt("MembershipTable", "Arn")},
	{"ReplayFunctionRole", "dynamodb:Scan", getAtt("PolicyTable", "Arn")},
	{"ReplayFunctionRole", "dynamodb:DescribeTable", getAtt("MembershipTable", "Arn")},
	{"ReplayFunctionRole", "dynamodb:DescribeTable", getAtt("PolicyTable", "Arn")},
	{"ReplayFunctionRole", "dynamodb:GetRecords", getAtt("MembershipTable", "StreamArn")},
	{"ReplayFunctionRole", "events:PutEvents", getAtt("AuditBus", "Arn")},
	{"SchedulerRole", "lambda:InvokeFunction", getAtt("ReplayFunction", "Arn")},
	{"SchedulerRole", "lambda:InvokeFunction", getAtt("RevokerFunction", "Arn")},
	// the revoker: the deny list and users' cutoffs, the base role's
	// inline policies (iamrole), the audit bus, its dead-letter queue.
	{"RevokerFunctionRole", "dynamodb:GetItem", getAtt("PolicyTable", "Arn")},
	{"RevokerFunctionRole", "dynamodb:PutItem", getAtt("PolicyTable", "Arn")},
	{"RevokerFunctionRole", "dynamodb:UpdateItem", getAtt("PolicyTable", "Arn")},
	{"RevokerFunctionRole", "iam:PutRolePolicy", getAtt("BaseRole", "Arn")},
	{"RevokerFunctionRole", "iam:DeleteRolePolicy", getAtt("BaseRole", "Arn")},
	{"RevokerFunctionRole", "iam:GetRolePolicy", getAtt("BaseRole", "Arn")},
	{"RevokerFunctionRole", "iam:ListRolePolicies", getAtt("BaseRole", "Arn")},
	{"RevokerFunctionRole", "iam:ListAttachedRolePolicies", getAtt("BaseRole", "Arn")},
	{"RevokerFunctionRole", "iam:AttachRolePolicy", getAtt("BaseRole", "Arn")},
	{"RevokerFunctionRole", "iam:CreatePolicy", revocationPages},
	{"RevokerFunctionRole", "iam:CreatePolicyVersion", revocationPages},
	{"RevokerFunctionRole", "iam:DeletePolicyVersion", revocationPages},
	{"RevokerFunctionRole", "iam:ListPolicyVersions", revocationPages},
	{"RevokerFunctionRole", "iam:GetPolicy", revocationPages},
	{"RevokerFunctionRole", "iam:GetPolicyVersion", revocationPages},
	{"RevokerFunctionRole", "events:PutEvents", getAtt("AuditBus", "Arn")},
	{"RevokerFunctionRole", "sqs:SendMessage", getAtt("RevokerDLQ", "Arn")},
	{"SchedulerRole", "sqs:SendMessage", getAtt("VerifyScheduleDLQ", "Arn")},
	// membership expiry timers (ebscheduler): armed by the projector and by
	// a rebuild's or replay's recomputes, fired into the projector.
	{"ProjectorFunctionRole", "iam:PassRole", getAtt("ExpirySchedulerRole", "Arn")},
	{"ProjectorFunctionRole", "scheduler:CreateSchedule", expirySchedules},
	{"ReplayFunctionRole", "scheduler:CreateSchedule", expirySchedules},
	{"ReplayFunctionRole", "iam:PassRole", getAtt("ExpirySchedulerRole", "Arn")},
	{"ExpirySchedulerRole", "lambda:InvokeFunction", getAtt("ProjectorFunction", "Arn")},
	{"ExpirySchedulerRole", "sqs:SendMessage", getAtt("ProjectorDLQ", "Arn")},
}

// revocationPages are the deny list's managed policies (iamrole).
var revocationPages = map[string]any{"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/credbroker/${BaseRole}-revocations-*"}

func checkRequiredPermissions(t *samtemplate.Template) []string {
	stmts, problems := iamStatements(t)
	for _, p := range requiredPermissions {
		if !slices.ContainsFunc(stmts, func(s statement) bool {
			return s.role == p.role && !s.trust && s.allow() && slices.Contains(s.actions(), p.action) &&
				slices.ContainsFunc(s.resources(), func(r any) bool { return cmp.Equal(r, p.resource) })
		}) {
			problems = append(problems, fmt.Sprintf("%s cannot call %s on %v", p.role, p.action, p.resource))
		}
	}
	return problems
}

// ---------------------------------------------------------------- logs

// Lambda drops JSON lines below ApplicationLogLevel and takes a line without
// a "level" key (every EMF metric line) for INFO: only TRACE lets every line
// through, and the functions filter their own logs at CREDBROKER_LOG_LEVEL.
func checkLogging(t *samtemplate.Template) []string {
	var problems []string
	for _, id := range slices.Sorted(maps.Keys(functionDirs)) {
		fn, err := t.Function(id)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		lc := mapOf(fn.Properties["LoggingConfig"])
		want := map[string]any{"LogFormat": "JSON", "ApplicationLogLevel": "TRACE", "SystemLogLevel": "INFO"}
		for _, k := range slices.Sorted(maps.Keys(want)) {
			if lc[k] != want[k] {
				problems = append(problems, fmt.Sprintf("%s: LoggingConfig.%s is %v, want %v", id, k, lc[k], want[k]))
			}
		}
		level := mapOf(mapOf(fn.Properties["Environment"])["Variables"])["CREDBROKER_LOG_LEVEL"]
		if ref(level) != "LogLevel" {
			problems = append(problems, fmt.Sprintf("%s: CREDBROKER_LOG_LEVEL is %v, want the LogLevel parameter", id, level))
		}
	}
	return problems
}

// ---------------------------------------------------------------- audit

func checkAuditTrail(t *samtemplate.Template) []string {
	rs, err := t.Resources()
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	// retained: the resource outlives the stack; a failed first create may
	// delete it (RetainExceptOnCreate) only where nothing protects it from
	// deletion, or the rollback would get stuck on it.
	retained := func(r samtemplate.Resource, exceptOnCreate bool) {
		want := "Retain"
		if exceptOnCreate {
			want = "RetainExceptOnCreate"
		}
		if r.DeletionPolicy != want || r.UpdateReplacePolicy != "Retain" {
			problems = append(problems, fmt.Sprintf("%s: DeletionPolicy %q, UpdateReplacePolicy %q, want %q and \"Retain\": the audit trail must outlive the stack", r.LogicalID, r.DeletionPolicy, r.UpdateReplacePolicy, want))
		}
	}
	keepsAtLeast90Days := func(where string, days any) {
		for _, d := range retentionValues(t, days) {
			if d != 0 && d < 90 { // 0 keeps events forever in an archive
				problems = append(problems, fmt.Sprintf("%s keeps events %d days, want at least 90", where, d))
			}
		}
	}
	stack, err := t.Stack(samtemplate.Env{})
	if err != nil {
		return []string{err.Error()}
	}
	// Log group ARNs (as an EventBridge target names them) by logical id.
	logGroups := map[string]string{}
	refs := map[string]string{}
	for _, r := range rs {
		if r.Type != "AWS::Logs::LogGroup" {
			continue
		}
		rendered, _, err := stack.Resource(r.LogicalID)
		if err != nil {
			return []string{err.Error()}
		}
		name, _ := rendered.Properties["LogGroupName"].(string)
		refs[r.LogicalID] = name
		logGroups[r.LogicalID] = "arn:aws:logs:us-east-1:" + samtemplate.LocalAccountID + ":log-group:" + name
	}
	attrs := map[string]string{}
	for id, arn := range logGroups {
		attrs[id+".Arn"] = arn + ":*"
	}
	if stack, err = t.Stack(samtemplate.Env{Refs: refs, Attrs: attrs}); err != nil {
		return []string{err.Error()}
	}
	// An archive's managed rule keeps its bus from being deleted: the bus
	// and its archive are retained alike, or the stack's deletion gets stuck.
	bus, err := t.Resource("AuditBus")
	if err != nil {
		return []string{err.Error()}
	}
	retained(bus, true)
	var archivePattern any
	for _, r := range rs {
		if r.Type == "AWS::Events::Archive" && cmp.Equal(r.Properties["SourceArn"], getAtt("AuditBus", "Arn")) {
			retained(r, true)
			keepsAtLeast90Days(r.LogicalID, r.Properties["RetentionDays"])
			archivePattern = r.Properties["EventPattern"]
		}
	}
	if archivePattern == nil {
		return append(problems, "no AWS::Events::Archive has SourceArn AuditBus.Arn")
	}
	copied := false
	for _, r := range rs {
		if r.Type != "AWS::Events::Rule" || ref(r.Properties["EventBusName"]) != "AuditBus" {
			continue
		}
		rendered, _, err := stack.Resource(r.LogicalID)
		if err != nil {
			return append(problems, err.Error())
		}
		for _, target := range list(rendered.Properties["Targets"]) {
			arn, _ := mapOf(target)["Arn"].(string)
			for id, groupARN := range logGroups {
				if arn != groupARN {
					continue
				}
				// A copy of the trail copies all of it, as the archive keeps.
				if !cmp.Equal(r.Properties["EventPattern"], archivePattern) {
					problems = append(problems, fmt.Sprintf("%s: pattern %v differs from the archive's %v", r.LogicalID, r.Properties["EventPattern"], archivePattern))
				}
				copied = true
				lg, _ := t.Resource(id)
				retained(lg, false) // under deletion protection
				keepsAtLeast90Days(id, lg.Properties["RetentionInDays"])
				problems = append(problems, checkLogGroupPolicy(stack, rs, id, groupARN)...)
			}
		}
	}
	if !copied {
		problems = append(problems, "no rule on AuditBus copies the audit events to a log group of the stack (the target must be the log group's ARN without :*)")
	}
	return problems
}

// checkLogGroupPolicy checks that EventBridge may write to the log group:
// through a CloudWatch Logs resource policy (PutResourcePolicy), never a
// role, in the shape the EventBridge guide documents for log group targets
// (events.amazonaws.com and delivery.logs.amazonaws.com may create streams
// and put events), scoped to that log group.
func checkLogGroupPolicy(stack *samtemplate.Stack, rs []samtemplate.Resource, id, groupARN string) []string {
	for _, r := range rs {
		if r.Type != "AWS::Logs::ResourcePolicy" {
			continue
		}
		rendered, _, err := stack.Resource(r.LogicalID)
		if err != nil {
			return []string{err.Error()}
		}
		text, _ := rendered.Properties["PolicyDocument"].(string)
		var doc map[string]any
		if err := json.Unmarshal([]byte(text), &doc); err != nil {
			return []string{fmt.Sprintf("%s: PolicyDocument is not JSON: %v", r.LogicalID, err)}
		}
		for _, st := range list(doc["Statement"]) {
			s := mapOf(st)
			if s["Effect"] == "Allow" && s["Condition"] == nil &&
				cmp.Equal(sorted(strs(mapOf(s["Principal"])["Service"])), []string{"delivery.logs.amazonaws.com", "events.amazonaws.com"}) &&
				cmp.Equal(sorted(strs(s["Action"])), []string{"logs:CreateLogStream", "logs:PutLogEvents"}) &&
				cmp.Equal(strs(s["Resource"]), []string{groupARN + ":*"}) {
				return nil
			}
		}
	}
	return []string{fmt.Sprintf("%s: no AWS::Logs::ResourcePolicy lets events.amazonaws.com and delivery.logs.amazonaws.com create streams and put events in %s:* (and only there)", id, groupARN)}
}

// retentionValues returns the retention periods days allows: a literal, or
// every allowed value of the parameter it names.
func retentionValues(t *samtemplate.Template, days any) []int {
	if n, ok := days.(int); ok {
		return []int{n}
	}
	def := mapOf(t.Section("Parameters")[ref(days)])
	var out []int
	for _, v := range list(def["AllowedValues"]) {
		n, _ := v.(int)
		out = append(out, n)
	}
	if lo, ok := def["MinValue"].(int); ok && len(out) == 0 {
		out = append(out, lo)
	}
	if len(out) == 0 {
		out = append(out, -1) // unbounded
	}
	return out
}

// ---------------------------------------------------------------- identity

// The parameter sets of the identity rules: a created pool, a created pool
// with more clients, and a pool of another region than the stack.
var poolCases = []struct {
	name    string
	env     samtemplate.Env
	region  string // of the stack
	issuer  string
	clients []string
}{
	{
		name:   "created pool",
		env:    samtemplate.Env{Refs: map[string]string{"UserPool": "us-east-1_Created", "UserPoolClient": "createdclient"}},
		region: "us-east-1", issuer: "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Created",
		clients: []string{"createdclient"},
	},
	{
		name: "created pool with more clients",
		env: samtemplate.Env{
			Params: map[string]string{"ExistingUserPoolClientIds": "extra1,extra2"},
			Refs:   map[string]string{"UserPool": "us-east-1_Created", "UserPoolClient": "createdclient"},
		},
		region: "us-east-1", issuer: "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Created",
		clients: []string{"createdclient", "extra1", "extra2"},
	},
	{
		name: "pool in another region",
		env: samtemplate.Env{
			Params: map[string]string{"ExistingUserPoolId": "eu-west-1_AbC123", "ExistingUserPoolClientIds": "abc,def"},
			Pseudo: map[string]string{"AWS::Region": "us-east-1"},
		},
		region: "us-east-1", issuer: "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123",
		clients: []string{"abc", "def"},
	},
}

// The JWT authorizer, the credential function (with the issuer it derives
// itself) and the stack's output name the same pool and the same clients.
func checkTokenTrust(t *samtemplate.Template) []string {
	var problems []string
	for _, c := range poolCases {
		env := c.env
		env.Attrs = map[string]string{"BaseRole.Arn": "arn:aws:iam::123456789012:role/credbroker-BaseRole-X"}
		bad := func(format string, args ...any) {
			problems = append(problems, c.name+": "+fmt.Sprintf(format, args...))
		}
		stack, err := t.Stack(env)
		if err != nil {
			bad("%v", err)
			continue
		}
		api, _, err := stack.Resource("HttpApi")
		if err != nil {
			bad("%v", err)
			continue
		}
		jwt := mapOf(mapOf(mapOf(mapOf(api.Properties["Auth"])["Authorizers"])["CognitoJwt"])["JwtConfiguration"])
		if jwt["issuer"] != c.issuer {
			bad("authorizer issuer %v, want %s", jwt["issuer"], c.issuer)
		}
		if got := sorted(strs(jwt["audience"])); !slices.Equal(got, c.clients) {
			bad("authorizer audience %v, want %v", got, c.clients)
		}

		fn, _, err := stack.Resource("CredentialsFunction")
		if err != nil {
			bad("%v", err)
			continue
		}
		vars := map[string]string{"AWS_REGION": c.region}
		for k, v := range mapOf(mapOf(fn.Properties["Environment"])["Variables"]) {
			vars[k] = fmt.Sprint(v)
		}
		cfg, err := credentials.ConfigFromEnv(func(k string) string { return vars[k] })
		if err != nil {
			bad("the credential function refuses its environment: %v", err)
			continue
		}
		if cfg.Issuer != c.issuer {
			bad("the function expects issuer %s, want %s", cfg.Issuer, c.issuer)
		}
		if got := sorted(cfg.ClientIDs); !slices.Equal(got, c.clients) {
			bad("the function allows clients %v, want %v", got, c.clients)
		}

		out, err := stack.Value(mapOf(t.Section("Outputs")["UserPoolClientId"])["Value"])
		if err != nil {
			bad("output UserPoolClientId: %v", err)
		} else if got := sorted(strings.Split(fmt.Sprint(out), ",")); !slices.Equal(got, c.clients) {
			bad("output UserPoolClientId %v, want %v", out, c.clients)
		}
	}
	return problems
}

// USER_PASSWORD_AUTH sends the password itself to a public client: only on
// request (the local stack always requests it).
func checkPasswordAuth(t *samtemplate.Template) []string {
	var problems []string
	for _, c := range []struct {
		name     string
		env      samtemplate.Env
		password bool
	}{
		{"default", samtemplate.Env{}, false},
		{"AllowPasswordAuth=true", samtemplate.Env{Params: map[string]string{"AllowPasswordAuth": "true"}}, true},
		{"local stack", samtemplate.LocalEnv(), true},
	} {
		stack, err := t.Stack(c.env)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", c.name, err))
			continue
		}
		flows, err := stack.UserPoolClientAuthFlows()
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", c.name, err))
			continue
		}
		if got := slices.Contains(flows, "ALLOW_USER_PASSWORD_AUTH"); got != c.password {
			problems = append(problems, fmt.Sprintf("%s: ExplicitAuthFlows %v: USER_PASSWORD_AUTH allowed %v, want %v", c.name, flows, got, c.password))
		}
		for _, f := range []string{"ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH", "ALLOW_ADMIN_USER_PASSWORD_AUTH"} {
			if !slices.Contains(flows, f) {
				problems = append(problems, fmt.Sprintf("%s: ExplicitAuthFlows %v lacks %s", c.name, flows, f))
			}
		}
	}
	return problems
}

// ---------------------------------------------------------------- alarms

// metricID names a metric: "namespace metric dimension values...".
func metricID(m map[string]any) string {
	id := fmt.Sprint(m["Namespace"], " ", m["MetricName"])
	for _, d := range list(m["Dimensions"]) {
		id += " " + fmt.Sprint(mapOf(d)["Value"])
	}
	return id
}

// alarmMetrics returns the metrics an alarm watches: its metric, or those
// its metric math expression uses.
func alarmMetrics(p map[string]any) []map[string]any {
	if p["MetricName"] != nil {
		return []map[string]any{p}
	}
	used := map[string]bool{}
	for _, m := range list(p["Metrics"]) {
		if expr, ok := mapOf(m)["Expression"].(string); ok && mapOf(m)["ReturnData"] != false {
			for _, id := range regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_]*`).FindAllString(expr, -1) {
				used[id] = true
			}
		}
	}
	var out []map[string]any
	for _, m := range list(p["Metrics"]) {
		metric := mapOf(mapOf(mapOf(m)["MetricStat"])["Metric"])
		if metric != nil && used[fmt.Sprint(mapOf(m)["Id"])] {
			out = append(out, metric)
		}
	}
	return out
}

// Every alarm notifies the stack's topic (created, or AlarmTopicArn), each
// watches new failures rather than a backlog nobody drains, and every way
// the stack can fail has one: each function's errors and throttles, every
// dead-letter queue, the schedule's target errors.
func checkAlarms(t *samtemplate.Template) []string {
	rs, err := t.Resources()
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	for _, c := range []struct {
		name, topic, email string
		env                samtemplate.Env
	}{
		{name: "default", topic: "<AlarmTopic>", env: samtemplate.Env{}},
		{name: "with AlarmEmail", topic: "<AlarmTopic>", email: "ops@example.com",
			env: samtemplate.Env{Params: map[string]string{"AlarmEmail": "ops@example.com"}}},
		{name: "with AlarmTopicArn", topic: "arn:aws:sns:us-east-1:123456789012:ops",
			env: samtemplate.Env{Params: map[string]string{"AlarmTopicArn": "arn:aws:sns:us-east-1:123456789012:ops"}}},
	} {
		bad := func(format string, args ...any) {
			problems = append(problems, c.name+": "+fmt.Sprintf(format, args...))
		}
		stack, err := t.Stack(c.env)
		if err != nil {
			bad("%v", err)
			continue
		}
		var topics, subscriptions []string
		watched := map[string]bool{}
		for _, r := range rs {
			rendered, created, err := stack.Resource(r.LogicalID)
			if err != nil {
				bad("%v", err)
				continue
			}
			if !created {
				continue
			}
			p := rendered.Properties
			switch r.Type {
			case "AWS::SNS::Topic":
				topics = append(topics, "<"+r.LogicalID+">")
			case "AWS::SNS::Subscription":
				subscriptions = append(subscriptions, fmt.Sprint(p["TopicArn"], " ", p["Protocol"], " ", p["Endpoint"]))
			case "AWS::CloudWatch::Alarm":
				for _, k := range []string{"AlarmActions", "OKActions"} {
					if got := strs(p[k]); !slices.Equal(got, []string{c.topic}) {
						bad("%s.%s is %v, want [%s]", r.LogicalID, k, p[k], c.topic)
					}
				}
				for _, m := range alarmMetrics(p) {
					watched[metricID(m)] = true
					if m["Namespace"] == "AWS/SQS" && m["MetricName"] != "NumberOfMessagesSent" {
						bad("%s watches %s: a queue nobody drains keeps it in ALARM; watch NumberOfMessagesSent", r.LogicalID, metricID(m))
					}
				}
			}
		}
		var wantTopics []string
		if c.topic == "<AlarmTopic>" {
			wantTopics = []string{"<AlarmTopic>"}
		}
		if !slices.Equal(topics, wantTopics) {
			bad("topics created %v, want %v", topics, wantTopics)
		}
		var wantSubs []string
		if c.email != "" {
			wantSubs = []string{c.topic + " email " + c.email}
		}
		if !slices.Equal(subscriptions, wantSubs) {
			bad("subscriptions %v, want %v", subscriptions, wantSubs)
		}
		for _, want := range requiredAlarms(t, stack) {
			if !watched[want] {
				bad("no alarm watches %s", want)
			}
		}
	}
	return problems
}

// requiredAlarms lists the metrics some alarm must watch.
func requiredAlarms(t *samtemplate.Template, stack *samtemplate.Stack) []string {
	var want []string
	rs, _ := t.Resources()
	queueOf := func(arn any) string { // "<Queue.Arn>" -> "<Queue.QueueName>"
		return strings.TrimSuffix(fmt.Sprint(arn), ".Arn>") + ".QueueName>"
	}
	for _, r := range rs {
		rendered, created, err := stack.Resource(r.LogicalID)
		if err != nil || !created {
			continue
		}
		p := rendered.Properties
		switch r.Type {
		case "AWS::Serverless::Function":
			fn := "<" + r.LogicalID + ">"
			want = append(want, "AWS/Lambda Errors "+fn, "AWS/Lambda Throttles "+fn)
			if r.LogicalID == "RevokerFunction" {
				// A revocation refused, clamped, failed, a prune failed, a
				// deny list recovered: each is loud on its own (docs/operations.md
				// "Alarms"), never only a log line.
				for _, m := range []string{revoker.MetricRefused, revoker.MetricClamped, revoker.MetricFailed, revoker.MetricPruneFailed, revoker.MetricDenyListRecovered} {
					want = append(want, emf.Namespace+" "+m+" revoker")
				}
			}
			if r.LogicalID == "ProjectorFunction" {
				// An expiry recomputed late leaves the item and the audit
				// trail behind what AWS already enforces.
				want = append(want, emf.Namespace+" "+projector.MetricExpiryLag+" projector")
			}
			for _, ev := range mapOf(p["Events"]) {
				if dest := mapOf(mapOf(mapOf(mapOf(ev)["Properties"])["DestinationConfig"])["OnFailure"])["Destination"]; dest != nil {
					want = append(want, "AWS/SQS NumberOfMessagesSent "+queueOf(dest))
				}
			}
		case "AWS::Serverless::HttpApi":
			// 429s from the stage's throttling count as 4xx.
			api := "<" + r.LogicalID + ">"
			want = append(want, "AWS/ApiGateway 4xx "+api, "AWS/ApiGateway 5xx "+api)
		case "AWS::Scheduler::Schedule":
			want = append(want, fmt.Sprint("AWS/Scheduler TargetErrorCount ", p["GroupName"]))
			dlq := mapOf(mapOf(p["Target"])["DeadLetterConfig"])["Arn"]
			if dlq == nil {
				want = append(want, "a dead-letter queue for "+r.LogicalID)
				continue
			}
			want = append(want, "AWS/SQS NumberOfMessagesSent "+queueOf(dlq))
		case "AWS::Events::Rule":
			// A rule on a custom bus reports per bus and rule name; an
			// unnamed rule's name is only known through an undocumented
			// return value (checkDocumentedAttributes).
			if p["EventBusName"] != nil {
				name := p["Name"]
				if name == nil {
					name = "a Name for " + r.LogicalID
				}
				want = append(want, fmt.Sprint("AWS/Events FailedInvocations ", p["EventBusName"], " ", name))
			}
		}
	}
	return want
}

// checkRevokerSessionDuration: the revoker keeps a deny entry for the
// session duration it is told (plus a minute), so it must be told what the
// credential function issues; a shorter one would lift a revocation while
// sessions it must stop still live.
func checkRevokerSessionDuration(t *samtemplate.Template) []string {
	durationOf := func(fn string) (any, error) {
		r, err := t.Resource(fn)
		if err != nil {
			return nil, err
		}
		return mapOf(mapOf(r.Properties["Environment"])["Variables"])["CREDBROKER_SESSION_DURATION_SECONDS"], nil
	}
	issued, err := durationOf("CredentialsFunction")
	if err != nil {
		return []string{err.Error()}
	}
	kept, err := durationOf("RevokerFunction")
	if err != nil {
		return []string{err.Error()}
	}
	if issued == nil || fmt.Sprint(issued) != fmt.Sprint(kept) {
		return []string{fmt.Sprintf("the revoker's CREDBROKER_SESSION_DURATION_SECONDS is %v, the credential function's %v: they must be the same", kept, issued)}
	}
	return nil
}

// checkAccessTokenLifetime bounds how long a signed-out (revoked) access
// token keeps verifying: tokens are checked offline.
func checkAccessTokenLifetime(t *samtemplate.Template) []string {
	r, err := t.Resource("UserPoolClient")
	if err != nil {
		return []string{err.Error()}
	}
	units, _ := r.Properties["TokenValidityUnits"].(map[string]any)
	minutes := map[string]int{"seconds": 0, "minutes": 1, "hours": 60, "days": 1440}
	unit, _ := units["AccessToken"].(string)
	n, ok := r.Properties["AccessTokenValidity"].(int)
	if !ok || unit == "" {
		return []string{fmt.Sprintf("AccessTokenValidity %v %q: set both, in minutes", r.Properties["AccessTokenValidity"], unit)}
	}
	if m := n * minutes[unit]; unit != "seconds" && m > 15 || unit == "seconds" && n > 900 {
		return []string{fmt.Sprintf("access tokens live %d %s", n, unit)}
	}
	return nil
}

// checkDocumentedAttributes: the template relies on no undocumented return
// value. Ref of a rule on a custom bus returns "<bus>|<rule>", which AWS
// documents nowhere (it documents Ref as the rule's name): name the rule and
// use the name instead.
func checkDocumentedAttributes(t *samtemplate.Template) []string {
	rs, err := t.Resources()
	if err != nil {
		return []string{err.Error()}
	}
	rules := map[string]bool{}
	for _, r := range rs {
		if r.Type == "AWS::Events::Rule" {
			rules[r.LogicalID] = true
		}
	}
	var problems []string
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if id, ok := v["Ref"].(string); ok && rules[id] {
				problems = append(problems, fmt.Sprintf("%s: Ref of the rule %s (undocumented on a custom bus); name the rule and use its name", where, id))
			}
			if args := list(v["Fn::Split"]); len(args) == 2 && args[0] == "|" {
				problems = append(problems, fmt.Sprintf("%s: splits a value on \"|\" (an undocumented return value)", where))
			}
			for _, k := range slices.Sorted(maps.Keys(v)) {
				walk(where, v[k])
			}
		case []any:
			for _, e := range v {
				walk(where, e)
			}
		}
	}
	for _, r := range rs {
		walk(r.LogicalID, r.Properties)
	}
	return problems
}
