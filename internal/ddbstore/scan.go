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

// Whole-table reads for the rebuild, verify and replay tool. They stream
// page by page (DynamoDB's 1 MB pages) and never hold more than one page.

// ScanMemberships reads one Scan segment of the membership table (segment
// of total; total 1 reads the whole table) with strongly consistent reads
// and calls fn with every item, in Scan order: the items of one partition
// come together, sorted by sort key. An error from fn stops the scan and is
// returned as is.
func (s *Store) ScanMemberships(ctx context.Context, segment, total int, fn func(broker.SourceItem) error) error {
	in := &dynamodb.ScanInput{
		TableName:                aws.String(s.MembershipTable),
		ConsistentRead:           aws.Bool(true),
		ProjectionExpression:     aws.String("pk, sk, #role, #prefix, #exp"),
		ExpressionAttributeNames: map[string]string{"#role": "role", "#prefix": "prefix", "#exp": "expiresAt"},
	}
	return s.scan(ctx, "scan memberships", in, segment, total, func(it map[string]types.AttributeValue) error {
		return fn(SourceItem(it))
	})
}

// ScanPolicyTable reads one Scan segment of the policy table with strongly
// consistent reads. It calls user for every policy item (whether it grants
// anything, and when a commit or touch last stamped it: a recompute that succeeded) and entry for
// every member-index entry; fan-out checkpoints are skipped. An error from
// a callback stops the scan and is returned as is.
func (s *Store) ScanPolicyTable(ctx context.Context, segment, total int,
	user func(userID string, grants bool, checkedAt time.Time) error,
	entry func(projectID string, m broker.Member) error) error {
	in := &dynamodb.ScanInput{
		TableName:      aws.String(s.PolicyTable),
		ConsistentRead: aws.Bool(true),
		// The document is read only to learn whether it is there: the
		// credential endpoint grants whatever it holds, whatever the
		// other attributes say.
		ProjectionExpression:     aws.String("pk, sk, #chk, #doc, #tok"),
		ExpressionAttributeNames: map[string]string{"#chk": "checkedAt", "#doc": "doc", "#tok": "token"},
	}
	return s.scan(ctx, "scan policy table", in, segment, total, func(it map[string]types.AttributeValue) error {
		pk, sk := getS(it, "pk"), getS(it, "sk")
		switch {
		case sk == policySK && strings.HasPrefix(pk, broker.UserKeyPrefix):
			var checked time.Time
			if n, ok := it["checkedAt"].(*types.AttributeValueMemberN); ok {
				if ms, err := strconv.ParseInt(n.Value, 10, 64); err == nil {
					checked = time.UnixMilli(ms)
				}
			}
			return user(strings.TrimPrefix(pk, broker.UserKeyPrefix), getS(it, "doc") != "", checked)
		case strings.HasPrefix(sk, memberSKPrefix) && strings.HasPrefix(pk, broker.ProjectKeyPrefix):
			return entry(strings.TrimPrefix(pk, broker.ProjectKeyPrefix),
				broker.Member{UserID: strings.TrimPrefix(sk, memberSKPrefix), Token: tokenOf(it)})
		}
		return nil
	})
}

// ScanPolicies reads one Scan segment of the policy table with strongly
// consistent reads and calls fn with every user's policy item, decoded as
// GetPolicy decodes it for the credential endpoint, or with the error of
// an item that does not decode (which the endpoint refuses to serve).
// Member-index entries and checkpoints are skipped. An error from fn stops
// the scan and is returned as is.
func (s *Store) ScanPolicies(ctx context.Context, segment, total int, fn func(userID string, p broker.UserPolicy, err error) error) error {
	in := &dynamodb.ScanInput{
		TableName:                 aws.String(s.PolicyTable),
		ConsistentRead:            aws.Bool(true),
		FilterExpression:          aws.String("sk = :policy"),
		ProjectionExpression:      aws.String("pk, sk, #uid, #ver, #doc, #upd, #claim, #rvk"),
		ExpressionAttributeNames:  pick(policyNames, "#uid", "#ver", "#doc", "#upd", "#claim", "#rvk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":policy": str(policySK)},
	}
	return s.scan(ctx, "scan policies", in, segment, total, func(it map[string]types.AttributeValue) error {
		pk := getS(it, "pk")
		if !strings.HasPrefix(pk, broker.UserKeyPrefix) {
			return nil
		}
		p, err := decodeServed(it)
		return fn(strings.TrimPrefix(pk, broker.UserKeyPrefix), p, err)
	})
}

func (s *Store) scan(ctx context.Context, op string, in *dynamodb.ScanInput, segment, total int, fn func(map[string]types.AttributeValue) error) error {
	if total < 1 || segment < 0 || segment >= total {
		return broker.Errorf(broker.Invalid, op, "segment %d of %d", segment, total)
	}
	if total > 1 {
		in.Segment, in.TotalSegments = aws.Int32(int32(segment)), aws.Int32(int32(total))
	}
	for {
		page, err := s.Client.Scan(ctx, in)
		if err != nil {
			return classify(op, err)
		}
		for _, it := range page.Items {
			if err := fn(it); err != nil {
				return err
			}
		}
		if len(page.LastEvaluatedKey) == 0 {
			return nil
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
}

// DescribeTableAPI is the DynamoDB call that reads a table's description.
type DescribeTableAPI interface {
	DescribeTable(context.Context, *dynamodb.DescribeTableInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
}

// Tables reads what DescribeTable says of the two tables.
type Tables struct {
	Client          DescribeTableAPI
	MembershipTable string
	PolicyTable     string
}

// ApproxItemCounts returns DynamoDB's item counts of both tables. DynamoDB
// refreshes them about every six hours: they serve for estimates only.
func (t Tables) ApproxItemCounts(ctx context.Context) (memberships, policies int64, err error) {
	m, err := t.describe(ctx, t.MembershipTable)
	if err != nil {
		return 0, 0, err
	}
	p, err := t.describe(ctx, t.PolicyTable)
	if err != nil {
		return 0, 0, err
	}
	return aws.ToInt64(m.ItemCount), aws.ToInt64(p.ItemCount), nil
}

// MembershipStreamARN returns the ARN of the membership table's stream.
func (t Tables) MembershipStreamARN(ctx context.Context) (string, error) {
	d, err := t.describe(ctx, t.MembershipTable)
	if err != nil {
		return "", err
	}
	arn := aws.ToString(d.LatestStreamArn)
	if arn == "" {
		return "", broker.Errorf(broker.Internal, "describe membership table", "table %s has no stream", t.MembershipTable)
	}
	return arn, nil
}

func (t Tables) describe(ctx context.Context, name string) (*types.TableDescription, error) {
	out, err := t.Client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	if err != nil {
		return nil, classify("describe table "+name, err)
	}
	if out.Table == nil {
		return nil, broker.Errorf(broker.Internal, "describe table "+name, "no description")
	}
	return out.Table, nil
}
