package ddbstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/credbroker/credbroker/internal/broker"
)

// Writes of the membership table. The broker itself only reads that
// table; these are for the operators' tool (credbroker admin), which
// validates every record before it writes it.

// GetSourceItem reads one item of the membership table strongly
// consistently; found is false when there is none.
func (s *Store) GetSourceItem(ctx context.Context, pk, sk string) (it broker.SourceItem, found bool, err error) {
	out, err := s.Client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.MembershipTable),
		Key:            key(pk, sk),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return broker.SourceItem{}, false, classify("get source item", err)
	}
	if len(out.Item) == 0 {
		return broker.SourceItem{}, false, nil
	}
	return SourceItem(out.Item), true, nil
}

// PutSourceItem writes the item, replacing any item with its keys, and
// returns what it replaced. Only string attributes can be written: the
// others break the rules of docs/contract.md "Source records" anyway.
func (s *Store) PutSourceItem(ctx context.Context, it broker.SourceItem) (old broker.SourceItem, replaced bool, err error) {
	const op = "put source item"
	item := key(it.PK, it.SK)
	for name, a := range map[string]broker.Attr{"role": it.Role, "prefix": it.Prefix, "expiresAt": it.ExpiresAt} {
		switch {
		case !a.Present:
		case a.Type == "S":
			item[name] = str(a.S)
		default:
			return broker.SourceItem{}, false, broker.Errorf(broker.Invalid, op, "%s of type %s cannot be written", name, a.Type)
		}
	}
	out, err := s.Client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:    aws.String(s.MembershipTable),
		Item:         item,
		ReturnValues: types.ReturnValueAllOld,
	})
	if err != nil {
		return broker.SourceItem{}, false, classify(op, err)
	}
	if len(out.Attributes) == 0 {
		return broker.SourceItem{}, false, nil
	}
	return SourceItem(out.Attributes), true, nil
}

// DeleteSourceItem deletes the item with these keys and returns what it
// deleted; found is false when there was none.
func (s *Store) DeleteSourceItem(ctx context.Context, pk, sk string) (old broker.SourceItem, found bool, err error) {
	out, err := s.Client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:    aws.String(s.MembershipTable),
		Key:          key(pk, sk),
		ReturnValues: types.ReturnValueAllOld,
	})
	if err != nil {
		return broker.SourceItem{}, false, classify("delete source item", err)
	}
	if len(out.Attributes) == 0 {
		return broker.SourceItem{}, false, nil
	}
	return SourceItem(out.Attributes), true, nil
}

// DeleteSourceItemIf deletes the item with it's keys only while its role,
// prefix and expiresAt are still what it says: the same strings, the same
// types for attributes of other types, absent where it has none. These are
// all the rules judge (projector.Validate), so a record read as breaking
// them is deleted only while it still breaks them the same way; a record
// rewritten in between is a Conflict. found is false when there was none.
func (s *Store) DeleteSourceItemIf(ctx context.Context, it broker.SourceItem) (found bool, err error) {
	const op = "delete source item"
	var conds []string
	names := map[string]string{}
	values := map[string]types.AttributeValue{}
	for i, a := range []struct {
		name string
		attr broker.Attr
	}{{"role", it.Role}, {"prefix", it.Prefix}, {"expiresAt", it.ExpiresAt}} {
		n, v := fmt.Sprintf("#a%d", i), fmt.Sprintf(":v%d", i)
		names[n] = a.name
		switch {
		case !a.attr.Present:
			conds = append(conds, "attribute_not_exists("+n+")")
		case a.attr.Type == "S":
			conds = append(conds, n+" = "+v)
			values[v] = str(a.attr.S)
		default:
			conds = append(conds, "attribute_type("+n+", "+v+")")
			values[v] = str(a.attr.Type)
		}
	}
	in := &dynamodb.DeleteItemInput{
		TableName:                           aws.String(s.MembershipTable),
		Key:                                 key(it.PK, it.SK),
		ConditionExpression:                 aws.String("attribute_exists(pk) AND " + strings.Join(conds, " AND ")),
		ExpressionAttributeNames:            names,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}
	if len(values) > 0 {
		in.ExpressionAttributeValues = values
	}
	_, err = s.Client.DeleteItem(ctx, in)
	var ccf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf) && len(ccf.Item) == 0:
		return false, nil
	case errors.As(err, &ccf):
		return true, broker.Errorf(broker.Conflict, op, "%s / %s changed since it was read: nothing deleted", it.PK, it.SK)
	case err != nil:
		return false, classify(op, err)
	}
	return true, nil
}
