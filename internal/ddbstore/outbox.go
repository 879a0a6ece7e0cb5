package ddbstore

import (
	"context"
	"errors"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/credbroker/credbroker/internal/broker"
)

// Clearing a policy item's outbox once its PolicyChanged events are on
// the bus: one item, or a hundred in one transaction.

// ClearOutbox removes the outbox on condition that c is still the newest
// claim.
func (s *Store) ClearOutbox(ctx context.Context, c broker.Claim) error {
	u := clearUpdate(s.PolicyTable, c)
	_, err := s.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: u.TableName, Key: u.Key, UpdateExpression: u.UpdateExpression, ConditionExpression: u.ConditionExpression,
		ExpressionAttributeNames: u.ExpressionAttributeNames, ExpressionAttributeValues: u.ExpressionAttributeValues,
	})
	return classify("clear outbox", err)
}

func clearUpdate(table string, c broker.Claim) *types.Update {
	return &types.Update{
		TableName:                 aws.String(table),
		Key:                       userKey(c.UserID),
		UpdateExpression:          aws.String("REMOVE #out"),
		ConditionExpression:       aws.String("#claim = :t"),
		ExpressionAttributeNames:  pick(policyNames, "#out", "#claim"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":t": &types.AttributeValueMemberN{Value: strconv.FormatInt(c.Ticket, 10)}},
	}
}

// transactMax is DynamoDB's limit of actions in one TransactWriteItems.
const transactMax = 100

// ClearOutboxes clears the outboxes of up to 100 claims per call, in a
// transaction of conditional updates: the same condition as ClearOutbox's,
// paid once per hundred users instead of once per user. A transaction
// fails whole when one condition does; the claims whose condition failed
// (voided by a newer claim, whose holder owns the outbox) are dropped and
// the rest cleared again; a conflict with another transaction is retried.
func (s *Store) ClearOutboxes(ctx context.Context, claims []broker.Claim) error {
	const op = "clear outboxes"
	for start := 0; start < len(claims); start += transactMax {
		left := claims[start:min(start+transactMax, len(claims))]
		for attempt := 0; len(left) > 0; attempt++ {
			if attempt == maxBatchAttempts {
				return broker.Errorf(broker.Transient, op, "%d outboxes left after %d attempts", len(left), attempt)
			}
			if attempt > 0 {
				if err := wait(ctx, attempt); err != nil {
					return classify(op, err)
				}
			}
			items := make([]types.TransactWriteItem, len(left))
			for i, c := range left {
				items[i] = types.TransactWriteItem{Update: clearUpdate(s.PolicyTable, c)}
			}
			_, err := s.Client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
			if err == nil {
				break
			}
			var canceled *types.TransactionCanceledException
			if !errors.As(err, &canceled) || len(canceled.CancellationReasons) != len(left) {
				return classify(op, err)
			}
			var retry []broker.Claim
			for i, r := range canceled.CancellationReasons {
				if aws.ToString(r.Code) != "ConditionalCheckFailed" {
					retry = append(retry, left[i])
				}
			}
			left = retry
		}
	}
	return nil
}
