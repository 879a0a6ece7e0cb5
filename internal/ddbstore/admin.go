package ddbstore

import (
	"context"

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
