//go:build integration

package projector_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/ddbstore"
	"github.com/credbroker/credbroker/internal/projector"
)

// countingDDB counts DynamoDB calls by operation.
type countingDDB struct {
	ddbstore.API
	calls atomic.Int64
}

func (c *countingDDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.calls.Add(1)
	return c.API.GetItem(ctx, in, o...)
}
func (c *countingDDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c.calls.Add(1)
	return c.API.PutItem(ctx, in, o...)
}
func (c *countingDDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	c.calls.Add(1)
	return c.API.UpdateItem(ctx, in, o...)
}
func (c *countingDDB) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	c.calls.Add(1)
	return c.API.DeleteItem(ctx, in, o...)
}
func (c *countingDDB) Query(ctx context.Context, in *dynamodb.QueryInput, o ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	c.calls.Add(1)
	return c.API.Query(ctx, in, o...)
}
func (c *countingDDB) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	c.calls.Add(1)
	return c.API.BatchGetItem(ctx, in, o...)
}
func (c *countingDDB) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	c.calls.Add(1)
	return c.API.BatchWriteItem(ctx, in, o...)
}

func (c *countingDDB) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, o ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	c.calls.Add(1)
	return c.API.TransactWriteItems(ctx, in, o...)
}

// counted rewires the fixture's projector through a call counter.
func (f *fixture) counted() *countingDDB {
	tables := f.motoTables()
	c := &countingDDB{API: tables.DDB}
	store := &ddbstore.Store{Client: c, MembershipTable: tables.Membership, PolicyTable: tables.Policy}
	f.store = store
	f.proj.Source, f.proj.Store, f.proj.Index, f.proj.Checkpoints = store, store, store, store
	return c
}

// BenchmarkFanout measures one bucket change fanning out to every member of
// a project, against moto: wall time and DynamoDB calls (every call the
// store makes, the outbox transactions included), in the invocation (no
// page queue).
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprint(n, "-members"), func(b *testing.B) {
			f := newFixture(b)
			f.members("p1", n)
			calls := f.counted()
			b.ResetTimer()
			for i := range b.N {
				bucket := fmt.Sprintf("lake-%d", i)
				f.bucket("p1", bucket, "")
				c := projector.Change{EventID: "bench-" + bucket, EventName: "INSERT", SequenceNumber: "1",
					Keys: broker.SourceItem{PK: "PROJECT#p1", SK: "BUCKET#" + bucket}}
				c.New = &c.Keys
				calls.calls.Store(0)
				start := time.Now()
				out := f.proj.Process(context.Background(), []projector.Change{c})
				b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms/fanout")
				if len(out.Failed) > 0 || out.FanoutUsers != n {
					b.Fatalf("fan-out: %+v", out)
				}
				b.ReportMetric(float64(calls.calls.Load()), "ddb-calls/fanout")
				b.ReportMetric(float64(calls.calls.Load())/float64(n), "ddb-calls/member")
			}
		})
	}
}

// BenchmarkRecomputeCalls gives the DynamoDB calls of one user's recompute
// as a function of the user's project count.
func BenchmarkRecomputeCalls(b *testing.B) {
	for _, projects := range []int{1, 10, 50} {
		b.Run(fmt.Sprint(projects, "-projects"), func(b *testing.B) {
			f := newFixture(b)
			for i := range projects {
				p := fmt.Sprintf("p%02d", i)
				f.member("alice", p, "read")
				f.bucket(p, fmt.Sprintf("bucket-%02d", i), "")
			}
			calls := f.counted()
			b.ResetTimer()
			for range b.N {
				calls.calls.Store(0)
				if _, err := f.proj.Recompute(context.Background(), "alice", projector.Hint{}, nil); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(calls.calls.Load()), "ddb-calls/recompute")
			}
		})
	}
}
