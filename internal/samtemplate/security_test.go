package samtemplate_test

// The security rules of the template, enforced on template.yaml itself. Each
// rule is a function that lists what it finds wrong, so the same rules run on
// the real template (which must pass) and on weakened copies (which must not).

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/localstack"
	"github.com/credbroker/credbroker/internal/samtemplate"
)

// X-Ray has no resource-level permissions, so these are the only actions that
// may name Resource "*".
var resourceStarAllowed = []string{"xray:PutTraceSegments", "xray:PutTelemetryRecords"}

// The contract's S3 actions (read plus write), the ceiling of every session.
var contractS3Actions = []string{"s3:GetObject", "s3:ListBucket", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"}

// Every function, and its source folder under functions/.
var functionDirs = map[string]string{
	"CredentialsFunction": "credentials",
	"ProjectorFunction":   "projector",
	"ReplayFunction":      "replay",
	"RevokerFunction":     "revoker",
}

type rule struct {
	name  string
	check func(*samtemplate.Template) []string
}

var securityRules = []rule{
	{"no wildcard actions or resources in IAM", checkNoWildcards},
	{"actions that take only Resource * are not scoped to resources", checkStarOnlyActions},
	{"roles allow the calls their code makes", checkRequiredPermissions},
	{"base role trusts only the credentials function role", checkBaseRoleTrust},
	{"base role allows only the contract S3 actions", checkBaseRolePermissions},
	{"base role is bounded by its ceiling and has no other policy", checkBaseRoleBoundary},
	{"only the credentials function may assume roles", checkOnlyCredentialsAssumes},
	{"only the revoker may write the base role's policies, and nothing else in IAM", checkOnlyRevokerWritesIAM},
	{"each role puts audit events under its own sources only", checkAuditSources},
	{"the revoker reaches only the deny list and users' cutoffs", checkRevokerTableAccess},
	{"the credentials function reads only users' items and the fallback's cutoff", checkCredentialsTableAccess},
	{"functions use their own least-privilege roles", checkFunctionRoles},
	{"stream consumers report, bisect, bound retries and keep failures", checkStreamMappings},
	{"the revoker takes narrowings in batches, two at once, and keeps failures", checkRevokerQueue},
	{"fan-out pages go one at a time to a bounded number of workers, and failures are kept", checkFanoutQueue},
	{"tables are protected", checkTables},
	{"functions are arm64 provided.al2023 makefile builds with tracing", checkFunctions},
	{"Lambda filters no application log line", checkLogging},
	{"audit trail is archived, copied and retained", checkAuditTrail},
	{"credential route needs a Cognito JWT", checkHTTPAuth},
	{"authorizer and function accept the same pool and clients", checkTokenTrust},
	{"password sign-in is off by default", checkPasswordAuth},
	{"access tokens live at most 15 minutes", checkAccessTokenLifetime},
	{"deny entries outlive the sessions the endpoint issues", checkRevokerSessionDuration},
	{"alarms notify someone and fire on new failures", checkAlarms},
	{"the template relies on documented return values only", checkDocumentedAttributes},
}

func TestTemplateSecurityRules(t *testing.T) {
	tpl := mustLoad(t)
	for _, r := range securityRules {
		t.Run(r.name, func(t *testing.T) {
			for _, p := range r.check(tpl) {
				t.Errorf("template.yaml weakens %q: %s", r.name, p)
			}
		})
	}
}

// Each case weakens the real template in one place; the named rule must
// notice.
func TestSecurityRulesCatchWeakenedTemplates(t *testing.T) {
	path, err := samtemplate.DefaultPath()
	if err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		old, new string
		rule     string
	}{
		{
			name: "the credentials function putting events under any source is rejected",
			old:  "                    events:source: [credbroker.credentials]\n", new: "",
			rule: "each role puts audit events under its own sources only",
		},
		{
			name: "the credentials function putting events as the projector is rejected",
			old:  "events:source: [credbroker.credentials]", new: "events:source: [credbroker.credentials, credbroker.projector]",
			rule: "each role puts audit events under its own sources only",
		},
		{
			name: "the revoker writing any item of the policy table is rejected",
			old:  "                    dynamodb:LeadingKeys: [REVOCATIONS]\n              # Reading a cutoff back", new: "                    dynamodb:LeadingKeys: [REVOCATIONS, \"USER#*\"]\n              # Reading a cutoff back",
			rule: "the revoker reaches only the deny list and users' cutoffs",
		},
		{
			name: "a revoker told of shorter sessions than the endpoint issues is rejected",
			old:  "          CREDBROKER_SESSION_DURATION_SECONDS: !Ref SessionDurationSeconds\n          CREDBROKER_MANAGED_POLICY_QUOTA", new: "          CREDBROKER_SESSION_DURATION_SECONDS: 900\n          CREDBROKER_MANAGED_POLICY_QUOTA",
			rule: "deny entries outlive the sessions the endpoint issues",
		},
		{
			name: "the revoker reading users' whole items is rejected",
			old:  "dynamodb:Attributes: [pk, sk, revokedBefore, userId, claim]\n                  StringEqualsIfExists:\n                    dynamodb:Select: SPECIFIC_ATTRIBUTES\n", new: "dynamodb:Attributes: [pk, sk, revokedBefore, userId, claim]\n",
			rule: "the revoker reaches only the deny list and users' cutoffs",
		},
		{
			name: "a revoker run for every narrowing is rejected",
			old:  "            BatchSize: 1000\n", new: "            BatchSize: 1\n",
			rule: "the revoker takes narrowings in batches, two at once, and keeps failures",
		},
		{
			name: "a revoker without a concurrency cap is rejected",
			old:  "            ScalingConfig:\n              MaximumConcurrency: 2\n", new: "",
			rule: "the revoker takes narrowings in batches, two at once, and keeps failures",
		},
		{
			name: "a revocation queue that drops its dead letters is rejected",
			old:  "        deadLetterTargetArn: !GetAtt RevokerDLQ.Arn\n        maxReceiveCount: 5\n", new: "        deadLetterTargetArn: !GetAtt RevokerDLQ.Arn\n        maxReceiveCount: 1000\n",
			rule: "the revoker takes narrowings in batches, two at once, and keeps failures",
		},
		{
			name: "a fan-out queue that drops its dead letters is rejected",
			old:  "        deadLetterTargetArn: !GetAtt FanoutDLQ.Arn\n", new: "",
			rule: "fan-out pages go one at a time to a bounded number of workers, and failures are kept",
		},
		{
			name: "unbounded fan-out workers are rejected",
			old:  "              MaximumConcurrency: !Ref ProjectorWorkerConcurrency\n", new: "              MaximumConcurrency: 1000\n",
			rule: "fan-out pages go one at a time to a bounded number of workers, and failures are kept",
		},
		{
			name: "the revoker updating users' grants is rejected",
			old:  "dynamodb:Attributes: [pk, sk, revokedBefore, userId, claim]", new: "dynamodb:Attributes: [pk, sk, revokedBefore, userId, claim, doc]",
			rule: "the revoker reaches only the deny list and users' cutoffs",
		},
		{
			name: "the credentials function reading the whole deny list is rejected",
			old:  "                    dynamodb:Attributes: [pk, sk, allBefore] # the key attributes must be listed too\n", new: "",
			rule: "the credentials function reads only users' items and the fallback's cutoff",
		},
		{
			name: "the credentials function reading any item of the policy table is rejected",
			old:  "                  ForAllValues:StringLike:\n                    dynamodb:LeadingKeys: [\"USER#*\"]\n              # Of the deny list", new: "              # Of the deny list",
			rule: "the credentials function reads only users' items and the fallback's cutoff",
		},
		{
			name: "passing the expiry scheduler's role to any service is rejected",
			old:  "                    iam:PassedToService: scheduler.amazonaws.com\n", new: "                    iam:PassedToService: [scheduler.amazonaws.com, lambda.amazonaws.com]\n",
			rule: "only the revoker may write the base role's policies, and nothing else in IAM",
		},
		{
			name: "passing the base role is rejected",
			old:  "                Action: iam:PassRole\n                Resource: !GetAtt ExpirySchedulerRole.Arn\n", new: "                Action: iam:PassRole\n                Resource: [!GetAtt ExpirySchedulerRole.Arn, !GetAtt BaseRole.Arn]\n",
			rule: "only the revoker may write the base role's policies, and nothing else in IAM",
		},
		{
			name: "s3:* on the base role is rejected",
			old:  "              - s3:GetObject\n", new: "              - s3:*\n",
			rule: "base role allows only the contract S3 actions",
		},
		{
			name: "an extra S3 action on the base role is rejected",
			old:  "              - s3:GetObject\n", new: "              - s3:GetObject\n              - s3:PutBucketPolicy\n",
			rule: "base role allows only the contract S3 actions",
		},
		{
			name: "dropping the TLS condition on the base role is rejected",
			old:  "aws:SecureTransport: \"true\"", new: "aws:SecureTransport: \"false\"",
			rule: "base role allows only the contract S3 actions",
		},
		{
			name: "session tags other than the revocation tags are rejected",
			old:  "aws:TagKeys: [credbroker:user, credbroker:cutoff]\n      # The ceiling", new: "aws:TagKeys: [credbroker:user, credbroker:cutoff, team]\n      # The ceiling",
			rule: "base role trusts only the credentials function role",
		},
		{
			name: "a credentials function that cannot tag its sessions is rejected",
			old:  "Action: sts:TagSession\n            Resource: !GetAtt BaseRole.Arn", new: "Action: sts:TagSession\n            Resource: !GetAtt ProjectorFunctionRole.Arn",
			rule: "roles allow the calls their code makes",
		},
		{
			name: "a second trusted principal on the base role is rejected",
			old:  "AWS: !GetAtt CredentialsFunctionRole.Arn", new: "AWS: [!GetAtt CredentialsFunctionRole.Arn, !GetAtt ReplayFunctionRole.Arn]",
			rule: "base role trusts only the credentials function role",
		},
		{
			name: "Resource * outside X-Ray is rejected",
			old:  "Action: dynamodb:GetItem\n                Resource: !GetAtt PolicyTable.Arn", new: "Action: dynamodb:GetItem\n                Resource: \"*\"",
			rule: "no wildcard actions or resources in IAM",
		},
		{
			name: "a wildcard action is rejected",
			old:  "Action: sqs:SendMessage", new: "Action: sqs:*",
			rule: "no wildcard actions or resources in IAM",
		},
		{
			name: "the projector assuming roles is rejected",
			old:  "Action: sqs:SendMessage", new: "Action: [sqs:SendMessage, sts:AssumeRole]",
			rule: "only the credentials function may assume roles",
		},
		{
			name: "a managed policy on a function role is rejected",
			old:  "      Description: Execution role of the rebuild/verify function.\n", new: "      Description: x\n      ManagedPolicyArns: [arn:aws:iam::aws:policy/AdministratorAccess]\n",
			rule: "functions use their own least-privilege roles",
		},
		{
			name: "a managed policy on another role is rejected",
			old:  "      Description: Lets EventBridge Scheduler start the daily verification and the deny list's prune.\n",
			new:  "      Description: x\n      ManagedPolicyArns: [!Ref BaseRoleCeiling]\n",
			rule: "functions use their own least-privilege roles",
		},
		{
			name: "a SAM-generated function role is rejected",
			old:  "      Role: !GetAtt ReplayFunctionRole.Arn\n", new: "      Policies: [AmazonDynamoDBFullAccess]\n",
			rule: "functions use their own least-privilege roles",
		},
		{
			name: "turning off bisection is rejected",
			old:  "BisectBatchOnFunctionError: true", new: "BisectBatchOnFunctionError: false",
			rule: "stream consumers report, bisect, bound retries and keep failures",
		},
		{
			name: "infinite retries are rejected",
			old:  "MaximumRetryAttempts: 10\n", new: "MaximumRetryAttempts: -1\n",
			rule: "stream consumers report, bisect, bound retries and keep failures",
		},
		{
			name: "unbounded record age is rejected",
			old:  "MaximumRecordAgeInSeconds: 21600", new: "MaximumRecordAgeInSeconds: -1",
			rule: "stream consumers report, bisect, bound retries and keep failures",
		},
		{
			name: "dropping partial batch responses is rejected",
			old:  "FunctionResponseTypes: [ReportBatchItemFailures]", new: "FunctionResponseTypes: []",
			rule: "stream consumers report, bisect, bound retries and keep failures",
		},
		{
			name: "dropping the on-failure destination is rejected",
			old:  "            DestinationConfig:\n", new: "            XDestinationConfig:\n",
			rule: "stream consumers report, bisect, bound retries and keep failures",
		},
		{
			name: "a table without PITR is rejected",
			old:  "PointInTimeRecoveryEnabled: true", new: "PointInTimeRecoveryEnabled: false",
			rule: "tables are protected",
		},
		{
			name: "a table without SSE is rejected",
			old:  "SSEEnabled: true", new: "SSEEnabled: false",
			rule: "tables are protected",
		},
		{
			name: "provisioned billing is rejected",
			old:  "BillingMode: PAY_PER_REQUEST", new: "BillingMode: PROVISIONED",
			rule: "tables are protected",
		},
		{
			name: "deletion protection ignoring the parameter is rejected",
			old:  "DeletionProtectionEnabled: !If [ProtectData, true, false]", new: "DeletionProtectionEnabled: false",
			rule: "tables are protected",
		},
		{
			name: "a membership table that goes with the stack is rejected",
			old:  "    # replacement or a stack deletion.\n    DeletionPolicy: Retain\n", new: "    # replacement or a stack deletion.\n    DeletionPolicy: Delete\n",
			rule: "tables are protected",
		},
		{
			name: "a deletable table with deletion protection is rejected",
			old:  "DeletionProtectionEnabled: false", new: "DeletionProtectionEnabled: !If [ProtectData, true, false]",
			rule: "tables are protected",
		},
		{
			name: "a keys-only membership stream is rejected",
			old:  "StreamViewType: NEW_AND_OLD_IMAGES", new: "StreamViewType: KEYS_ONLY",
			rule: "tables are protected",
		},
		{
			name: "an x86_64 function is rejected",
			old:  "      MemorySize: 1024\n", new: "      MemorySize: 1024\n      Architectures: [x86_64]\n",
			rule: "functions are arm64 provided.al2023 makefile builds with tracing",
		},
		{
			name: "tracing turned off is rejected",
			old:  "Tracing: Active", new: "Tracing: PassThrough",
			rule: "functions are arm64 provided.al2023 makefile builds with tracing",
		},
		{
			name: "a non-makefile build is rejected",
			old:  "      BuildMethod: makefile\n", new: "      BuildMethod: go1.x\n",
			rule: "functions are arm64 provided.al2023 makefile builds with tracing",
		},
		{
			name: "an audit bus without archive is rejected",
			old:  "SourceArn: !GetAtt AuditBus.Arn", new: "SourceArn: !Sub arn:aws:events:us-east-1:123456789012:event-bus/other",
			rule: "audit trail is archived, copied and retained",
		},
		{
			name: "an archive that goes with the stack is rejected",
			old:  "    Type: AWS::Events::Archive\n    DeletionPolicy: RetainExceptOnCreate\n", new: "    Type: AWS::Events::Archive\n    DeletionPolicy: Delete\n",
			rule: "audit trail is archived, copied and retained",
		},
		{
			name: "an audit bus deleted under its retained archive is rejected",
			old:  "    Type: AWS::Events::EventBus\n    DeletionPolicy: RetainExceptOnCreate\n", new: "    Type: AWS::Events::EventBus\n    DeletionPolicy: Delete\n",
			rule: "audit trail is archived, copied and retained",
		},
		{
			name: "an archive left behind by a failed first create is rejected",
			old:  "    Type: AWS::Events::Archive\n    DeletionPolicy: RetainExceptOnCreate\n", new: "    Type: AWS::Events::Archive\n    DeletionPolicy: Retain\n",
			rule: "audit trail is archived, copied and retained",
		},
		{
			name: "an audit bus replaced without its archive is rejected",
			old:  "    DeletionPolicy: RetainExceptOnCreate\n    UpdateReplacePolicy: Retain\n    Properties:\n      # The stack id", new: "    DeletionPolicy: RetainExceptOnCreate\n    UpdateReplacePolicy: Delete\n    Properties:\n      # The stack id",
			rule: "audit trail is archived, copied and retained",
		},
		{
			name: "a protected log group deleted by a failed first create is rejected",
			old:  "    Type: AWS::Logs::LogGroup\n    DeletionPolicy: Retain\n", new: "    Type: AWS::Logs::LogGroup\n    DeletionPolicy: RetainExceptOnCreate\n",
			rule: "audit trail is archived, copied and retained",
		},
		{
			name: "a delivery policy on every log group is rejected",
			old:  `"Resource":"${AuditLogGroup.Arn}"`, new: `"Resource":"arn:aws:logs:*:*:log-group:*"`,
			rule: "audit trail is archived, copied and retained",
		},
		{
			name: "a delivery policy without the log delivery principal is rejected",
			old:  `["events.amazonaws.com","delivery.logs.amazonaws.com"]`, new: `["events.amazonaws.com"]`,
			rule: "audit trail is archived, copied and retained",
		},
		{
			name: "an alarm naming a rule by its undocumented Ref is rejected",
			old:  "- { Name: RuleName, Value: audit-log } # AuditLogRule's Name", new: "- { Name: RuleName, Value: !Select [1, !Split [\"|\", !Ref AuditLogRule]] }",
			rule: "the template relies on documented return values only",
		},
		{
			name: "an alarm watching another name than the rule's is rejected",
			old:  "      Name: audit-log\n", new: "      Name: audit-copy\n",
			rule: "alarms notify someone and fire on new failures",
		},
		{
			name: "an unnamed rule on the audit bus is rejected",
			old:  "      Name: revoker # named for RevokerRuleFailedAlarm\n", new: "",
			rule: "alarms notify someone and fire on new failures",
		},
		{
			name: "an audit log group that goes with the stack is rejected",
			old:  "    Type: AWS::Logs::LogGroup\n    DeletionPolicy: Retain\n", new: "    Type: AWS::Logs::LogGroup\n    DeletionPolicy: Delete\n",
			rule: "audit trail is archived, copied and retained",
		},
		{
			name: "a copy rule aimed at a log group ARN with :* is rejected",
			old:  "log-group:${AuditLogGroup}\n", new: "log-group:${AuditLogGroup}:*\n",
			rule: "audit trail is archived, copied and retained",
		},
		{
			name: "a log group that EventBridge may not write is rejected",
			old:  `"Principal":{"Service":["events.amazonaws.com",`, new: `"Principal":{"Service":["logs.amazonaws.com",`,
			rule: "audit trail is archived, copied and retained",
		},
		{
			name: "an issuer in the stack's region is rejected",
			old:  "https://cognito-idp.${PoolRegion}.amazonaws.com/${PoolId}", new: "https://cognito-idp.${AWS::Region}.amazonaws.com/${PoolId}",
			rule: "authorizer and function accept the same pool and clients",
		},
		{
			name: "an audience without the created client is rejected",
			old:  "- !Split [\",\", !Join [\",\", [!Ref UserPoolClient, !Join [\",\", !Ref ExistingUserPoolClientIds]]]]", new: "- !Ref ExistingUserPoolClientIds",
			rule: "authorizer and function accept the same pool and clients",
		},
		{
			name: "a function that refuses the created client is rejected",
			old:  "- !Join [\",\", [!Ref UserPoolClient, !Join [\",\", !Ref ExistingUserPoolClientIds]]]\n              - !Ref UserPoolClient", new: "- !Join [\",\", !Ref ExistingUserPoolClientIds]\n              - !Ref UserPoolClient",
			rule: "authorizer and function accept the same pool and clients",
		},
		{
			name: "the revoker writing any role's policies is rejected",
			old:  "                Action: [iam:PutRolePolicy, iam:DeleteRolePolicy, iam:GetRolePolicy, iam:ListRolePolicies, iam:ListAttachedRolePolicies]\n                Resource: !GetAtt BaseRole.Arn",
			new:  "                Action: [iam:PutRolePolicy, iam:DeleteRolePolicy, iam:GetRolePolicy, iam:ListRolePolicies, iam:ListAttachedRolePolicies]\n                Resource: !GetAtt CredentialsFunctionRole.Arn",
			rule: "only the revoker may write the base role's policies, and nothing else in IAM",
		},
		{
			name: "the revoker attaching any managed policy is rejected",
			old:  "Action: [iam:PutRolePolicy, iam:DeleteRolePolicy,", new: "Action: [iam:AttachRolePolicy, iam:PutRolePolicy, iam:DeleteRolePolicy,",
			rule: "only the revoker may write the base role's policies, and nothing else in IAM",
		},
		{
			name: "the revoker attaching policies other than its pages is rejected",
			old:  "                  ArnLike:\n                    iam:PolicyARN: !Sub arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/credbroker/${BaseRole}-revocations-*",
			new:  "                  ArnLike:\n                    iam:PolicyARN: !Sub arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/*",
			rule: "only the revoker may write the base role's policies, and nothing else in IAM",
		},
		{
			name: "the revoker versioning any managed policy is rejected",
			old:  "iam:GetPolicy, iam:GetPolicyVersion]\n                Resource: !Sub arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/credbroker/${BaseRole}-revocations-*",
			new:  "iam:GetPolicy, iam:GetPolicyVersion]\n                Resource: !Sub arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/*",
			rule: "only the revoker may write the base role's policies, and nothing else in IAM",
		},
		{
			name: "the revoker detaching the ceiling is rejected",
			old:  "                Action: iam:AttachRolePolicy\n", new: "                Action: [iam:AttachRolePolicy, iam:DetachRolePolicy]\n",
			rule: "only the revoker may write the base role's policies, and nothing else in IAM",
		},
		{
			name: "another role writing IAM is rejected",
			old:  "Action: sqs:SendMessage", new: "Action: [sqs:SendMessage, iam:PutRolePolicy]",
			rule: "only the revoker may write the base role's policies, and nothing else in IAM",
		},
		{
			name: "hour-long access tokens are rejected",
			old:  "AccessTokenValidity: 15", new: "AccessTokenValidity: 60",
			rule: "access tokens live at most 15 minutes",
		},
		{
			name: "password sign-in always on is rejected",
			old:  "- !If [PasswordAuth, ALLOW_USER_PASSWORD_AUTH, !Ref AWS::NoValue]", new: "- ALLOW_USER_PASSWORD_AUTH",
			rule: "password sign-in is off by default",
		},
		{
			name: "an alarm without actions is rejected",
			old:  "      AlarmActions: [!If [HasAlarmTopic, !Ref AlarmTopicArn, !Ref AlarmTopic]]\n", new: "      AlarmActions: !If [HasAlarmTopic, [!Ref AlarmTopicArn], !Ref AWS::NoValue]\n",
			rule: "alarms notify someone and fire on new failures",
		},
		{
			name: "a dead-letter alarm on messages waiting is rejected",
			old:  "      MetricName: NumberOfMessagesSent\n", new: "      MetricName: ApproximateNumberOfMessagesVisible\n",
			rule: "alarms notify someone and fire on new failures",
		},
		{
			name: "a schedule without dead-letter queue is rejected",
			old:  "        DeadLetterConfig:\n          Arn: !GetAtt VerifyScheduleDLQ.Arn\n", new: "",
			rule: "alarms notify someone and fire on new failures",
		},
		{
			name: "an API without an alarm on its 4xx (429) answers is rejected",
			old:  "              MetricName: 4xx\n", new: "              MetricName: 5xx\n",
			rule: "alarms notify someone and fire on new failures",
		},
		{
			name: "a function without throttle alarm is rejected",
			old:  "Expression: FILL(credentials, 0) + FILL(projector, 0) + FILL(replay, 0)", new: "Expression: FILL(credentials, 0) + FILL(projector, 0)",
			rule: "alarms notify someone and fire on new failures",
		},
		{
			name: "a scoped ListStreams statement is rejected",
			old:  "              - Sid: ReadMemberships\n                Effect: Allow\n                Action: [dynamodb:Query, dynamodb:GetItem, dynamodb:BatchGetItem]\n",
			new:  "              - Sid: ListStreams\n                Effect: Allow\n                Action: dynamodb:ListStreams\n                Resource: !Sub ${MembershipTable.Arn}/stream/*\n              - Sid: ReadMemberships\n                Effect: Allow\n                Action: [dynamodb:Query, dynamodb:GetItem, dynamodb:BatchGetItem]\n",
			rule: "actions that take only Resource * are not scoped to resources",
		},
		{
			name: "a replay role without DescribeTable on the policy table is rejected",
			old:  "                  - dynamodb:DescribeTable # item count for progress and ETA\n", new: "",
			rule: "roles allow the calls their code makes",
		},
		{
			name: "a default ceiling of every bucket is rejected",
			old:  "- !Sub arn:${AWS::Partition}:s3:::${AWS::StackName}-*/*", new: "- !Sub arn:${AWS::Partition}:s3:::*/*",
			rule: "base role allows only the contract S3 actions",
		},
		{
			name: "a ceiling that ignores AllowedBuckets is rejected",
			old:  "              - !Split [\",\", !Join [\"\", [\"arn:*:s3:::\", !Join [\",arn:*:s3:::\", !Split [\",\", !Ref AllowedBuckets]]]]]\n", new: "              - arn:*:s3:::*\n",
			rule: "base role allows only the contract S3 actions",
		},
		{
			name: "a ceiling beyond the account's buckets is rejected",
			old:  "s3:ResourceAccount: !Ref AWS::AccountId", new: "s3:ResourceAccount: \"*\"",
			rule: "base role allows only the contract S3 actions",
		},
		{
			name: "listing on object ARNs is rejected",
			old:  "            Action: s3:ListBucket\n", new: "            Action: [s3:ListBucket, s3:GetObject]\n",
			rule: "base role allows only the contract S3 actions",
		},
		{
			name: "a base role without boundary is rejected",
			old:  "      PermissionsBoundary: !Ref BaseRoleCeiling\n", new: "",
			rule: "base role is bounded by its ceiling and has no other policy",
		},
		{
			name: "a base role bounded by another policy is rejected",
			old:  "      PermissionsBoundary: !Ref BaseRoleCeiling\n", new: "      PermissionsBoundary: arn:aws:iam::aws:policy/AmazonS3FullAccess\n",
			rule: "base role is bounded by its ceiling and has no other policy",
		},
		{
			name: "a second managed policy on the base role is rejected",
			old:  "      ManagedPolicyArns: [!Ref BaseRoleCeiling]\n", new: "      ManagedPolicyArns: [!Ref BaseRoleCeiling, arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess]\n",
			rule: "base role is bounded by its ceiling and has no other policy",
		},
		{
			name: "an inline policy on the base role is rejected",
			old:  "      PermissionsBoundary: !Ref BaseRoleCeiling\n",
			new:  "      PermissionsBoundary: !Ref BaseRoleCeiling\n      Policies:\n        - PolicyName: extra\n          PolicyDocument: {Version: \"2012-10-17\", Statement: [{Effect: Allow, Action: s3:GetObject, Resource: arn:aws:s3:::x/*}]}\n",
			rule: "base role is bounded by its ceiling and has no other policy",
		},
		{
			name: "a role policy resource on the base role is rejected",
			old:  "  # ---------------------------------------------------------------- projector\n",
			new:  "  BaseRoleExtra:\n    Type: AWS::IAM::RolePolicy\n    Properties:\n      RoleName: !Ref BaseRole\n      PolicyName: extra\n      PolicyDocument: {Version: \"2012-10-17\", Statement: [{Effect: Allow, Action: s3:GetObject, Resource: arn:aws:s3:::x/*}]}\n\n  # ---------------------------------------------------------------- projector\n",
			rule: "base role is bounded by its ceiling and has no other policy",
		},
		{
			name: "the ceiling attached to a role besides the base role is rejected",
			old:  "      Description: Ceiling and permissions boundary of the credbroker base role.\n",
			new:  "      Description: Ceiling and permissions boundary of the credbroker base role.\n      Roles: [!Ref ReplayFunctionRole]\n",
			rule: "base role is bounded by its ceiling and has no other policy",
		},
		{
			name: "the revoker removing the base role's boundary is rejected",
			old:  "Action: [iam:PutRolePolicy, iam:DeleteRolePolicy,", new: "Action: [iam:DeleteRolePermissionsBoundary, iam:PutRolePolicy, iam:DeleteRolePolicy,",
			rule: "only the revoker may write the base role's policies, and nothing else in IAM",
		},
		{
			name: "the revoker rewriting the ceiling is rejected",
			old:  "              - Sid: BaseRolePolicies\n",
			new:  "              - Sid: Ceiling\n                Effect: Allow\n                Action: [iam:CreatePolicyVersion, iam:SetDefaultPolicyVersion]\n                Resource: !Ref BaseRoleCeiling\n              - Sid: BaseRolePolicies\n",
			rule: "only the revoker may write the base role's policies, and nothing else in IAM",
		},
		{
			name: "Lambda filtering application logs is rejected",
			old:  "ApplicationLogLevel: TRACE", new: "ApplicationLogLevel: !Ref LogLevel",
			rule: "Lambda filters no application log line",
		},
		{
			name: "dropping START and REPORT lines is rejected",
			old:  "SystemLogLevel: INFO", new: "SystemLogLevel: WARN",
			rule: "Lambda filters no application log line",
		},
		{
			name: "an unauthenticated route is rejected",
			old:  "            Auth:\n              Authorizer: CognitoJwt\n", new: "            Auth:\n              Authorizer: NONE\n",
			rule: "credential route needs a Cognito JWT",
		},
		{
			name: "a JWT authorizer without audience is rejected",
			old:  "              audience: !If\n", new: "              xaudience: !If\n",
			rule: "credential route needs a Cognito JWT",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(string(orig), tc.old) {
				t.Fatalf("template.yaml no longer contains %q: update this case", tc.old)
			}
			tpl, err := samtemplate.Parse([]byte(strings.Replace(string(orig), tc.old, tc.new, 1)))
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(securityRules, func(r rule) bool { return r.name == tc.rule })
			if i < 0 {
				t.Fatalf("no rule %q", tc.rule)
			}
			if problems := securityRules[i].check(tpl); len(problems) == 0 {
				t.Errorf("rule %q accepted the weakened template", tc.rule)
			}
		})
	}
}

// ---------------------------------------------------------------- IAM

type statement struct {
	where string // for messages
	role  string // logical id of the role it applies to, "" if none
	trust bool   // part of a role's trust policy
	m     map[string]any
}

func (s statement) actions() []string { return strs(s.m["Action"]) }
func (s statement) resources() []any  { return list(s.m["Resource"]) }
func (s statement) allow() bool       { return s.m["Effect"] == "Allow" }
func (s statement) String() string    { return s.where }
func ref(v any) string                { return intrinsicArg(v, "Ref") }
func getAtt(id, attr string) any      { return map[string]any{"Fn::GetAtt": []any{id, attr}} }
func roleOf(function string) string   { return function + "Role" }
func isFunction(r samtemplate.Resource) bool {
	return r.Type == "AWS::Serverless::Function" || r.Type == "AWS::Lambda::Function"
}

// iamStatements lists every IAM statement of the template with the role it
// is attached to.
func iamStatements(t *samtemplate.Template) ([]statement, []string) {
	rs, err := t.Resources()
	if err != nil {
		return nil, []string{err.Error()}
	}
	var out []statement
	var problems []string
	// A template's managed policy applies to the roles that list it in
	// ManagedPolicyArns as well as to those it names.
	attachedBy := map[string][]string{}
	for _, r := range rs {
		if r.Type == "AWS::IAM::Role" {
			for _, arn := range list(r.Properties["ManagedPolicyArns"]) {
				if id := ref(arn); id != "" {
					attachedBy[id] = append(attachedBy[id], r.LogicalID)
				}
			}
		}
	}
	add := func(where, role string, trust bool, doc any) {
		d, _ := doc.(map[string]any)
		if d == nil {
			problems = append(problems, where+": no policy document")
			return
		}
		for i, s := range list(d["Statement"]) {
			m, _ := s.(map[string]any)
			out = append(out, statement{where: fmt.Sprintf("%s.Statement[%d]", where, i), role: role, trust: trust, m: m})
		}
	}
	for _, r := range rs {
		p := r.Properties
		switch r.Type {
		case "AWS::IAM::Role":
			add(r.LogicalID+".AssumeRolePolicyDocument", r.LogicalID, true, p["AssumeRolePolicyDocument"])
			for i, pol := range list(p["Policies"]) {
				pm, _ := pol.(map[string]any)
				add(fmt.Sprintf("%s.Policies[%d]", r.LogicalID, i), r.LogicalID, false, pm["PolicyDocument"])
			}
		case "AWS::IAM::RolePolicy":
			add(r.LogicalID, ref(p["RoleName"]), false, p["PolicyDocument"])
		case "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy":
			var roles []string
			for _, role := range list(p["Roles"]) {
				roles = append(roles, ref(role))
			}
			roles = append(roles, attachedBy[r.LogicalID]...)
			if len(roles) == 0 {
				add(r.LogicalID, "", false, p["PolicyDocument"])
			}
			for _, role := range roles {
				add(r.LogicalID, role, false, p["PolicyDocument"])
			}
		case "AWS::Serverless::Function":
			for i, pol := range list(p["Policies"]) {
				if pm, ok := pol.(map[string]any); ok && pm["Statement"] != nil {
					add(fmt.Sprintf("%s.Policies[%d]", r.LogicalID, i), roleOf(r.LogicalID), false, pm)
				}
			}
		}
	}
	return out, problems
}

func checkNoWildcards(t *samtemplate.Template) []string {
	stmts, problems := iamStatements(t)
	for _, s := range stmts {
		for _, k := range []string{"NotAction", "NotResource", "NotPrincipal"} {
			if _, ok := s.m[k]; ok && s.allow() {
				problems = append(problems, fmt.Sprintf("%s: Allow with %s", s, k))
			}
		}
		if s.trust {
			if p := s.m["Principal"]; p == "*" || slices.Contains(strs(mapOf(p)["AWS"]), "*") {
				problems = append(problems, fmt.Sprintf("%s: trusts every principal", s))
			}
			continue
		}
		acts := s.actions()
		if len(acts) == 0 {
			problems = append(problems, fmt.Sprintf("%s: Action is not a literal list of actions", s))
		}
		for _, a := range acts {
			if strings.Contains(a, "*") {
				problems = append(problems, fmt.Sprintf("%s: wildcard action %q", s, a))
			}
		}
		for _, res := range s.resources() {
			if res != "*" {
				continue
			}
			for _, a := range acts {
				if !slices.Contains(resourceStarAllowed, a) {
					problems = append(problems, fmt.Sprintf("%s: %s on Resource \"*\" (only %v may)", s, a, resourceStarAllowed))
				}
			}
		}
	}
	return problems
}

func checkBaseRoleTrust(t *samtemplate.Template) []string {
	r, err := t.Resource("BaseRole")
	if err != nil {
		return []string{err.Error()}
	}
	doc := mapOf(r.Properties["AssumeRolePolicyDocument"])
	stmts := list(doc["Statement"])
	if len(stmts) != 2 {
		return []string{fmt.Sprintf("trust policy has %d statements, want exactly 2 (assume, tag)", len(stmts))}
	}
	var problems []string
	wantPrincipal := map[string]any{"AWS": getAtt("CredentialsFunctionRole", "Arn")}
	for i, want := range [][]string{{"sts:AssumeRole", "sts:SetSourceIdentity"}, {"sts:TagSession"}} {
		s := mapOf(stmts[i])
		if diff := cmp.Diff(wantPrincipal, s["Principal"]); diff != "" {
			problems = append(problems, fmt.Sprintf("statement %d: trusted principal is not exactly CredentialsFunctionRole (-want +got):\n%s", i, diff))
		}
		if s["Effect"] != "Allow" {
			problems = append(problems, fmt.Sprintf("statement %d: trust Effect = %v", i, s["Effect"]))
		}
		if got := sorted(strs(s["Action"])); !slices.Equal(got, want) {
			problems = append(problems, fmt.Sprintf("statement %d: trust actions = %v, want %v", i, got, want))
		}
		if i == 0 && s["Condition"] != nil {
			problems = append(problems, "the AssumeRole statement has a condition")
		}
		// The credentials function may tag sessions with the user's and the
		// cutoff's tags, and with nothing else: no other tag can reach a
		// policy.
		onlyOurs := map[string]any{"ForAllValues:StringEquals": map[string]any{"aws:TagKeys": []any{"credbroker:user", "credbroker:cutoff"}}}
		if diff := cmp.Diff(onlyOurs, s["Condition"]); i == 1 && diff != "" {
			problems = append(problems, fmt.Sprintf("sts:TagSession is not limited to the revocation tags (-want +got):\n%s", diff))
		}
	}
	return problems
}

// The ceiling for the parameter sets below: listing on the buckets that
// AllowedBuckets names (by default those named after the stack), object
// actions on their objects, in this account, over TLS.
var ceilingCases = []struct {
	name             string
	env              samtemplate.Env
	buckets, objects []string
}{
	{
		name:    "default",
		env:     samtemplate.Env{Pseudo: map[string]string{"AWS::StackName": "credbroker"}},
		buckets: []string{"arn:aws:s3:::credbroker-*"}, objects: []string{"arn:aws:s3:::credbroker-*/*"},
	},
	{
		name:    "default in another partition",
		env:     samtemplate.Env{Pseudo: map[string]string{"AWS::StackName": "broker", "AWS::Partition": "aws-cn"}},
		buckets: []string{"arn:aws-cn:s3:::broker-*"}, objects: []string{"arn:aws-cn:s3:::broker-*/*"},
	},
	{
		name:    "a list of names and patterns",
		env:     samtemplate.Env{Params: map[string]string{"AllowedBuckets": "acme-lake-*,shared-exports"}},
		buckets: []string{"arn:*:s3:::acme-lake-*", "arn:*:s3:::shared-exports"},
		objects: []string{"arn:*:s3:::acme-lake-*/*", "arn:*:s3:::shared-exports/*"},
	},
	{
		name:    "every bucket of the account",
		env:     samtemplate.Env{Params: map[string]string{"AllowedBuckets": "*"}},
		buckets: []string{"arn:*:s3:::*"}, objects: []string{"arn:*:s3:::*/*"},
	},
}

func checkBaseRolePermissions(t *samtemplate.Template) []string {
	r, err := t.Resource("BaseRole")
	if err != nil {
		return []string{err.Error()}
	}
	// Which policy is the ceiling, and that it is the only one:
	// checkBaseRoleBoundary.
	ceiling := ref(r.Properties["PermissionsBoundary"])
	stmts, problems := iamStatements(t)
	for _, s := range stmts {
		if s.role == "BaseRole" && !s.trust && (ceiling == "" || !strings.HasPrefix(s.where, ceiling+".Statement[")) {
			problems = append(problems, fmt.Sprintf("%s: a policy besides BaseRole's ceiling %q grants it permissions", s, ceiling))
		}
	}
	objectActions := []string{"s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:PutObject"}
	for _, c := range ceilingCases {
		stack, err := t.Stack(c.env)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", c.name, err))
			continue
		}
		doc, err := stack.BaseRolePolicy()
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", c.name, err))
			continue
		}
		var policy struct{ Statement []map[string]any }
		if err := json.Unmarshal([]byte(doc), &policy); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", c.name, err))
			continue
		}
		wantCondition := map[string]any{
			"Bool":         map[string]any{"aws:SecureTransport": "true"},
			"StringEquals": map[string]any{"s3:ResourceAccount": samtemplate.LocalAccountID},
		}
		var granted []string
		for i, st := range policy.Statement {
			where := fmt.Sprintf("%s: BaseRole statement %d", c.name, i)
			if st["Effect"] != "Allow" {
				continue // a Deny only narrows
			}
			acts := sorted(strs(st["Action"]))
			granted = append(granted, acts...)
			var want []string
			switch {
			case slices.Equal(acts, []string{"s3:ListBucket"}):
				want = c.buckets
			case len(acts) > 0 && !slices.ContainsFunc(acts, func(a string) bool { return !slices.Contains(objectActions, a) }):
				want = c.objects
			default:
				problems = append(problems, fmt.Sprintf("%s: actions %v are neither s3:ListBucket alone nor object actions of the contract %v", where, acts, objectActions))
				continue
			}
			if got := strs(st["Resource"]); !slices.Equal(got, want) {
				problems = append(problems, fmt.Sprintf("%s: %v on %v, want %v", where, acts, got, want))
			}
			if !cmp.Equal(wantCondition, st["Condition"]) {
				problems = append(problems, fmt.Sprintf("%s: Condition %v, want exactly %v", where, st["Condition"], wantCondition))
			}
		}
		if got := sorted(granted); !slices.Equal(got, sorted(contractS3Actions)) {
			problems = append(problems, fmt.Sprintf("%s: BaseRole grants %v, want each of %v once", c.name, got, contractS3Actions))
		}
	}
	return problems
}

// The revoker may write BaseRole's inline policies, so only IAM can keep
// what it writes from widening a session: the ceiling is BaseRole's
// permissions boundary as well as its one policy. Then whatever an inline
// policy allows, a session reaches nothing beyond the ceiling.
func checkBaseRoleBoundary(t *samtemplate.Template) []string {
	r, err := t.Resource("BaseRole")
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	ceiling := ref(r.Properties["PermissionsBoundary"])
	if c, err := t.Resource(ceiling); ceiling == "" || err != nil || c.Type != "AWS::IAM::ManagedPolicy" {
		problems = append(problems, fmt.Sprintf("BaseRole's PermissionsBoundary is %v, want a Ref to the ceiling, a managed policy of the template", r.Properties["PermissionsBoundary"]))
	} else {
		for _, k := range []string{"Roles", "Groups", "Users"} {
			if v, ok := c.Properties[k]; ok {
				problems = append(problems, fmt.Sprintf("the ceiling %s is attached through %s %v; only BaseRole may list it", ceiling, k, v))
			}
		}
	}
	if arns := list(r.Properties["ManagedPolicyArns"]); len(arns) != 1 || ceiling == "" || ref(arns[0]) != ceiling {
		problems = append(problems, fmt.Sprintf("BaseRole's ManagedPolicyArns are %v, want only its boundary", r.Properties["ManagedPolicyArns"]))
	}
	if p, ok := r.Properties["Policies"]; ok {
		problems = append(problems, fmt.Sprintf("BaseRole has inline policies %v; the revoker's deny list is its only inline policy, written outside the template", p))
	}
	rs, err := t.Resources()
	if err != nil {
		return append(problems, err.Error())
	}
	for _, o := range rs {
		switch o.Type {
		case "AWS::IAM::RolePolicy":
			if ref(o.Properties["RoleName"]) == "BaseRole" {
				problems = append(problems, fmt.Sprintf("%s: a policy of BaseRole outside its ceiling", o.LogicalID))
			}
		case "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy":
			if slices.ContainsFunc(list(o.Properties["Roles"]), func(v any) bool { return ref(v) == "BaseRole" }) {
				problems = append(problems, fmt.Sprintf("%s: a policy attached to BaseRole besides its ceiling", o.LogicalID))
			}
		}
	}
	return problems
}

func checkOnlyCredentialsAssumes(t *samtemplate.Template) []string {
	stmts, problems := iamStatements(t)
	for _, s := range stmts {
		if s.trust || !s.allow() {
			continue
		}
		for _, a := range s.actions() {
			if !strings.HasPrefix(strings.ToLower(a), "sts:") {
				continue
			}
			if s.role != "CredentialsFunctionRole" {
				problems = append(problems, fmt.Sprintf("%s: %s granted to %q; only CredentialsFunctionRole may call STS", s, a, s.role))
				continue
			}
			for _, res := range s.resources() {
				if !cmp.Equal(res, getAtt("BaseRole", "Arn")) {
					problems = append(problems, fmt.Sprintf("%s: %s on %v, want only BaseRole", s, a, res))
				}
			}
		}
	}
	return problems
}

// The base role's revocation policies are what stop a revoked user's
// sessions; a role that could write IAM could also lift them, or widen the
// ceiling by changing the boundary or the policy itself. Only the revoker
// may touch IAM: the base role's inline policies, which the boundary keeps
// within the ceiling (checkBaseRoleBoundary), and the deny list's managed
// pages, which it may create, version, and attach to the base role only.
// The one other IAM call: the functions that arm membership expiry timers
// pass the expiry scheduler's role, to the scheduler only
// (checkExpiryPassRole).
func checkOnlyRevokerWritesIAM(t *samtemplate.Template) []string {
	onRole := []string{"iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:GetRolePolicy", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies"}
	onPages := []string{"iam:CreatePolicy", "iam:CreatePolicyVersion", "iam:DeletePolicyVersion", "iam:ListPolicyVersions", "iam:GetPolicy", "iam:GetPolicyVersion"}
	pages := map[string]any{"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/credbroker/${BaseRole}-revocations-*"}
	stmts, problems := iamStatements(t)
	for _, s := range stmts {
		if s.trust || !s.allow() {
			continue
		}
		for _, a := range s.actions() {
			if !strings.HasPrefix(strings.ToLower(a), "iam:") {
				continue
			}
			if strings.EqualFold(a, "iam:PassRole") {
				problems = append(problems, checkExpiryPassRole(s)...)
				continue
			}
			want := getAtt("BaseRole", "Arn")
			switch {
			case s.role != "RevokerFunctionRole":
				problems = append(problems, fmt.Sprintf("%s: %s granted to %q; only RevokerFunctionRole may use IAM", s, a, s.role))
				continue
			case slices.Contains(onRole, a):
			case slices.Contains(onPages, a):
				want = pages
			case a == "iam:AttachRolePolicy":
				cond := mapOf(mapOf(s.m["Condition"])["ArnLike"])["iam:PolicyARN"]
				if len(mapOf(s.m["Condition"])) != 1 || !cmp.Equal(cond, pages) {
					problems = append(problems, fmt.Sprintf("%s: %s with condition %v, want only ArnLike iam:PolicyARN on the deny list's pages", s, a, s.m["Condition"]))
				}
			default:
				problems = append(problems, fmt.Sprintf("%s: %s; the revoker may only %v on the base role, %v on its pages, and attach its pages", s, a, onRole, onPages))
				continue
			}
			for _, res := range s.resources() {
				if !cmp.Equal(res, want) {
					problems = append(problems, fmt.Sprintf("%s: %s on %v, want only %v", s, a, res, want))
				}
			}
		}
	}
	return problems
}

// expiryArmers are the roles that arm membership expiry timers.
var expiryArmers = []string{"ProjectorFunctionRole", "ReplayFunctionRole"}

// checkExpiryPassRole allows a PassRole statement only as the expiry
// timers need it: by a role that arms them, of the expiry scheduler's role
// alone (which may only invoke the projector), to the scheduler alone.
func checkExpiryPassRole(s statement) []string {
	var problems []string
	if !slices.Contains(expiryArmers, s.role) {
		problems = append(problems, fmt.Sprintf("%s: iam:PassRole granted to %q; only %v may pass a role", s, s.role, expiryArmers))
	}
	for _, res := range s.resources() {
		if !cmp.Equal(res, getAtt("ExpirySchedulerRole", "Arn")) {
			problems = append(problems, fmt.Sprintf("%s: iam:PassRole on %v, want only ExpirySchedulerRole", s, res))
		}
	}
	cond := mapOf(mapOf(s.m["Condition"])["StringEquals"])
	if svc := strs(cond["iam:PassedToService"]); !slices.Equal(svc, []string{"scheduler.amazonaws.com"}) {
		problems = append(problems, fmt.Sprintf("%s: iam:PassRole to %v, want only scheduler.amazonaws.com", s, svc))
	}
	return problems
}

// The revoker acts on PolicyChanged events whose source is the projector;
// a role that could put events under any source could make it revoke
// anyone. Each role may put events only under the sources its code uses.
func checkAuditSources(t *samtemplate.Template) []string {
	want := map[string][]string{
		"CredentialsFunctionRole": {"credbroker.credentials"},
		"ProjectorFunctionRole":   {"credbroker.projector"},
		"ReplayFunctionRole":      {"credbroker.projector", "credbroker.replay"}, // its recomputes are the projector's
		"RevokerFunctionRole":     {"credbroker.revoker"},
	}
	stmts, problems := iamStatements(t)
	for _, s := range stmts {
		if s.trust || !s.allow() || !slices.ContainsFunc(s.actions(), func(a string) bool { return strings.EqualFold(a, "events:PutEvents") || a == "events:*" }) {
			continue
		}
		sources, ok := want[s.role]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: %q may put audit events; no role but the functions' may", s, s.role))
			continue
		}
		cond := mapOf(mapOf(s.m["Condition"])["StringEquals"])
		if got := sorted(strs(cond["events:source"])); !slices.Equal(got, sources) {
			problems = append(problems, fmt.Sprintf("%s: events:PutEvents with events:source %v, want exactly %v", s, got, sources))
		}
	}
	return problems
}

// tableAccess is one DynamoDB action a role's statement allows, and the
// partition keys and attributes its conditions confine it to.
type tableAccess struct {
	s      statement
	action string
	keys   []string // dynamodb:LeadingKeys, StringEquals then StringLike
	attrs  []string // dynamodb:Attributes, sorted
}

func tableAccesses(t *samtemplate.Template, role string) ([]tableAccess, []string) {
	stmts, problems := iamStatements(t)
	var out []tableAccess
	for _, s := range stmts {
		if s.trust || !s.allow() || s.role != role {
			continue
		}
		cond := mapOf(s.m["Condition"])
		equals := mapOf(cond["ForAllValues:StringEquals"])
		for _, a := range s.actions() {
			if strings.HasPrefix(strings.ToLower(a), "dynamodb:") {
				out = append(out, tableAccess{s: s, action: a, attrs: sorted(strs(equals["dynamodb:Attributes"])),
					keys: append(strs(equals["dynamodb:LeadingKeys"]), strs(mapOf(cond["ForAllValues:StringLike"])["dynamodb:LeadingKeys"])...)})
			}
		}
	}
	return out, problems
}

// The revoker holds IAM write access to the base role; its table access is
// kept to the deny-list item and the cutoff attributes of users' items, so
// it cannot also write anyone's grants.
func checkRevokerTableAccess(t *samtemplate.Template) []string {
	accesses, problems := tableAccesses(t, "RevokerFunctionRole")
	for _, ta := range accesses {
		s, a, keys, attrs := ta.s, ta.action, ta.keys, ta.attrs
		switch a {
		case "dynamodb:PutItem":
			if !slices.Equal(keys, []string{"REVOCATIONS"}) {
				problems = append(problems, fmt.Sprintf("%s: %s on partition keys %v, want only REVOCATIONS", s, a, keys))
			}
		case "dynamodb:GetItem":
			// The deny list, or a user's cutoff attributes only.
			cond := mapOf(s.m["Condition"])
			sel := fmt.Sprint(mapOf(cond["StringEqualsIfExists"])["dynamodb:Select"], mapOf(cond["StringEquals"])["dynamodb:Select"])
			cutoffOnly := slices.Equal(keys, []string{"USER#*"}) && slices.Equal(attrs, []string{"claim", "pk", "revokedBefore", "sk", "userId"}) && strings.Contains(sel, "SPECIFIC_ATTRIBUTES")
			if !slices.Equal(keys, []string{"REVOCATIONS"}) && !cutoffOnly {
				problems = append(problems, fmt.Sprintf("%s: %s on partition keys %v, attributes %v, select %s: want REVOCATIONS, or USER#* with the cutoff's attributes only", s, a, keys, attrs, sel))
			}
		case "dynamodb:UpdateItem":
			if !slices.Equal(keys, []string{"USER#*"}) || !slices.Equal(attrs, []string{"claim", "pk", "revokedBefore", "sk", "userId"}) {
				problems = append(problems, fmt.Sprintf("%s: %s on partition keys %v and attributes %v, want USER#* and the cutoff's attributes", s, a, keys, attrs))
			}
		default:
			problems = append(problems, fmt.Sprintf("%s: %s; the revoker needs only GetItem, PutItem and UpdateItem", s, a))
		}
	}
	return problems
}

// The credentials function reads users' policy items and, of the deny
// list, only the fallback's cutoff: it has no use for who was revoked.
func checkCredentialsTableAccess(t *samtemplate.Template) []string {
	accesses, problems := tableAccesses(t, "CredentialsFunctionRole")
	for _, ta := range accesses {
		switch {
		case ta.action != "dynamodb:GetItem":
			problems = append(problems, fmt.Sprintf("%s: %s; the credentials function needs only GetItem", ta.s, ta.action))
		case slices.Equal(ta.keys, []string{"USER#*"}):
		case slices.Equal(ta.keys, []string{"REVOCATIONS"}) && slices.Equal(ta.attrs, []string{"allBefore", "pk", "sk"}):
		default:
			problems = append(problems, fmt.Sprintf("%s: %s on partition keys %v, attributes %v; want USER#*, or REVOCATIONS with allBefore (and its key) only", ta.s, ta.action, ta.keys, ta.attrs))
		}
	}
	return problems
}

// A bulk change narrows many users at once: the revoker must take them in
// batches from the revocation queue (a few IAM writes, not one a user),
// with at most two runs at once (little contention on the deny list), as
// the local stack feeds it (localstack.BatchSize, Window, Concurrency,
// MaxReceives), and keep what fails: partial batch failures, and the
// queue's dead letters in the revoker's dead-letter queue, whose alarm
// calls for the operator.
func checkRevokerQueue(t *samtemplate.Template) []string {
	fn, err := t.Resource("RevokerFunction")
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	ev := mapOf(mapOf(mapOf(fn.Properties["Events"])["Revocations"])["Properties"])
	want := map[string]any{
		"Queue": getAtt("RevocationQueue", "Arn"), "BatchSize": localstack.BatchSize,
		"MaximumBatchingWindowInSeconds": int(localstack.Window / time.Second), "FunctionResponseTypes": []any{"ReportBatchItemFailures"},
		"ScalingConfig": map[string]any{"MaximumConcurrency": localstack.Concurrency},
	}
	if diff := cmp.Diff(want, ev); diff != "" {
		problems = append(problems, "RevokerFunction's Revocations event source (-want +got):\n"+diff)
	}
	q, err := t.Resource("RevocationQueue")
	if err != nil {
		return append(problems, err.Error())
	}
	redrive := mapOf(q.Properties["RedrivePolicy"])
	if !cmp.Equal(redrive["deadLetterTargetArn"], getAtt("RevokerDLQ", "Arn")) || redrive["maxReceiveCount"] != localstack.MaxReceives {
		problems = append(problems, fmt.Sprintf("RevocationQueue's RedrivePolicy %v: want RevokerDLQ after %d receives", redrive, localstack.MaxReceives))
	}
	if v, _ := q.Properties["VisibilityTimeout"].(int); v < 6*fn.Properties["Timeout"].(int) {
		problems = append(problems, fmt.Sprintf("RevocationQueue's VisibilityTimeout %v is under six times the revoker's timeout", q.Properties["VisibilityTimeout"]))
	}
	rule, err := t.Resource("RevokerRule")
	if err != nil {
		return append(problems, err.Error())
	}
	for _, target := range list(rule.Properties["Targets"]) {
		if !cmp.Equal(mapOf(target)["Arn"], getAtt("RevocationQueue", "Arn")) {
			problems = append(problems, fmt.Sprintf("RevokerRule targets %v, not the revocation queue", mapOf(target)["Arn"]))
		}
	}
	return problems
}

// checkFanoutQueue holds the page queue's event source to the bounds the
// local stack feeds pages with (and BenchmarkFanoutModel models): one page
// per invocation, at most ProjectorWorkerConcurrency at once (default the
// local stack's PageWorkers), a page that keeps failing kept in FanoutDLQ.
func checkFanoutQueue(t *samtemplate.Template) []string {
	fn, err := t.Resource("ProjectorFunction")
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	ev := mapOf(mapOf(mapOf(fn.Properties["Events"])["FanoutPages"])["Properties"])
	want := map[string]any{
		"Queue": getAtt("FanoutQueue", "Arn"), "BatchSize": 1, "FunctionResponseTypes": []any{"ReportBatchItemFailures"},
		"ScalingConfig": map[string]any{"MaximumConcurrency": map[string]any{"Ref": "ProjectorWorkerConcurrency"}},
	}
	if diff := cmp.Diff(want, ev); diff != "" {
		problems = append(problems, "ProjectorFunction's FanoutPages event source (-want +got):\n"+diff)
	}
	if p := mapOf(t.Section("Parameters")["ProjectorWorkerConcurrency"]); p["Default"] != localstack.PageWorkers || p["MaxValue"] != 50 {
		problems = append(problems, fmt.Sprintf("ProjectorWorkerConcurrency %v: want default %d, at most 50", p, localstack.PageWorkers))
	}
	q, err := t.Resource("FanoutQueue")
	if err != nil {
		return append(problems, err.Error())
	}
	redrive := mapOf(q.Properties["RedrivePolicy"])
	if !cmp.Equal(redrive["deadLetterTargetArn"], getAtt("FanoutDLQ", "Arn")) || redrive["maxReceiveCount"] != localstack.PageMaxReceives {
		problems = append(problems, fmt.Sprintf("FanoutQueue's RedrivePolicy %v: want FanoutDLQ after %d receives", redrive, localstack.PageMaxReceives))
	}
	if v, _ := q.Properties["VisibilityTimeout"].(int); v < 6*fn.Properties["Timeout"].(int) {
		problems = append(problems, fmt.Sprintf("FanoutQueue's VisibilityTimeout %v is under six times the projector's timeout", q.Properties["VisibilityTimeout"]))
	}
	return problems
}

// SAM's generated roles carry AWS managed policies (logs and X-Ray on every
// resource): every function names its own role, and no role but BaseRole
// (whose one managed policy is its ceiling, checkBaseRoleBoundary) has
// managed policies, so every permission of the functions and the scheduler
// is written out in the template for the rules above.
func checkFunctionRoles(t *samtemplate.Template) []string {
	rs, err := t.Resources()
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	for _, r := range rs {
		switch {
		case r.Type == "AWS::IAM::Role" && r.LogicalID != "BaseRole":
			if _, ok := r.Properties["ManagedPolicyArns"]; ok {
				problems = append(problems, r.LogicalID+" has ManagedPolicyArns")
			}
		case isFunction(r):
			if !cmp.Equal(r.Properties["Role"], getAtt(roleOf(r.LogicalID), "Arn")) {
				problems = append(problems, fmt.Sprintf("%s: Role is %v, want its own %s", r.LogicalID, r.Properties["Role"], roleOf(r.LogicalID)))
			}
			if _, ok := r.Properties["Policies"]; ok {
				problems = append(problems, r.LogicalID+": SAM Policies are ignored with an explicit Role; put them in the role")
			}
		}
	}
	return problems
}

// ---------------------------------------------------------------- streams

func checkStreamMappings(t *samtemplate.Template) []string {
	rs, err := t.Resources()
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	projectorOnMembership := false
	checkProps := func(where string, p map[string]any) {
		if !slices.Contains(strs(p["FunctionResponseTypes"]), "ReportBatchItemFailures") {
			problems = append(problems, where+": FunctionResponseTypes lacks ReportBatchItemFailures")
		}
		if p["BisectBatchOnFunctionError"] != true {
			problems = append(problems, where+": BisectBatchOnFunctionError is not true")
		}
		if n, ok := p["MaximumRetryAttempts"].(int); !ok || n < 0 || n > 10000 {
			problems = append(problems, fmt.Sprintf("%s: MaximumRetryAttempts %v is not a finite count", where, p["MaximumRetryAttempts"]))
		}
		if n, ok := p["MaximumRecordAgeInSeconds"].(int); !ok || n < 60 || n > 604800 {
			problems = append(problems, fmt.Sprintf("%s: MaximumRecordAgeInSeconds %v is not a finite age", where, p["MaximumRecordAgeInSeconds"]))
		}
		if mapOf(mapOf(p["DestinationConfig"])["OnFailure"])["Destination"] == nil {
			problems = append(problems, where+": no DestinationConfig.OnFailure.Destination")
		}
	}
	for _, r := range rs {
		switch r.Type {
		case "AWS::Lambda::EventSourceMapping":
			if arn := r.Properties["EventSourceArn"]; strings.Contains(fmt.Sprint(arn), "Stream") {
				checkProps(r.LogicalID, r.Properties)
			}
		case "AWS::Serverless::Function":
			events := mapOf(r.Properties["Events"])
			for _, name := range slices.Sorted(maps.Keys(events)) {
				ev := mapOf(events[name])
				if typ := ev["Type"]; typ != "DynamoDB" && typ != "Kinesis" {
					continue
				}
				p := mapOf(ev["Properties"])
				checkProps(r.LogicalID+".Events."+name, p)
				if r.LogicalID == "ProjectorFunction" && cmp.Equal(p["Stream"], getAtt("MembershipTable", "StreamArn")) {
					projectorOnMembership = true
				}
			}
		}
	}
	if !projectorOnMembership {
		problems = append(problems, "ProjectorFunction has no DynamoDB event on MembershipTable's stream")
	}
	return problems
}

// ---------------------------------------------------------------- data

func checkTables(t *samtemplate.Template) []string {
	var problems []string
	protectData := map[string]any{"Fn::Equals": []any{map[string]any{"Ref": "DeletionProtection"}, "true"}}
	if !cmp.Equal(protectData, t.Section("Conditions")["ProtectData"]) {
		problems = append(problems, fmt.Sprintf("condition ProtectData is %v, want %v", t.Section("Conditions")["ProtectData"], protectData))
	}
	fromParameter := []any{
		map[string]any{"Fn::If": []any{"ProtectData", true, false}},
		map[string]any{"Ref": "DeletionProtection"},
	}
	// The source of truth outlives the stack; the derived policy table goes
	// with it, so deletion protection on it would only make the deletion
	// (and the rollback of a failed first create) fail.
	for id, policy := range map[string]string{"MembershipTable": "Retain", "PolicyTable": "Delete"} {
		r, err := t.Resource(id)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if r.DeletionPolicy != policy || r.UpdateReplacePolicy != policy {
			problems = append(problems, fmt.Sprintf("%s: DeletionPolicy %q, UpdateReplacePolicy %q, want %s", id, r.DeletionPolicy, r.UpdateReplacePolicy, policy))
		}
		switch dp := r.Properties["DeletionProtectionEnabled"]; {
		case policy == "Retain" && !slices.ContainsFunc(fromParameter, func(w any) bool { return cmp.Equal(w, dp) }):
			problems = append(problems, fmt.Sprintf("%s: DeletionProtectionEnabled %v does not follow the DeletionProtection parameter", id, dp))
		case policy == "Delete" && dp != nil && dp != false:
			problems = append(problems, fmt.Sprintf("%s: DeletionProtectionEnabled %v on a table that goes with the stack", id, dp))
		}
	}
	for _, id := range []string{"MembershipTable", "PolicyTable"} {
		r, err := t.Resource(id)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		p := r.Properties
		if p["BillingMode"] != "PAY_PER_REQUEST" {
			problems = append(problems, fmt.Sprintf("%s: BillingMode %v, want PAY_PER_REQUEST", id, p["BillingMode"]))
		}
		if mapOf(p["PointInTimeRecoverySpecification"])["PointInTimeRecoveryEnabled"] != true {
			problems = append(problems, id+": point-in-time recovery is off")
		}
		if mapOf(p["SSESpecification"])["SSEEnabled"] != true {
			problems = append(problems, id+": SSESpecification.SSEEnabled is not true")
		}
	}
	for id, want := range map[string]string{"MembershipTable": "NEW_AND_OLD_IMAGES", "PolicyTable": ""} {
		def, err := t.Table(id)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if string(def.StreamViewType) != want {
			problems = append(problems, fmt.Sprintf("%s: stream view type %q, want %q", id, def.StreamViewType, want))
		}
	}
	return problems
}

// ---------------------------------------------------------------- functions

func checkFunctions(t *samtemplate.Template) []string {
	rs, err := t.Resources()
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	var seen []string
	for _, r := range rs {
		if r.Type == "AWS::Lambda::Function" {
			problems = append(problems, r.LogicalID+": a plain AWS::Lambda::Function escapes these rules; use AWS::Serverless::Function")
		}
		if r.Type != "AWS::Serverless::Function" {
			continue
		}
		seen = append(seen, r.LogicalID)
		fn, err := t.Function(r.LogicalID)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		p := fn.Properties
		want := map[string]any{
			"Runtime":       "provided.al2023",
			"Architectures": []any{"arm64"},
			"Handler":       "bootstrap",
			"Tracing":       "Active",
			"CodeUri":       "functions/" + functionDirs[r.LogicalID] + "/",
		}
		for _, k := range slices.Sorted(maps.Keys(want)) {
			if !cmp.Equal(want[k], p[k]) {
				problems = append(problems, fmt.Sprintf("%s: %s is %v, want %v", r.LogicalID, k, p[k], want[k]))
			}
		}
		if fn.Metadata["BuildMethod"] != "makefile" {
			problems = append(problems, fmt.Sprintf("%s: Metadata.BuildMethod is %v, want makefile", r.LogicalID, fn.Metadata["BuildMethod"]))
		}
	}
	if want := sorted(slices.Collect(maps.Keys(functionDirs))); !slices.Equal(seen, want) {
		problems = append(problems, fmt.Sprintf("functions are %v, want %v", seen, want))
	}
	return problems
}

// ---------------------------------------------------------------- audit, API

func checkHTTPAuth(t *samtemplate.Template) []string {
	api, err := t.Resource("HttpApi")
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	auth := mapOf(api.Properties["Auth"])
	jwt := map[string]bool{}
	for name, a := range mapOf(auth["Authorizers"]) {
		am := mapOf(a)
		cfg := mapOf(am["JwtConfiguration"])
		if cfg == nil {
			continue
		}
		ok := true
		// Which pool and region: checkTokenTrust.
		if !strings.Contains(fmt.Sprint(cfg["issuer"]), "https://cognito-idp.") {
			problems = append(problems, fmt.Sprintf("authorizer %s: issuer %v is not a Cognito user pool", name, cfg["issuer"]))
			ok = false
		}
		if cfg["audience"] == nil {
			problems = append(problems, fmt.Sprintf("authorizer %s: no audience (client ids)", name))
			ok = false
		}
		if am["IdentitySource"] != "$request.header.Authorization" {
			problems = append(problems, fmt.Sprintf("authorizer %s: IdentitySource %v", name, am["IdentitySource"]))
			ok = false
		}
		jwt[name] = ok
	}
	def, _ := auth["DefaultAuthorizer"].(string)
	if !jwt[def] {
		problems = append(problems, fmt.Sprintf("HttpApi DefaultAuthorizer %q is not a valid Cognito JWT authorizer", def))
	}
	rs, err := t.Resources()
	if err != nil {
		return append(problems, err.Error())
	}
	route := false
	for _, r := range rs {
		if r.Type != "AWS::Serverless::Function" {
			continue
		}
		events := mapOf(r.Properties["Events"])
		for _, name := range slices.Sorted(maps.Keys(events)) {
			ev := mapOf(events[name])
			if ev["Type"] != "HttpApi" {
				continue
			}
			p := mapOf(ev["Properties"])
			authorizer := def
			if a, ok := mapOf(p["Auth"])["Authorizer"].(string); ok {
				authorizer = a
			}
			if !jwt[authorizer] {
				problems = append(problems, fmt.Sprintf("%s.Events.%s: route authorizer %q is not a Cognito JWT authorizer", r.LogicalID, name, authorizer))
			}
			if r.LogicalID == "CredentialsFunction" && p["Path"] == "/auths/resources" && p["Method"] == "GET" && ref(p["ApiId"]) == "HttpApi" {
				route = true
			}
		}
	}
	if !route {
		problems = append(problems, "CredentialsFunction has no GET /auths/resources route on HttpApi")
	}
	return problems
}

// ---------------------------------------------------------------- helpers

func list(v any) []any {
	switch x := v.(type) {
	case nil:
		return nil
	case []any:
		return x
	default:
		return []any{x}
	}
}

// strs returns v's literal strings, or nil if any element is not one.
func strs(v any) []string {
	var out []string
	for _, e := range list(v) {
		s, ok := e.(string)
		if !ok {
			return nil
		}
		out = append(out, s)
	}
	return out
}

func mapOf(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func intrinsicArg(v any, name string) string {
	n, arg, ok := samtemplate.IsIntrinsic(v)
	if !ok || n != name {
		return ""
	}
	s, _ := arg.(string)
	return s
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
