// Package memtable is an in-memory membership table with a stream, for
// the tests of the fast tier: writes become stream records in the shape
// Lambda delivers them (NEW_AND_OLD_IMAGES, one record per write, in
// order), and each write is mirrored into a memstore so that the projector
// reads what the stream reports. It is a hand-written fake of what moto
// serves in the moto tier (mototest.Tables); unlike moto it never emits
// the two INSERT records of an UpdateItem that creates an item. Stream
// reads the stream as a reader from TRIM_HORIZON does (ddbstream.Reader).
package memtable

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/credbroker/credbroker/internal/ddbstore"
	"github.com/credbroker/credbroker/internal/testkit/memstore"
)

// Table is the membership table. The zero value is not usable; call New.
type Table struct {
	stores []*memstore.Store

	mu      sync.Mutex
	items   map[[2]string]map[string]types.AttributeValue
	records []events.DynamoDBEventRecord
}

// New returns an empty table whose items the store serves.
func New(store *memstore.Store) *Table {
	return &Table{stores: []*memstore.Store{store}, items: map[[2]string]map[string]types.AttributeValue{}}
}

// Mirror copies the table's items into store and mirrors every later write
// there too: a further policy table (store's) on the same membership table.
func (t *Table) Mirror(store *memstore.Store) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, item := range t.items {
		store.PutSource(ddbstore.SourceItem(item))
	}
	t.stores = append(t.stores, store)
}

// Put writes an item, replacing any with its keys.
func (t *Table) Put(tb testing.TB, item map[string]types.AttributeValue) {
	tb.Helper()
	pk, sk := str(item["pk"]), str(item["sk"])
	if pk == "" || sk == "" {
		tb.Fatalf("memtable: item without string pk and sk: %v", item)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	key := [2]string{pk, sk}
	old, existed := t.items[key]
	t.items[key] = item
	for _, s := range t.stores {
		s.PutSource(ddbstore.SourceItem(item))
	}
	name := "INSERT"
	if existed {
		name = "MODIFY"
	}
	t.record(name, pk, sk, item, old)
}

// Delete deletes the item (pk, sk); deleting nothing records nothing.
func (t *Table) Delete(tb testing.TB, pk, sk string) {
	tb.Helper()
	t.mu.Lock()
	defer t.mu.Unlock()
	key := [2]string{pk, sk}
	old, existed := t.items[key]
	if !existed {
		return
	}
	delete(t.items, key)
	for _, s := range t.stores {
		s.DeleteSource(pk, sk)
	}
	t.record("REMOVE", pk, sk, nil, old)
}

func (t *Table) record(name, pk, sk string, newImage, oldImage map[string]types.AttributeValue) {
	seq := len(t.records) + 1
	t.records = append(t.records, events.DynamoDBEventRecord{
		EventID:     fmt.Sprintf("mem-%06d", seq),
		EventName:   name,
		EventSource: "aws:dynamodb",
		AWSRegion:   "us-east-1",
		Change: events.DynamoDBStreamRecord{
			ApproximateCreationDateTime: events.SecondsEpochTime{Time: time.Now().Truncate(time.Second)},
			Keys:                        image(map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: pk}, "sk": &types.AttributeValueMemberS{Value: sk}}),
			NewImage:                    image(newImage),
			OldImage:                    image(oldImage),
			SequenceNumber:              fmt.Sprintf("%021d", seq),
			StreamViewType:              "NEW_AND_OLD_IMAGES",
		},
	})
}

// StreamRecords returns every record so far.
func (t *Table) StreamRecords(testing.TB) []events.DynamoDBEventRecord {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.records)
}

// Stream is the table's stream as read from TRIM_HORIZON: one shard,
// served in pages of at most PageSize records (default 1,000, GetRecords'
// most).
type Stream struct {
	table    *Table
	PageSize int
}

// ShardID names the stream's one shard.
const ShardID = "shardId-mem-0"

// Stream returns a reader of the table's stream.
func (t *Table) Stream() *Stream { return &Stream{table: t} }

// ReadAll calls fn with each page of the records written so far, in
// order, as ddbstream.Reader.ReadAll does once the shard is caught up
// (idleReads has no use here: there is nothing more to wait for). An error
// from fn stops the read and is returned.
func (s *Stream) ReadAll(ctx context.Context, _ int, fn func(ctx context.Context, shardID string, recs []events.DynamoDBEventRecord) error) error {
	size := s.PageSize
	if size < 1 {
		size = 1000
	}
	for page := range slices.Chunk(s.table.StreamRecords(nil), size) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(ctx, ShardID, page); err != nil {
			return err
		}
	}
	return nil
}

// Scan returns every item, in key order.
func (t *Table) Scan(testing.TB) []map[string]types.AttributeValue {
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := make([][2]string, 0, len(t.items))
	for k := range t.items {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]string) int {
		if c := strings.Compare(a[0], b[0]); c != 0 {
			return c
		}
		return strings.Compare(a[1], b[1])
	})
	out := make([]map[string]types.AttributeValue, len(keys))
	for i, k := range keys {
		out[i] = t.items[k]
	}
	return out
}

func str(v types.AttributeValue) string {
	if s, ok := v.(*types.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}

// image converts an item to the attribute values of a Lambda event.
func image(item map[string]types.AttributeValue) map[string]events.DynamoDBAttributeValue {
	if item == nil {
		return nil
	}
	out := make(map[string]events.DynamoDBAttributeValue, len(item))
	for k, v := range item {
		out[k] = value(v)
	}
	return out
}

func value(v types.AttributeValue) events.DynamoDBAttributeValue {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return events.NewStringAttribute(v.Value)
	case *types.AttributeValueMemberN:
		return events.NewNumberAttribute(v.Value)
	case *types.AttributeValueMemberBOOL:
		return events.NewBooleanAttribute(v.Value)
	case *types.AttributeValueMemberNULL:
		return events.NewNullAttribute()
	case *types.AttributeValueMemberB:
		return events.NewBinaryAttribute(v.Value)
	case *types.AttributeValueMemberSS:
		return events.NewStringSetAttribute(v.Value)
	case *types.AttributeValueMemberNS:
		return events.NewNumberSetAttribute(v.Value)
	case *types.AttributeValueMemberL:
		l := make([]events.DynamoDBAttributeValue, len(v.Value))
		for i, e := range v.Value {
			l[i] = value(e)
		}
		return events.NewListAttribute(l)
	case *types.AttributeValueMemberM:
		return events.NewMapAttribute(image(v.Value))
	}
	panic(fmt.Sprintf("memtable: attribute type %T", v))
}
