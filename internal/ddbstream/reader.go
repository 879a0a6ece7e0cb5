package ddbstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/credbroker/credbroker/internal/broker"
)

// API is the part of the dynamodbstreams client the reader uses.
type API interface {
	DescribeStream(context.Context, *dynamodbstreams.DescribeStreamInput, ...func(*dynamodbstreams.Options)) (*dynamodbstreams.DescribeStreamOutput, error)
	GetShardIterator(context.Context, *dynamodbstreams.GetShardIteratorInput, ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetShardIteratorOutput, error)
	GetRecords(context.Context, *dynamodbstreams.GetRecordsInput, ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetRecordsOutput, error)
}

// Reader reads one stream.
type Reader struct {
	Client    API
	StreamARN string
	Logger    *slog.Logger
}

func (r *Reader) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

// Shards lists every shard of the stream, parents before children.
func (r *Reader) Shards(ctx context.Context) ([]types.Shard, error) {
	var all []types.Shard
	in := &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(r.StreamARN)}
	for {
		out, err := r.Client.DescribeStream(ctx, in)
		if err != nil {
			return nil, broker.Wrap(broker.Transient, "describe stream", err)
		}
		all = append(all, out.StreamDescription.Shards...)
		last := out.StreamDescription.LastEvaluatedShardId
		if last == nil || *last == "" {
			break
		}
		in.ExclusiveStartShardId = last
	}
	return OrderShards(all), nil
}

// OrderShards sorts shards so that every parent comes before its children:
// records of one item move from a parent shard to a child when the shard
// splits, and the projector sees them in order only if parents go first. A
// parent that has aged out of the stream is treated as absent.
func OrderShards(shards []types.Shard) []types.Shard {
	byID := make(map[string]types.Shard, len(shards))
	for _, s := range shards {
		byID[aws.ToString(s.ShardId)] = s
	}
	done := make(map[string]bool, len(shards))
	out := make([]types.Shard, 0, len(shards))
	var visit func(s types.Shard)
	visit = func(s types.Shard) {
		id := aws.ToString(s.ShardId)
		if done[id] {
			return
		}
		done[id] = true
		if p, ok := byID[aws.ToString(s.ParentShardId)]; ok {
			visit(p)
		}
		out = append(out, s)
	}
	for _, s := range shards {
		visit(s)
	}
	return out
}

// Position says where to start reading a shard.
type Position struct {
	Type  types.ShardIteratorType
	After string // sequence number, for AfterSequenceNumber / AtSequenceNumber
}

// TrimHorizon reads a shard from its oldest record.
var TrimHorizon = Position{Type: types.ShardIteratorTypeTrimHorizon}

// Iterator returns a shard iterator at pos.
func (r *Reader) Iterator(ctx context.Context, shardID string, pos Position) (string, error) {
	in := &dynamodbstreams.GetShardIteratorInput{
		StreamArn: aws.String(r.StreamARN), ShardId: aws.String(shardID), ShardIteratorType: pos.Type,
	}
	if pos.After != "" {
		in.SequenceNumber = aws.String(pos.After)
	}
	out, err := r.Client.GetShardIterator(ctx, in)
	if err != nil {
		return "", broker.Wrap(broker.Transient, "get shard iterator", err)
	}
	return aws.ToString(out.ShardIterator), nil
}

// Page is one GetRecords result: the records as Lambda would deliver them
// and the iterator to continue with ("" once the shard is closed and read).
type Page struct {
	Records []events.DynamoDBEventRecord
	Next    string
}

// Read fetches one page from iterator.
func (r *Reader) Read(ctx context.Context, iterator string) (Page, error) {
	out, err := r.Client.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: aws.String(iterator), Limit: aws.Int32(1000)})
	if err != nil {
		var expired *types.ExpiredIteratorException
		if errors.As(err, &expired) {
			return Page{}, broker.Wrap(broker.Conflict, "get records: iterator expired", err)
		}
		return Page{}, broker.Wrap(broker.Transient, "get records", err)
	}
	p := Page{Next: aws.ToString(out.NextShardIterator)}
	for _, rec := range out.Records {
		p.Records = append(p.Records, LambdaRecord(rec, r.StreamARN))
	}
	return p, nil
}

// ReadAll reads every shard from its oldest record, parents first, and
// calls fn with each non-empty page. Open shards are read until they
// return idleReads empty pages in a row: a stream has no end, so "caught
// up" is the best a reader can know.
func (r *Reader) ReadAll(ctx context.Context, idleReads int, fn func(ctx context.Context, shardID string, recs []events.DynamoDBEventRecord) error) error {
	shards, err := r.Shards(ctx)
	if err != nil {
		return err
	}
	for _, s := range shards {
		id := aws.ToString(s.ShardId)
		it, err := r.Iterator(ctx, id, TrimHorizon)
		if err != nil {
			return err
		}
		idle := 0
		for it != "" && idle < idleReads {
			page, err := r.Read(ctx, it)
			if err != nil {
				return fmt.Errorf("shard %s: %w", id, err)
			}
			if len(page.Records) == 0 {
				idle++
			} else {
				idle = 0
				if err := fn(ctx, id, page.Records); err != nil {
					return err
				}
			}
			it = page.Next
		}
		r.logger().Debug("shard read", "shardId", id, "closed", it == "")
	}
	return nil
}

// Poll follows the stream until ctx ends, calling fn with each page, one
// shard at a time in shard order. New shards are discovered every
// discoverEvery. When fn returns an error, the shard is read again from the
// first record of the page (as Lambda retries a failed batch) after a
// backoff; fn sees duplicates and must be idempotent.
func (r *Reader) Poll(ctx context.Context, every, discoverEvery time.Duration,
	fn func(ctx context.Context, shardID string, recs []events.DynamoDBEventRecord) (retryFrom string, err error)) error {
	iters := map[string]string{}
	closed := map[string]bool{}
	var order []string
	discover := func() error {
		shards, err := r.Shards(ctx)
		if err != nil {
			return err
		}
		order = order[:0]
		for _, s := range shards {
			id := aws.ToString(s.ShardId)
			order = append(order, id)
			if _, known := iters[id]; known || closed[id] {
				continue
			}
			it, err := r.Iterator(ctx, id, TrimHorizon)
			if err != nil {
				return err
			}
			iters[id] = it
		}
		return nil
	}
	if err := discover(); err != nil {
		return err
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	lastDiscover := time.Now()
	failures := map[string]int{}
	for {
		for _, id := range order {
			it, ok := iters[id]
			if !ok {
				continue
			}
			for it != "" {
				page, err := r.Read(ctx, it)
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					r.logger().Warn("stream read failed", "shardId", id, "err", err)
					break
				}
				if len(page.Records) == 0 {
					it = page.Next
					break
				}
				retryFrom, err := fn(ctx, id, page.Records)
				if ctx.Err() != nil {
					return nil
				}
				if err != nil || retryFrom != "" {
					failures[id]++
					r.logger().Warn("batch failed, will retry", "shardId", id, "retryFrom", retryFrom, "attempt", failures[id], "err", err)
					if retryFrom == "" {
						retryFrom = page.Records[0].Change.SequenceNumber
					}
					if it, err = r.Iterator(ctx, id, Position{Type: types.ShardIteratorTypeAtSequenceNumber, After: retryFrom}); err != nil {
						return err
					}
					break
				}
				failures[id] = 0
				it = page.Next
			}
			if it == "" {
				delete(iters, id)
				closed[id] = true
			} else {
				iters[id] = it
			}
		}
		if time.Since(lastDiscover) >= discoverEvery {
			if err := discover(); err != nil {
				r.logger().Warn("stream discovery failed", "err", err)
			}
			lastDiscover = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
