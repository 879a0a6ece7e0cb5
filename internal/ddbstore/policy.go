package ddbstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

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
	// Expires holds the time-bounded projects' expiries; absent when none.
	Expires map[string]time.Time `json:"expires,omitempty"`
}

func userKey(userID string) map[string]types.AttributeValue {
	return key(broker.UserKeyPrefix+userID, policySK)
}

// Attribute names go through placeholders so that none can collide with a
// DynamoDB reserved word.
var policyNames = map[string]string{"#claim": "claim", "#ver": "version", "#doc": "doc", "#upd": "updatedAt", "#uid": "userId", "#chk": "checkedAt", "#out": "outbox", "#rvk": "revokedBefore"}

// GetPolicy reads the user's policy item with one strongly consistent read.
// The claim counter is read along with the document: an item whose
// bookkeeping is corrupt is refused like one whose document is, because
// the projector cannot replace it until its next claim resets it.
func (s *Store) GetPolicy(ctx context.Context, userID string) (broker.UserPolicy, error) {
	out, err := s.Client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:                aws.String(s.PolicyTable),
		Key:                      userKey(userID),
		ConsistentRead:           aws.Bool(true),
		ProjectionExpression:     aws.String("#uid, #ver, #doc, #upd, #claim, #rvk"),
		ExpressionAttributeNames: pick(policyNames, "#uid", "#ver", "#doc", "#upd", "#claim", "#rvk"),
	})
	if err != nil {
		return broker.UserPolicy{}, classify("get policy", err)
	}
	if len(out.Item) == 0 {
		return broker.UserPolicy{}, broker.Errorf(broker.NotFound, "get policy", "no policy item")
	}
	return decodeServed(out.Item)
}

// decodeServed reads a policy item as the credential endpoint does (claim
// counter included); whoever reports what the endpoint serves reads items
// with it too.
func decodeServed(item map[string]types.AttributeValue) (broker.UserPolicy, error) {
	if _, err := ticketOf(item["claim"]); err != nil {
		return broker.UserPolicy{}, broker.Wrap(broker.Internal, "decode policy item", err)
	}
	return decodePolicy(item)
}

func pick(m map[string]string, keys ...string) map[string]string {
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		out[k] = m[k]
	}
	return out
}

// decodePolicy reads a policy item. A tombstone (no document) decodes to an
// empty policy. UserID is what the item says, not the key it was read
// under, so that the endpoint's check of it means something.
func decodePolicy(item map[string]types.AttributeValue) (broker.UserPolicy, error) {
	p := broker.UserPolicy{UserID: getS(item, "userId"), Version: getS(item, "version")}
	if t := getS(item, "updatedAt"); t != "" {
		p.UpdatedAt, _ = time.Parse(time.RFC3339Nano, t)
	}
	if v, ok := item["revokedBefore"]; ok {
		ms, err := millisOf(v)
		if err != nil {
			// A cutoff that cannot be read could hide a revocation.
			return broker.UserPolicy{}, broker.Wrap(broker.Internal, "decode policy item", fmt.Errorf("%w: revokedBefore: %w", broker.ErrCorruptItem, err))
		}
		p.RevokedBefore = time.UnixMilli(ms).UTC()
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
	p.Grants, p.Sets, p.ByProject, p.Expires = doc.Grants, doc.Sets, doc.ByProject, doc.Expires
	return p, nil
}

// millisOf reads a number of milliseconds.
func millisOf(v types.AttributeValue) (int64, error) {
	n, ok := v.(*types.AttributeValueMemberN)
	if !ok {
		return 0, fmt.Errorf("not a number")
	}
	return strconv.ParseInt(n.Value, 10, 64)
}

// Cutoff returns the user's revocation cutoff (zero when the item has none,
// or there is no item). It reads that attribute only: the revoker's role
// may read no more of a user's item.
func (s *Store) Cutoff(ctx context.Context, userID string) (time.Time, error) {
	out, err := s.Client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.PolicyTable), Key: userKey(userID), ConsistentRead: aws.Bool(true),
		ProjectionExpression: aws.String("#rvk"), ExpressionAttributeNames: pick(policyNames, "#rvk"),
	})
	if err != nil {
		return time.Time{}, classify("read revocation cutoff", err)
	}
	v, ok := out.Item["revokedBefore"]
	if !ok {
		return time.Time{}, nil
	}
	ms, err := millisOf(v)
	if err != nil {
		return time.Time{}, broker.Wrap(broker.Internal, "read revocation cutoff", fmt.Errorf("%w: revokedBefore: %w", broker.ErrCorruptItem, err))
	}
	return time.UnixMilli(ms).UTC(), nil
}

// AdvanceCutoff gives the user a new revocation cutoff: want, or, when the
// item's cutoff is already at or after it, the millisecond after that
// (broker.NextCutoff), so that the sessions tagged with the old cutoff are
// denied too. It creates the item (one that grants nothing) if there is
// none, and takes a claim, so that a recompute that claimed the item
// earlier cannot commit over the new cutoff: it claims again and keeps it.
// It returns the cutoff now in the item.
func (s *Store) AdvanceCutoff(ctx context.Context, userID string, want time.Time) (time.Time, error) {
	const op = "advance revocation cutoff"
	want = want.UTC().Truncate(time.Millisecond)
	for range 4 {
		_, err := s.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                aws.String(s.PolicyTable),
			Key:                      userKey(userID),
			UpdateExpression:         aws.String("ADD #claim :one SET #rvk = :r, #uid = :uid"),
			ConditionExpression:      aws.String("attribute_not_exists(#rvk) OR #rvk < :r"),
			ExpressionAttributeNames: pick(policyNames, "#rvk", "#uid", "#claim"),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":r":   millis(want),
				":uid": str(userID),
				":one": &types.AttributeValueMemberN{Value: "1"},
			},
		})
		if err == nil || broker.KindOf(classify("", err)) != broker.Conflict {
			return want, classify(op, err)
		}
		// A cutoff at or after want is in place: step just past it, in one
		// atomic update (the revoker's role may return only what it set).
		out, err := s.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                aws.String(s.PolicyTable),
			Key:                      userKey(userID),
			UpdateExpression:         aws.String("ADD #claim :one SET #rvk = #rvk + :one"),
			ConditionExpression:      aws.String("attribute_exists(#rvk) AND #rvk >= :r"),
			ExpressionAttributeNames: pick(policyNames, "#rvk", "#claim"),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":r":   millis(want),
				":one": &types.AttributeValueMemberN{Value: "1"},
			},
			ReturnValues: types.ReturnValueUpdatedNew,
		})
		if broker.KindOf(classify("", err)) == broker.Conflict {
			continue // the item went away meanwhile: start again
		}
		if err != nil {
			return time.Time{}, classify(op, err)
		}
		ms, err := millisOf(out.Attributes["revokedBefore"])
		if err != nil {
			return time.Time{}, broker.Errorf(broker.Internal, op, "cutoff after the update: %v", err)
		}
		return time.UnixMilli(ms).UTC(), nil
	}
	return time.Time{}, broker.Errorf(broker.Transient, op, "the item of %q kept changing", userID)
}

func millis(t time.Time) *types.AttributeValueMemberN {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(t.UnixMilli(), 10)}
}

// ticketOf reads a claim counter: a number that is a whole int64.
func ticketOf(v types.AttributeValue) (int64, error) {
	n, ok := v.(*types.AttributeValueMemberN)
	if !ok {
		return 0, fmt.Errorf("%w: claim counter is missing or not a number", broker.ErrCorruptItem)
	}
	t, err := strconv.ParseInt(n.Value, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: claim counter %.40q is not a whole 64-bit number", broker.ErrCorruptItem, n.Value)
	}
	return t, nil
}

// Claim adds one to the item's claim counter (creating the item if needed)
// and returns the new value with what the item held. A counter that is
// corrupt (not a number, a fraction, beyond int64) is reset instead.
func (s *Store) Claim(ctx context.Context, userID string, now time.Time) (broker.Claim, error) {
	out, err := s.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.PolicyTable),
		Key:                      userKey(userID),
		UpdateExpression:         aws.String("ADD #claim :one SET #uid = :uid"),
		ExpressionAttributeNames: pick(policyNames, "#claim", "#uid"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":one": &types.AttributeValueMemberN{Value: "1"},
			":uid": str(userID),
		},
		ReturnValues: types.ReturnValueAllNew,
	})
	var attrs map[string]types.AttributeValue
	switch {
	case err == nil:
		attrs = out.Attributes
	case broker.KindOf(classify("", err)) == broker.Invalid:
		// ADD refuses a counter of another type; read it to be sure that
		// this is why, rather than reset on an error it does not explain.
		if attrs, err = s.readItem(ctx, userID); err != nil {
			return broker.Claim{}, err
		}
		if _, terr := ticketOf(attrs["claim"]); terr == nil {
			return broker.Claim{}, classify("claim policy", err)
		}
	default:
		return broker.Claim{}, classify("claim policy", err)
	}
	ticket, err := ticketOf(attrs["claim"])
	if err != nil {
		return s.resetClaim(ctx, userID, attrs["claim"], err, now)
	}
	c := broker.Claim{UserID: userID, Ticket: ticket}
	prev, perr := decodePolicy(attrs)
	outbox, oerr := decodeOutbox(attrs["outbox"])
	if err := errors.Join(perr, oerr); err != nil {
		// The claim stands: the recompute will overwrite the item.
		c.Prev, c.Corrupt = broker.UserPolicy{UserID: userID}, err.Error()
		return c, nil
	}
	prev.UserID = userID
	c.Prev, c.Outbox = prev, outbox
	return c, nil
}

func (s *Store) readItem(ctx context.Context, userID string) (map[string]types.AttributeValue, error) {
	out, err := s.Client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.PolicyTable), Key: userKey(userID), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, classify("read policy item", err)
	}
	return out.Item, nil
}

// resetClaim replaces an item whose claim counter is corrupt with one that
// grants nothing, under a fresh ticket, on condition that the counter is
// still the corrupt value read. The write is the claim: the recompute that
// holds it writes the user's real policy.
//
// The new ticket is the clock in microseconds, far above any counter that
// counted up from 1, so no recompute still holding a ticket from before
// the corruption can match it (its commit fails) and the member index's
// tokens stay unique.
func (s *Store) resetClaim(ctx context.Context, userID string, corrupt types.AttributeValue, why error, now time.Time) (broker.Claim, error) {
	if corrupt == nil {
		return broker.Claim{}, broker.Wrap(broker.Internal, "claim policy", why)
	}
	ticket := max(now.UnixMicro(), 1)
	_, err := s.Client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(s.PolicyTable),
		Item: map[string]types.AttributeValue{
			"pk": str(broker.UserKeyPrefix + userID), "sk": str(policySK), "userId": str(userID),
			"claim":  &types.AttributeValueMemberN{Value: strconv.FormatInt(ticket, 10)},
			"schema": &types.AttributeValueMemberN{Value: itemSchema},
		},
		ConditionExpression:       aws.String("#claim = :old"),
		ExpressionAttributeNames:  pick(policyNames, "#claim"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":old": corrupt},
	})
	if err != nil {
		return broker.Claim{}, classify("reset corrupt claim", err)
	}
	return broker.Claim{UserID: userID, Ticket: ticket, Prev: broker.UserPolicy{UserID: userID},
		Corrupt: "claim counter reset: " + why.Error()}, nil
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
	doc, err := json.Marshal(policyDoc{Grants: p.Grants, Sets: p.Sets, ByProject: p.ByProject, Expires: p.Expires})
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
	if !p.RevokedBefore.IsZero() {
		item["revokedBefore"] = millis(p.RevokedBefore)
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
	op := fmt.Sprintf("commit policy of %s", c.UserID)
	if n := itemSize(item); n > maxItemBytes {
		return broker.Wrap(broker.Invalid, op, fmt.Errorf("%w: %d bytes", broker.ErrItemTooLarge, n))
	}
	_, err = s.Client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                 aws.String(s.PolicyTable),
		Item:                      item,
		ConditionExpression:       aws.String("#claim = :t"),
		ExpressionAttributeNames:  pick(policyNames, "#claim"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":t": &types.AttributeValueMemberN{Value: strconv.FormatInt(c.Ticket, 10)}},
	})
	if isItemSizeError(err) {
		return broker.Wrap(broker.Invalid, op, fmt.Errorf("%w: %w", broker.ErrItemTooLarge, err))
	}
	return classify(op, err)
}

// DynamoDB refuses items over 400 KB; the local check keeps a margin for
// the size rules it approximates.
const maxItemBytes = 400*1024 - 4*1024

// itemSize approximates DynamoDB's size of an item of strings, numbers and
// lists of strings: attribute names plus values, numbers at their widest.
func itemSize(item map[string]types.AttributeValue) int {
	n := 0
	for name, v := range item {
		n += len(name) + valueSize(v)
	}
	return n
}

func valueSize(v types.AttributeValue) int {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return len(v.Value)
	case *types.AttributeValueMemberB:
		return len(v.Value)
	case *types.AttributeValueMemberN:
		return 21
	case *types.AttributeValueMemberL:
		n := 3
		for _, e := range v.Value {
			n += 1 + valueSize(e)
		}
		return n
	}
	return 0
}

// isItemSizeError recognises DynamoDB's refusal of an oversized item by its
// message: the service gives it no error code of its own.
func isItemSizeError(err error) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == "ValidationException" &&
		strings.Contains(strings.ToLower(apiErr.ErrorMessage()), "item size")
}

// Touch stamps checkedAt on condition that c is still the newest claim.
func (s *Store) Touch(ctx context.Context, c broker.Claim, checkedAt time.Time) error {
	_, err := s.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.PolicyTable),
		Key:                      userKey(c.UserID),
		UpdateExpression:         aws.String("SET #chk = :now"),
		ConditionExpression:      aws.String("#claim = :t"),
		ExpressionAttributeNames: pick(policyNames, "#chk", "#claim"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":t":   &types.AttributeValueMemberN{Value: strconv.FormatInt(c.Ticket, 10)},
			":now": &types.AttributeValueMemberN{Value: strconv.FormatInt(checkedAt.UnixMilli(), 10)},
		},
	})
	return classify("touch policy", err)
}
