package ddbstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/credbroker/credbroker/internal/broker"
)

// Policy table layout (one table, three item kinds):
//
//	USER#<userId>      POLICY          the user's policy item
//	PROJECT#<project>  MEMBER#<userId> member index entry (token)
//	FANOUT#<key>       CURSOR          fan-out checkpoint (expiresAt TTL)
const (
	policySK           = "POLICY"
	memberSKPrefix     = "MEMBER#"
	checkpointPKPrefix = "FANOUT#"
	checkpointSK       = "CURSOR"
	itemSchema         = "1"
)

// policyDoc is the JSON document of a policy item: everything the
// credential endpoint needs beyond the version.
type policyDoc struct {
	Grants    []broker.Grant            `json:"grants"`
	Sets      []broker.PolicySet        `json:"sets"`
	ByProject map[string][]broker.Place `json:"byProject"`
}

func userKey(userID string) map[string]types.AttributeValue {
	return key(broker.UserKeyPrefix+userID, policySK)
}

// Attribute names go through placeholders so that none can collide with a
// DynamoDB reserved word.
var policyNames = map[string]string{"#claim": "claim", "#ver": "version", "#doc": "doc", "#upd": "updatedAt", "#uid": "userId", "#chk": "checkedAt", "#out": "outbox"}

// GetPolicy reads the user's policy item with one strongly consistent read.
func (s *Store) GetPolicy(ctx context.Context, userID string) (broker.UserPolicy, error) {
	out, err := s.Client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:                aws.String(s.PolicyTable),
		Key:                      userKey(userID),
		ConsistentRead:           aws.Bool(true),
		ProjectionExpression:     aws.String("#uid, #ver, #doc, #upd"),
		ExpressionAttributeNames: pick(policyNames, "#uid", "#ver", "#doc", "#upd"),
	})
	if err != nil {
		return broker.UserPolicy{}, classify("get policy", err)
	}
	if len(out.Item) == 0 {
		return broker.UserPolicy{}, broker.Errorf(broker.NotFound, "get policy", "no policy item")
	}
	return decodePolicy(userID, out.Item)
}

func pick(m map[string]string, keys ...string) map[string]string {
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		out[k] = m[k]
	}
	return out
}

// decodePolicy reads a policy item. A tombstone (no document) decodes to an
// empty policy.
func decodePolicy(userID string, item map[string]types.AttributeValue) (broker.UserPolicy, error) {
	p := broker.UserPolicy{UserID: userID, Version: getS(item, "version")}
	if t := getS(item, "updatedAt"); t != "" {
		p.UpdatedAt, _ = time.Parse(time.RFC3339Nano, t)
	}
	raw := getS(item, "doc")
	if raw == "" {
		return p, nil
	}
	var doc policyDoc
	if err := json.Unmarshal([]byte(raw), &doc); err != nil {
		// A corrupt item must not become a credential: fail, never guess.
		return broker.UserPolicy{}, broker.Wrap(broker.Internal, "decode policy item", fmt.Errorf("%w: %w", broker.ErrCorruptItem, err))
	}
	p.Grants, p.Sets, p.ByProject = doc.Grants, doc.Sets, doc.ByProject
	return p, nil
}

// Claim adds one to the item's claim counter (creating the item if needed)
// and returns the new value with what the item held.
func (s *Store) Claim(ctx context.Context, userID string, now time.Time) (broker.Claim, error) {
	out, err := s.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.PolicyTable),
		Key:                      userKey(userID),
		UpdateExpression:         aws.String("ADD #claim :one SET #chk = :now, #uid = :uid"),
		ExpressionAttributeNames: pick(policyNames, "#claim", "#chk", "#uid"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":one": &types.AttributeValueMemberN{Value: "1"},
			":now": &types.AttributeValueMemberN{Value: strconv.FormatInt(now.UnixMilli(), 10)},
			":uid": str(userID),
		},
		ReturnValues: types.ReturnValueAllNew,
	})
	if err != nil {
		return broker.Claim{}, classify("claim policy", err)
	}
	n, ok := out.Attributes["claim"].(*types.AttributeValueMemberN)
	if !ok {
		return broker.Claim{}, broker.Errorf(broker.Internal, "claim policy", "claim counter missing")
	}
	ticket, err := strconv.ParseInt(n.Value, 10, 64)
	if err != nil {
		return broker.Claim{}, broker.Wrap(broker.Internal, "claim policy", err)
	}
	c := broker.Claim{UserID: userID, Ticket: ticket}
	prev, perr := decodePolicy(userID, out.Attributes)
	outbox, oerr := decodeOutbox(out.Attributes["outbox"])
	if err := errors.Join(perr, oerr); err != nil {
		// The claim stands: the recompute will overwrite the item.
		c.Prev, c.Corrupt = broker.UserPolicy{UserID: userID}, err.Error()
		return c, nil
	}
	c.Prev, c.Outbox = prev, outbox
	return c, nil
}

func decodeOutbox(v types.AttributeValue) ([]broker.PolicyChangedDetail, error) {
	l, ok := v.(*types.AttributeValueMemberL)
	if !ok {
		return nil, nil
	}
	out := make([]broker.PolicyChangedDetail, 0, len(l.Value))
	for _, e := range l.Value {
		s, ok := e.(*types.AttributeValueMemberS)
		if !ok {
			return nil, broker.Wrap(broker.Internal, "decode outbox", fmt.Errorf("%w: entry is not a string", broker.ErrCorruptItem))
		}
		var d broker.PolicyChangedDetail
		if err := json.Unmarshal([]byte(s.Value), &d); err != nil {
			return nil, broker.Wrap(broker.Internal, "decode outbox", fmt.Errorf("%w: %w", broker.ErrCorruptItem, err))
		}
		out = append(out, d)
	}
	return out, nil
}

// Commit replaces the policy item, on condition that c is still the newest
// claim.
func (s *Store) Commit(ctx context.Context, c broker.Claim, p broker.UserPolicy, outbox []broker.PolicyChangedDetail) error {
	doc, err := json.Marshal(policyDoc{Grants: p.Grants, Sets: p.Sets, ByProject: p.ByProject})
	if err != nil {
		return broker.Wrap(broker.Internal, "encode policy item", err)
	}
	item := map[string]types.AttributeValue{
		"pk":         str(broker.UserKeyPrefix + c.UserID),
		"sk":         str(policySK),
		"userId":     str(c.UserID),
		"claim":      &types.AttributeValueMemberN{Value: strconv.FormatInt(c.Ticket, 10)},
		"checkedAt":  &types.AttributeValueMemberN{Value: strconv.FormatInt(p.UpdatedAt.UnixMilli(), 10)},
		"version":    str(p.Version),
		"updatedAt":  str(p.UpdatedAt.UTC().Format(time.RFC3339Nano)),
		"grantCount": &types.AttributeValueMemberN{Value: strconv.Itoa(len(p.Grants))},
		"setCount":   &types.AttributeValueMemberN{Value: strconv.Itoa(len(p.Sets))},
		"schema":     &types.AttributeValueMemberN{Value: itemSchema},
	}
	if len(p.Grants) > 0 {
		item["doc"] = str(string(doc))
	}
	if len(outbox) > 0 {
		l := make([]types.AttributeValue, len(outbox))
		for i, d := range outbox {
			b, err := json.Marshal(d)
			if err != nil {
				return broker.Wrap(broker.Internal, "encode outbox", err)
			}
			l[i] = str(string(b))
		}
		item["outbox"] = &types.AttributeValueMemberL{Value: l}
	}
	_, err = s.Client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                 aws.String(s.PolicyTable),
		Item:                      item,
		ConditionExpression:       aws.String("#claim = :t"),
		ExpressionAttributeNames:  pick(policyNames, "#claim"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":t": &types.AttributeValueMemberN{Value: strconv.FormatInt(c.Ticket, 10)}},
	})
	return classify(fmt.Sprintf("commit policy of %s", c.UserID), err)
}

// ClearOutbox removes the outbox on condition that c is still the newest
// claim.
func (s *Store) ClearOutbox(ctx context.Context, c broker.Claim) error {
	_, err := s.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.PolicyTable),
		Key:                       userKey(c.UserID),
		UpdateExpression:          aws.String("REMOVE #out"),
		ConditionExpression:       aws.String("#claim = :t"),
		ExpressionAttributeNames:  pick(policyNames, "#out", "#claim"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":t": &types.AttributeValueMemberN{Value: strconv.FormatInt(c.Ticket, 10)}},
	})
	return classify("clear outbox", err)
}
