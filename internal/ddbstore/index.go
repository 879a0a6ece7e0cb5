package ddbstore

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/credbroker/credbroker/internal/broker"
)

// DynamoDB's per-call limits for batch operations.
const (
	batchGetMax   = 100
	batchWriteMax = 25
)

func memberKey(projectID, userID string) map[string]types.AttributeValue {
	return key(broker.ProjectKeyPrefix+projectID, memberSKPrefix+userID)
}

func tokenOf(item map[string]types.AttributeValue) int64 {
	if n, ok := item["token"].(*types.AttributeValueMemberN); ok {
		t, _ := strconv.ParseInt(n.Value, 10, 64)
		return t
	}
	return 0
}

// MemberTokens reads the user's index entries for the projects with
// strongly consistent batch reads.
func (s *Store) MemberTokens(ctx context.Context, userID string, projects []string) (map[string]int64, error) {
	out := make(map[string]int64, len(projects))
	keys := make([]map[string]types.AttributeValue, len(projects))
	for i, p := range projects {
		keys[i] = memberKey(p, userID)
	}
	err := s.batchGet(ctx, "read member index", s.PolicyTable, keys, func(it map[string]types.AttributeValue) {
		out[strings.TrimPrefix(getS(it, "pk"), broker.ProjectKeyPrefix)] = tokenOf(it)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// batchGet reads the items of keys from table with strongly consistent
// batch reads of up to 100 keys, retrying unprocessed keys, and hands each
// item found to found.
func (s *Store) batchGet(ctx context.Context, op, table string, keys []map[string]types.AttributeValue, found func(map[string]types.AttributeValue)) error {
	for start := 0; start < len(keys); start += batchGetMax {
		req := map[string]types.KeysAndAttributes{table: {Keys: keys[start:min(start+batchGetMax, len(keys))], ConsistentRead: aws.Bool(true)}}
		for attempt := 0; len(req) > 0; attempt++ {
			if attempt == maxBatchAttempts {
				return broker.Errorf(broker.Transient, op, "unprocessed keys after %d attempts", attempt)
			}
			if attempt > 0 {
				if err := wait(ctx, attempt); err != nil {
					return classify(op, err)
				}
			}
			res, err := s.Client.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
			if err != nil {
				return classify(op, err)
			}
			for _, it := range res.Responses[table] {
				found(it)
			}
			req = res.UnprocessedKeys
		}
	}
	return nil
}

// PutMembers writes the user's index entries with batch writes.
func (s *Store) PutMembers(ctx context.Context, userID string, projects []string, token int64) error {
	entries := make([]entry, len(projects))
	for i, p := range projects {
		entries[i] = entry{p, broker.Member{UserID: userID, Token: token}}
	}
	return s.putEntries(ctx, entries)
}

// PutProjectMembers writes one project's entries for many users with
// batch writes.
func (s *Store) PutProjectMembers(ctx context.Context, projectID string, members []broker.Member) error {
	entries := make([]entry, len(members))
	for i, m := range members {
		entries[i] = entry{projectID, m}
	}
	return s.putEntries(ctx, entries)
}

// entry is one member-index entry: a member of a project.
type entry struct {
	project string
	member  broker.Member
}

func (s *Store) putEntries(ctx context.Context, entries []entry) error {
	for start := 0; start < len(entries); start += batchWriteMax {
		var writes []types.WriteRequest
		for _, e := range entries[start:min(start+batchWriteMax, len(entries))] {
			item := memberKey(e.project, e.member.UserID)
			item["token"] = &types.AttributeValueMemberN{Value: strconv.FormatInt(e.member.Token, 10)}
			item["userId"] = str(e.member.UserID)
			writes = append(writes, types.WriteRequest{PutRequest: &types.PutRequest{Item: item}})
		}
		if err := s.batchWrite(ctx, "write member index", writes); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) batchWrite(ctx context.Context, op string, writes []types.WriteRequest) error {
	req := map[string][]types.WriteRequest{s.PolicyTable: writes}
	for attempt := 0; len(req) > 0; attempt++ {
		if attempt == maxBatchAttempts {
			return broker.Errorf(broker.Transient, op, "unprocessed items after %d attempts", attempt)
		}
		if attempt > 0 {
			if err := wait(ctx, attempt); err != nil {
				return classify(op, err)
			}
		}
		res, err := s.Client.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: req})
		if err != nil {
			return classify(op, err)
		}
		req = res.UnprocessedItems
	}
	return nil
}

// RemoveMember deletes an index entry if it still carries token.
func (s *Store) RemoveMember(ctx context.Context, projectID, userID string, token int64) (bool, error) {
	_, err := s.Client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 aws.String(s.PolicyTable),
		Key:                       memberKey(projectID, userID),
		ConditionExpression:       aws.String("#tok = :t"),
		ExpressionAttributeNames:  map[string]string{"#tok": "token"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":t": &types.AttributeValueMemberN{Value: strconv.FormatInt(token, 10)}},
	})
	if err = classify("remove member", err); broker.KindOf(err) == broker.Conflict {
		return false, nil
	}
	return err == nil, err
}

// ProjectMembers reads one page of a project's index entries, strongly
// consistently. The cursor is the last user id of the previous page.
func (s *Store) ProjectMembers(ctx context.Context, projectID, cursor string, limit int) (broker.MemberPage, error) {
	in := &dynamodb.QueryInput{
		TableName:              aws.String(s.PolicyTable),
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :sk)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": str(broker.ProjectKeyPrefix + projectID), ":sk": str(memberSKPrefix),
		},
		ProjectionExpression:     aws.String("sk, #tok"),
		ExpressionAttributeNames: map[string]string{"#tok": "token"},
		ConsistentRead:           aws.Bool(true),
	}
	if limit > 0 {
		in.Limit = aws.Int32(int32(limit))
	}
	if cursor != "" {
		in.ExclusiveStartKey = memberKey(projectID, cursor)
	}
	res, err := s.Client.Query(ctx, in)
	if err != nil {
		return broker.MemberPage{}, classify("read project members", err)
	}
	var page broker.MemberPage
	for _, it := range res.Items {
		page.Members = append(page.Members, broker.Member{
			UserID: strings.TrimPrefix(getS(it, "sk"), memberSKPrefix),
			Token:  tokenOf(it),
		})
	}
	if len(res.LastEvaluatedKey) > 0 && len(page.Members) > 0 {
		page.Next = page.Members[len(page.Members)-1].UserID
	}
	return page, nil
}

// LoadCheckpoint returns a saved fan-out cursor, or "".
func (s *Store) LoadCheckpoint(ctx context.Context, k string) (string, error) {
	out, err := s.Client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.PolicyTable),
		Key:            key(checkpointPKPrefix+k, checkpointSK),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return "", classify("load checkpoint", err)
	}
	return getS(out.Item, "cursor"), nil
}

// SaveCheckpoint stores a fan-out cursor until expires (DynamoDB TTL).
func (s *Store) SaveCheckpoint(ctx context.Context, k, cursor string, expires time.Time) error {
	item := key(checkpointPKPrefix+k, checkpointSK)
	item["cursor"] = str(cursor)
	item["expiresAt"] = &types.AttributeValueMemberN{Value: strconv.FormatInt(expires.Unix(), 10)}
	_, err := s.Client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.PolicyTable), Item: item})
	return classify("save checkpoint", err)
}

// DeleteCheckpoint forgets a fan-out cursor.
func (s *Store) DeleteCheckpoint(ctx context.Context, k string) error {
	_, err := s.Client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: aws.String(s.PolicyTable),
		Key:       key(checkpointPKPrefix+k, checkpointSK),
	})
	return classify("delete checkpoint", err)
}
