package cli_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/awsconfig"
	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/cli"
	"github.com/credbroker/credbroker/internal/exitcode"
	"github.com/credbroker/credbroker/internal/stackfile"
)

// awsAnswer is an error answer of AWS as the SDK returns it: the API
// error under the HTTP response under the operation, with what the
// command's adapters wrap around it (ddbstore classifies it).
func awsAnswer(service, operation string, status int, code, message string) error {
	var err error = &awshttp.ResponseError{RequestID: "req-1", ResponseError: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
		Err:      &smithy.GenericAPIError{Code: code, Message: message},
	}}
	if status >= 500 || code == "ProvisionedThroughputExceededException" {
		err = &retry.MaxAttemptsError{Attempt: awsconfig.MaxAttempts, Err: err}
	}
	return broker.Wrap(broker.Internal, "scan", &smithy.OperationError{ServiceID: service, OperationName: operation, Err: err})
}

// Every failure of AWS under an admin command names the next step, with
// the exit status of the documented table.
func TestAWSFailuresNameTheNextStep(t *testing.T) {
	// A real SDK call to a port nothing listens on.
	_, refused := dynamodb.NewFromConfig(awsconfig.Local("us-east-1", "http://127.0.0.1:1")).ListTables(t.Context(), &dynamodb.ListTablesInput{})
	if refused == nil {
		t.Fatal("a call to a closed port succeeded")
	}
	local := cli.Target{Local: true, Stack: stackfile.Stack{MembershipTable: "m", PolicyTable: "p"}}
	deployed := cli.Target{Stack: stackfile.Stack{Region: "eu-west-1", MembershipTable: "m", PolicyTable: "p", UserPoolID: "eu-west-1_x"}}
	const (
		renew = "; renew them if they expired (`aws sso login`), and check which ones the command uses (AWS_PROFILE, AWS_ACCESS_KEY_ID) with `aws sts get-caller-identity`"
		again = ", still after the SDK's retries; this passes: run the command again in a minute"
	)
	type outcome struct {
		Code    int
		Message string
	}
	type test struct {
		name   string
		target cli.Target
		err    error
		want   outcome
	}
	tests := []test{
		{"a local stack that is not running is told to start", local, refused, outcome{exitcode.Failure,
			"cannot reach DynamoDB at http://127.0.0.1:1/: connect: connection refused; is the local stack running? Start it with `make run`"}},
		{"a deployed stack out of reach is told to check the region and the network", deployed, refused, outcome{exitcode.Failure,
			"cannot reach DynamoDB at http://127.0.0.1:1/: connect: connection refused; check --region (or CREDBROKER_REGION) and the network"}},
		{"a table the local stack lacks asks for the running stack's file", local,
			awsAnswer("DynamoDB", "Scan", 400, "ResourceNotFoundException", "Requested resource not found"), outcome{exitcode.Usage,
				`DynamoDB has no membershipTable "m" or policyTable "p" (ResourceNotFoundException: Requested resource not found); ` +
					"is the stack file the running local stack's? `make run` writes it to .local/stack.json"}},
		{"a table a deployed stack lacks names the tables and how to name others", deployed,
			awsAnswer("DynamoDB", "Scan", 400, "ResourceNotFoundException", "Requested resource not found"), outcome{exitcode.Usage,
				`DynamoDB has no membershipTable "m" or policyTable "p" (ResourceNotFoundException: Requested resource not found); ` +
					"check --membership-table or CREDBROKER_MEMBERSHIP_TABLE (MembershipTableName output), --policy-table or CREDBROKER_POLICY_TABLE (PolicyTableName output), " +
					"--region or CREDBROKER_REGION (see `credbroker help`)"}},
		{"a user pool a deployed stack lacks is named", deployed,
			awsAnswer("Cognito Identity Provider", "AdminGetUser", 400, "ResourceNotFoundException", "User pool eu-west-1_x does not exist."), outcome{exitcode.Usage,
				`Cognito Identity Provider has no userPoolId "eu-west-1_x" (ResourceNotFoundException: User pool eu-west-1_x does not exist.); ` +
					"check --user-pool-id or CREDBROKER_USER_POOL_ID (UserPoolId output), --region or CREDBROKER_REGION (see `credbroker help`)"}},
		{"a denied call keeps AWS's words on the missing permission and points at the list", deployed,
			awsAnswer("DynamoDB", "Scan", 400, "AccessDeniedException", "User: arn:aws:sts::123456789012:assumed-role/ops/me is not authorized to perform: dynamodb:Scan on resource: arn:aws:dynamodb:eu-west-1:123456789012:table/p"),
			outcome{exitcode.Failure, "DynamoDB denied the call (AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/ops/me is not authorized to perform: dynamodb:Scan on resource: arn:aws:dynamodb:eu-west-1:123456789012:table/p); " +
				"the command needs the permissions docs/operations.md \"Which stack\" lists, for the identity `aws sts get-caller-identity` shows (AWS_PROFILE)"}},
		{"throttling is transient: run it again", deployed,
			awsAnswer("DynamoDB", "Scan", 400, "ProvisionedThroughputExceededException", "The level of configured provisioned throughput for the table was exceeded."), outcome{exitcode.Failure,
				"DynamoDB is throttling or failing the calls (ProvisionedThroughputExceededException: The level of configured provisioned throughput for the table was exceeded.)" + again}},
		{"a 5xx is transient: run it again", deployed,
			awsAnswer("DynamoDB", "Scan", 500, "InternalServerError", "Internal server error"), outcome{exitcode.Failure,
				"DynamoDB is throttling or failing the calls (InternalServerError: Internal server error)" + again}},
		{"an error AWS did not cause stays as it was", deployed, cli.Usagef("--user is required"), outcome{exitcode.Usage, "--user is required"}},
		{"an interrupted command stays as it was", deployed,
			fmt.Errorf("scan: %w", &url.Error{Op: "Post", URL: "https://dynamodb.eu-west-1.amazonaws.com/", Err: context.Canceled}),
			outcome{exitcode.Failure, `scan: Post "https://dynamodb.eu-west-1.amazonaws.com/": context canceled`}},
	}
	// AWS refusing the credentials themselves, whatever the reason.
	for _, c := range []struct{ outcome, code, message string }{
		{"expired credentials are told to renew", "ExpiredTokenException", "The security token included in the request is expired"},
		{"unknown credentials are told which to check", "UnrecognizedClientException", "The security token included in the request is invalid."},
		{"a badly signed call is told which credentials to check", "InvalidSignatureException", "The request signature we calculated does not match the signature you provided."},
	} {
		tests = append(tests, test{c.outcome, deployed, awsAnswer("DynamoDB", "GetItem", 400, c.code, c.message),
			outcome{exitcode.Failure, "DynamoDB refused the AWS credentials (" + c.code + ": " + c.message + ")" + renew}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.target.AWSError(tt.err)
			got := outcome{cli.ExitCode(err), cli.Message(err)}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("outcome (-want +got):\n%s", diff)
			}
		})
	}
	if err := local.AWSError(nil); err != nil {
		t.Errorf("no error became %v", err)
	}
}
