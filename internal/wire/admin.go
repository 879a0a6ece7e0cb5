package wire

import (
	"context"
	"io"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/credbroker/credbroker/internal/ddbstore"
	"github.com/credbroker/credbroker/internal/projector"
	"github.com/credbroker/credbroker/internal/userpool"
)

// AdminConfig names the parts of a stack the operators' commands
// (credbroker admin) work on; a command leaves empty what it does not use.
type AdminConfig struct {
	MembershipTable, PolicyTable string
	// Partition is the ARN partition of the stack's policies.
	Partition  string
	UserPoolID string
}

// Admin is what the operators' commands read and write with.
type Admin struct {
	Store *ddbstore.Store
	// Projector computes what the membership table grants a user, as the
	// projector function does; it has no auditor and arms no timer, and
	// the commands only compute with it.
	Projector *projector.Projector
	Users     *userpool.Directory
}

// NewAdmin builds the operators' services. It makes no AWS call.
func NewAdmin(cfg AdminConfig, awsCfg aws.Config) *Admin {
	store := &ddbstore.Store{Client: dynamodb.NewFromConfig(awsCfg), MembershipTable: cfg.MembershipTable, PolicyTable: cfg.PolicyTable}
	return &Admin{
		Store:     store,
		Projector: newProjector(store, nil, cfg.Partition, nil, slog.New(slog.NewTextHandler(io.Discard, nil))),
		Users:     &userpool.Directory{Client: cip.NewFromConfig(awsCfg), PoolID: cfg.UserPoolID},
	}
}

// Lambda is a Lambda client: AWS's, or the local stack's Lambda API at
// endpoint.
func Lambda(awsCfg aws.Config, endpoint string, optFns ...func(*lambda.Options)) *lambda.Client {
	return lambda.NewFromConfig(awsCfg, append([]func(*lambda.Options){func(o *lambda.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	}}, optFns...)...)
}

// MembershipStreamARN reads the membership table's stream from
// DescribeTable, for a replay that is not given it.
func MembershipStreamARN(ctx context.Context, awsCfg aws.Config, membershipTable string) (string, error) {
	return ddbstore.Tables{Client: dynamodb.NewFromConfig(awsCfg), MembershipTable: membershipTable}.MembershipStreamARN(ctx)
}
