package ddbstore

import (
	"context"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/credbroker/credbroker/internal/broker"
)

// UserMemberships returns every item under USER#<userId> whose sort key
// starts with PROJECT#, read strongly consistently.
func (s *Store) UserMemberships(ctx context.Context, userID string) ([]broker.SourceItem, error) {
	return s.querySource(ctx, "user memberships", broker.UserKeyPrefix+userID, broker.ProjectKeyPrefix)
}

// ProjectBuckets returns every item under PROJECT#<projectId> whose sort key
// starts with BUCKET#, read strongly consistently.
func (s *Store) ProjectBuckets(ctx context.Context, projectID string) ([]broker.SourceItem, error) {
	return s.querySource(ctx, "project buckets", broker.ProjectKeyPrefix+projectID, broker.BucketKeyPrefix)
}

func (s *Store) querySource(ctx context.Context, op, pk, skPrefix string) ([]broker.SourceItem, error) {
	in := &dynamodb.QueryInput{
		TableName:              aws.String(s.MembershipTable),
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :sk)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": str(pk), ":sk": str(skPrefix),
		},
		ConsistentRead: aws.Bool(true),
	}
	var out []broker.SourceItem
	for {
		page, err := s.Client.Query(ctx, in)
		if err != nil {
			return nil, classify(op, err)
		}
		for _, it := range page.Items {
			out = append(out, SourceItem(it))
		}
		if len(page.LastEvaluatedKey) == 0 {
			return out, nil
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
}

// ProjectMemberships reads the users' membership items of one project with
// strongly consistent batch reads of up to 100 keys.
func (s *Store) ProjectMemberships(ctx context.Context, projectID string, userIDs []string) (map[string]broker.SourceItem, error) {
	keys := make([]map[string]types.AttributeValue, len(userIDs))
	for i, u := range userIDs {
		keys[i] = key(broker.UserKeyPrefix+u, broker.ProjectKeyPrefix+projectID)
	}
	out := make(map[string]broker.SourceItem, len(userIDs))
	err := s.batchGet(ctx, "read project memberships", s.MembershipTable, keys, func(it map[string]types.AttributeValue) {
		item := SourceItem(it)
		out[strings.TrimPrefix(item.PK, broker.UserKeyPrefix)] = item
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// MembershipExists reads one membership item strongly consistently.
func (s *Store) MembershipExists(ctx context.Context, userID, projectID string) (bool, error) {
	out, err := s.Client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:            aws.String(s.MembershipTable),
		Key:                  key(broker.UserKeyPrefix+userID, broker.ProjectKeyPrefix+projectID),
		ConsistentRead:       aws.Bool(true),
		ProjectionExpression: aws.String("pk"),
	})
	if err != nil {
		return false, classify("get membership", err)
	}
	return len(out.Item) > 0, nil
}

// SourceItem converts a DynamoDB item of the membership table.
func SourceItem(item map[string]types.AttributeValue) broker.SourceItem {
	return broker.SourceItem{
		PK:        getS(item, "pk"),
		SK:        getS(item, "sk"),
		Role:      attr(item["role"]),
		Prefix:    attr(item["prefix"]),
		ExpiresAt: attr(item["expiresAt"]),
	}
}

func attr(v types.AttributeValue) broker.Attr {
	switch v := v.(type) {
	case nil:
		return broker.Attr{}
	case *types.AttributeValueMemberS:
		return broker.StringAttr(v.Value)
	case *types.AttributeValueMemberN:
		return broker.Attr{Present: true, Type: "N"}
	case *types.AttributeValueMemberB:
		return broker.Attr{Present: true, Type: "B"}
	case *types.AttributeValueMemberBOOL:
		return broker.Attr{Present: true, Type: "BOOL"}
	case *types.AttributeValueMemberNULL:
		return broker.Attr{Present: true, Type: "NULL"}
	case *types.AttributeValueMemberL:
		return broker.Attr{Present: true, Type: "L"}
	case *types.AttributeValueMemberM:
		return broker.Attr{Present: true, Type: "M"}
	case *types.AttributeValueMemberSS:
		return broker.Attr{Present: true, Type: "SS"}
	case *types.AttributeValueMemberNS:
		return broker.Attr{Present: true, Type: "NS"}
	case *types.AttributeValueMemberBS:
		return broker.Attr{Present: true, Type: "BS"}
	default:
		return broker.Attr{Present: true, Type: "unknown"}
	}
}
