package ddbstore

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/credbroker/credbroker/internal/broker"
)

// allBeforeAttr is the deny-list item's copy of the fallback's cutoff
// (DenyListRecord.AllBefore, Unix milliseconds), absent when there is no
// fallback. IAM denies every session issued before it, rounded up to the
// second, whatever its tag.
const allBeforeAttr = "allBefore"

// FallbackCutoff reads the deny list's fallback cutoff: the zero time when
// there is none. It reads that one attribute (the credentials function may
// read no other of the item), eventually consistent: the endpoint refreshes
// it every few seconds anyway.
func (s *Store) FallbackCutoff(ctx context.Context) (time.Time, error) {
	const op = "read fallback cutoff"
	out, err := s.Client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.PolicyTable), Key: key(denyListPK, denyListSK),
		ProjectionExpression: aws.String(allBeforeAttr),
	})
	if err != nil {
		return time.Time{}, classify(op, err)
	}
	v, ok := out.Item[allBeforeAttr]
	if !ok {
		return time.Time{}, nil
	}
	ms, err := millisOf(v)
	if err != nil {
		return time.Time{}, broker.Wrap(broker.Internal, op, fmt.Errorf("%w: %s: %w", broker.ErrCorruptItem, allBeforeAttr, err))
	}
	return time.UnixMilli(ms).UTC(), nil
}
