// Package ddbstore adapts DynamoDB to the broker's store interfaces: the
// membership table (read only) and the policy table (policy items, the
// member index and fan-out checkpoints).
package ddbstore

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/credbroker/credbroker/internal/backoff"
	"github.com/credbroker/credbroker/internal/broker"
)

// API is the part of the DynamoDB client the store uses.
type API interface {
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	Scan(context.Context, *dynamodb.ScanInput, ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
	BatchGetItem(context.Context, *dynamodb.BatchGetItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	BatchWriteItem(context.Context, *dynamodb.BatchWriteItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
	TransactWriteItems(context.Context, *dynamodb.TransactWriteItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

// Store implements broker.SourceReader, broker.PolicyStore,
// broker.MemberIndex and broker.Checkpoints.
type Store struct {
	Client          API
	MembershipTable string
	PolicyTable     string
}

var (
	_ broker.SourceReader = (*Store)(nil)
	_ broker.PolicyStore  = (*Store)(nil)
	_ broker.MemberIndex  = (*Store)(nil)
	_ broker.Checkpoints  = (*Store)(nil)
)

// classify gives an SDK error its broker kind. The SDK has already retried
// what its retryer retries; what is left and may pass is Transient.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return broker.Wrap(broker.Conflict, op, err)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return broker.Wrap(broker.Transient, op, err)
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
			"InternalServerError", "ServiceUnavailable", "LimitExceededException", "TransactionConflictException":
			return broker.Wrap(broker.Transient, op, err)
		case "ValidationException":
			return broker.Wrap(broker.Invalid, op, err)
		case "ResourceNotFoundException", "AccessDeniedException", "UnrecognizedClientException":
			return broker.Wrap(broker.Internal, op, err)
		}
		if apiErr.ErrorFault() == smithy.FaultServer {
			return broker.Wrap(broker.Transient, op, err)
		}
		return broker.Wrap(broker.Internal, op, err)
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return broker.Wrap(broker.Transient, op, err)
	}
	// Unknown failures are retried rather than dropped: nothing is lost by
	// trying again, and the request path answers 503 either way.
	return broker.Wrap(broker.Transient, op, err)
}

// Batch calls leave work unprocessed under load; it is retried with jittered
// exponential backoff, bounded so that a stuck table surfaces as Transient.
const maxBatchAttempts = 8

func wait(ctx context.Context, attempt int) error {
	return backoff.Sleep(ctx, backoff.Jitter(attempt, 20*time.Millisecond, time.Second))
}

// str builds a string attribute value.
func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func key(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": str(pk), "sk": str(sk)}
}

func getS(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}
