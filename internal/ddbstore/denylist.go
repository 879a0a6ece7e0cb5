package ddbstore

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/credbroker/credbroker/internal/broker"
)

// The deny list is one item of the policy table, beside the policy items,
// and the lease on the role's pages (revoker.PagesLease) another:
//
//	REVOCATIONS  DENYLIST    version (N), listGz (B, the list gzipped), allBefore (N)
//	REVOCATIONS  PAGESLEASE  owner (S, "" when free), until (N, Unix ms)
//
// The list is the revoker's JSON, which this adapter stores and never
// reads. It takes about 290 bytes an entry, so that DynamoDB's 400 KB item
// would hold fewer entries than the role's pages; gzipped, an entry takes
// about 57 (docs/security.md "Size, pages and capacity"). The previous
// revoker wrote the JSON as is (list, S), which LoadDenyList still reads.
// Scans of the policy table (rebuild, verify) skip the item: it has
// neither of their key shapes.
const (
	denyListPK   = "REVOCATIONS"
	denyListSK   = "DENYLIST"
	pagesLeaseSK = "PAGESLEASE"
)

// TakePages takes the lease on the role's pages for owner until until,
// on condition that no other owner holds one that has not run out at now
// (a Conflict error otherwise).
func (s *Store) TakePages(ctx context.Context, owner string, now, until time.Time) error {
	return s.putLease(ctx, "take the deny list's pages", owner, until,
		"attribute_not_exists(pk) OR #o = :o OR #o = :free OR #u < :now",
		map[string]types.AttributeValue{":o": str(owner), ":free": str(""), ":now": millis(now)})
}

// RenewPages extends owner's lease on the pages to until, on condition
// that owner still holds it at now (a Conflict error otherwise).
func (s *Store) RenewPages(ctx context.Context, owner string, now, until time.Time) error {
	return s.putLease(ctx, "renew the deny list's pages", owner, until,
		"#o = :o AND #u >= :now", map[string]types.AttributeValue{":o": str(owner), ":now": millis(now)})
}

// ReleasePages gives owner's lease on the pages back; a lease another
// owner has taken since is left alone.
func (s *Store) ReleasePages(ctx context.Context, owner string) error {
	err := s.putLease(ctx, "release the deny list's pages", "", time.UnixMilli(0),
		"#o = :o", map[string]types.AttributeValue{":o": str(owner)})
	if broker.KindOf(err) == broker.Conflict {
		return nil
	}
	return err
}

// putLease writes the lease item as held by holder ("" when free) until
// until, on condition cond over #o (its owner) and, if it names it, #u
// (its until).
func (s *Store) putLease(ctx context.Context, op, holder string, until time.Time, cond string, values map[string]types.AttributeValue) error {
	item := key(denyListPK, pagesLeaseSK)
	item["owner"] = str(holder)
	item["until"] = millis(until)
	names := map[string]string{"#o": "owner"}
	if strings.Contains(cond, "#u") { // DynamoDB refuses a name the condition does not use
		names["#u"] = "until"
	}
	_, err := s.Client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(s.PolicyTable), Item: item, ConditionExpression: aws.String(cond),
		ExpressionAttributeNames: names, ExpressionAttributeValues: values,
	})
	return classify(op, err)
}

// LoadDenyList reads the deny list's record with a strongly consistent
// read: the zero record when there is none. An item it cannot read comes
// with an error wrapping broker.ErrCorruptItem and, as the record's
// Version, the token SaveDenyList replaces it with: its version attribute,
// or 0 when that is no number either.
func (s *Store) LoadDenyList(ctx context.Context) (broker.DenyListRecord, error) {
	const op = "load deny list"
	out, err := s.Client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.PolicyTable), Key: key(denyListPK, denyListSK), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return broker.DenyListRecord{}, classify(op, err)
	}
	if len(out.Item) == 0 {
		return broker.DenyListRecord{}, nil
	}
	version, verr := millisOf(out.Item["version"])
	if verr != nil || version < 0 {
		return broker.DenyListRecord{}, broker.Wrap(broker.Internal, op, fmt.Errorf("%w: version attribute %v is not a version", broker.ErrCorruptItem, out.Item["version"]))
	}
	doc := []byte(getS(out.Item, "list"))
	if z, ok := out.Item[listGzAttr].(*types.AttributeValueMemberB); ok {
		r, err := gzip.NewReader(bytes.NewReader(z.Value))
		if err == nil {
			doc, err = io.ReadAll(r)
		}
		if err != nil {
			return broker.DenyListRecord{Version: version}, broker.Wrap(broker.Internal, op, fmt.Errorf("%w: %s: %w", broker.ErrCorruptItem, listGzAttr, err))
		}
	}
	return broker.DenyListRecord{Version: version, List: doc}, nil
}

// listGzAttr holds the gzipped list.
const listGzAttr = "listGz"

// SaveDenyList writes next on condition that the stored version is prev;
// prev 0 also replaces an item whose version is no number (unreadable). A
// list too large for an item is refused with broker.ErrItemTooLarge in the
// error's chain, before anything is written.
func (s *Store) SaveDenyList(ctx context.Context, prev int64, next broker.DenyListRecord) error {
	const op = "save deny list"
	var z bytes.Buffer
	w := gzip.NewWriter(&z)
	if _, err := w.Write(next.List); err != nil {
		return broker.Wrap(broker.Internal, "compress deny list", err)
	}
	if err := w.Close(); err != nil {
		return broker.Wrap(broker.Internal, "compress deny list", err)
	}
	item := key(denyListPK, denyListSK)
	item["version"] = &types.AttributeValueMemberN{Value: strconv.FormatInt(next.Version, 10)}
	item[listGzAttr] = &types.AttributeValueMemberB{Value: z.Bytes()}
	if !next.AllBefore.IsZero() {
		// The fallbacks' cutoff on its own, for the endpoint's cheap read
		// (fallback.go).
		item[allBeforeAttr] = &types.AttributeValueMemberN{Value: strconv.FormatInt(next.AllBefore.UnixMilli(), 10)}
	}
	in := &dynamodb.PutItemInput{TableName: aws.String(s.PolicyTable), Item: item}
	if prev == 0 {
		in.ConditionExpression = aws.String("attribute_not_exists(pk) OR attribute_not_exists(version) OR NOT attribute_type(version, :n)")
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":n": str("N")}
	} else {
		in.ConditionExpression = aws.String("version = :v")
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":v": &types.AttributeValueMemberN{Value: strconv.FormatInt(prev, 10)}}
	}
	if n := itemSize(item); n > maxItemBytes {
		return broker.Wrap(broker.Invalid, op, fmt.Errorf("%w: %d bytes", broker.ErrItemTooLarge, n))
	}
	_, err := s.Client.PutItem(ctx, in)
	if isItemSizeError(err) {
		return broker.Wrap(broker.Invalid, op, fmt.Errorf("%w: %w", broker.ErrItemTooLarge, err))
	}
	return classify(op, err)
}
