package ddbstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/revoke"
)

// The deny list is one item of the policy table, beside the policy items:
//
//	REVOCATIONS  DENYLIST  version (N), list (S, JSON of revoke.List)
//
// Scans of the policy table (rebuild, verify) skip it: it has neither of
// their key shapes.
const (
	denyListPK = "REVOCATIONS"
	denyListSK = "DENYLIST"
)

var _ revoke.Store = (*Store)(nil)

// LoadDenyList reads the deny list with a strongly consistent read.
func (s *Store) LoadDenyList(ctx context.Context) (revoke.List, error) {
	out, err := s.Client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.PolicyTable), Key: key(denyListPK, denyListSK), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return revoke.List{}, classify("load deny list", err)
	}
	if len(out.Item) == 0 {
		return revoke.List{}, nil
	}
	var l revoke.List
	if err := json.Unmarshal([]byte(getS(out.Item, "list")), &l); err != nil {
		return revoke.List{}, broker.Wrap(broker.Internal, "load deny list", fmt.Errorf("%w: %w", broker.ErrCorruptItem, err))
	}
	version, err := millisOf(out.Item["version"])
	if err != nil || version != l.Version {
		return revoke.List{}, broker.Errorf(broker.Internal, "load deny list", "version attribute %v disagrees with the list's %d", out.Item["version"], l.Version)
	}
	return l, nil
}

// SaveDenyList writes next on condition that the stored version is prev.
func (s *Store) SaveDenyList(ctx context.Context, prev int64, next revoke.List) error {
	b, err := json.Marshal(next)
	if err != nil {
		return broker.Wrap(broker.Internal, "encode deny list", err)
	}
	item := key(denyListPK, denyListSK)
	item["version"] = &types.AttributeValueMemberN{Value: strconv.FormatInt(next.Version, 10)}
	item["list"] = str(string(b))
	if !next.All.Before.IsZero() {
		// The fallback's cutoff on its own, for the endpoint's cheap read
		// (fallback.go).
		item[allBeforeAttr] = &types.AttributeValueMemberN{Value: strconv.FormatInt(next.All.Before.UnixMilli(), 10)}
	}
	in := &dynamodb.PutItemInput{TableName: aws.String(s.PolicyTable), Item: item}
	if prev == 0 {
		in.ConditionExpression = aws.String("attribute_not_exists(pk)")
	} else {
		in.ConditionExpression = aws.String("version = :v")
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":v": &types.AttributeValueMemberN{Value: strconv.FormatInt(prev, 10)}}
	}
	_, err = s.Client.PutItem(ctx, in)
	return classify("save deny list", err)
}
