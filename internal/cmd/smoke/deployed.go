package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"

	"github.com/credbroker/credbroker/internal/awsconfig"
	"github.com/credbroker/credbroker/internal/stackfile"
)

// describeStacks is the CloudFormation call the check needs.
type describeStacks interface {
	DescribeStacks(ctx context.Context, in *cloudformation.DescribeStacksInput, optFns ...func(*cloudformation.Options)) (*cloudformation.DescribeStacksOutput, error)
}

// openDeployed reads the stack's outputs; the operator's AWS
// configuration makes the admin calls and real S3 serves the user's.
// Not run against AWS by the project's tests (docs/operations.md "Smoke check").
func openDeployed(ctx context.Context, o options) (*target, error) {
	var opts []func(*config.LoadOptions) error
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	cfg, err := awsconfig.Load(ctx, opts...)
	if err != nil {
		return nil, err
	}
	info, err := stackOutputs(ctx, cloudformation.NewFromConfig(cfg), o.StackName)
	if err != nil {
		return nil, err
	}
	info.Region = cfg.Region
	return &target{name: o.StackName, info: info, admin: cfg, s3: cfg, bucket: o.Bucket}, nil
}

// stackOutputs reads what the check needs from the stack's outputs
// (template.yaml, Outputs).
func stackOutputs(ctx context.Context, api describeStacks, name string) (stackfile.Stack, error) {
	out, err := api.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(name)})
	if err != nil {
		return stackfile.Stack{}, fmt.Errorf("describe stack %s: %w", name, err)
	}
	if len(out.Stacks) != 1 {
		return stackfile.Stack{}, fmt.Errorf("describe stack %s: %d stacks in the answer", name, len(out.Stacks))
	}
	st := out.Stacks[0]
	if s := string(st.StackStatus); !strings.HasSuffix(s, "_COMPLETE") || strings.Contains(s, "ROLLBACK") || strings.HasPrefix(s, "DELETE") {
		return stackfile.Stack{}, fmt.Errorf("stack %s is %s: deploy it first", name, s)
	}
	got := map[string]string{}
	for _, op := range st.Outputs {
		got[aws.ToString(op.OutputKey)] = aws.ToString(op.OutputValue)
	}
	info := stackfile.Stack{
		APIURL: got["ApiUrl"], MembershipTable: got["MembershipTableName"], PolicyTable: got["PolicyTableName"],
		UserPoolID: got["UserPoolId"], UserPoolClientID: got["UserPoolClientId"], BaseRoleARN: got["BaseRoleArn"],
		EventBusName: got["AuditBusName"],
	}
	var missing []string
	for _, f := range []struct{ key, value string }{
		{"ApiUrl", info.APIURL}, {"MembershipTableName", info.MembershipTable},
		{"UserPoolId", info.UserPoolID}, {"UserPoolClientId", info.UserPoolClientID},
	} {
		if f.value == "" {
			missing = append(missing, f.key)
		}
	}
	if len(missing) > 0 {
		return stackfile.Stack{}, fmt.Errorf("stack %s lacks the outputs %s", name, strings.Join(missing, ", "))
	}
	return info, nil
}
