package ddbstream

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/credbroker/credbroker/internal/backoff"
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
	// Backoff gives the wait before retry n (1, 2, ...) after a failed
	// call or batch; default backoff.Jitter(n, 100ms, 5s).
	Backoff func(n int) time.Duration
	// MaxFailures is how many failed calls in a row on one shard make
	// ReadAll or Poll give up (default 8).
	MaxFailures int
	// BatchRetries is how often Poll delivers a failing record again
	// before it logs the record and skips it (default 10, the projector's
	// MaximumRetryAttempts in template.yaml).
	BatchRetries int
}

const (
	defaultMaxFailures  = 8
	defaultBatchRetries = 10
)

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
			return nil, callError("describe stream", err)
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

// after is where reading goes on once the record seq was taken: the
// trim horizon when nothing was taken yet.
func after(seq string) Position {
	if seq == "" {
		return TrimHorizon
	}
	return Position{Type: types.ShardIteratorTypeAfterSequenceNumber, After: seq}
}

// closed reports whether a shard has stopped taking records: only then does
// GetRecords end it with an empty NextShardIterator.
func closed(s types.Shard) bool {
	return s.SequenceNumberRange != nil && aws.ToString(s.SequenceNumberRange.EndingSequenceNumber) != ""
}

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
		return "", callError("get shard iterator", err)
	}
	return aws.ToString(out.ShardIterator), nil
}

// Page is one GetRecords result: the records as Lambda would deliver them
// and the iterator to continue with ("" once the shard is closed and read).
type Page struct {
	Records []events.DynamoDBEventRecord
	Next    string
}

// Read fetches one page from iterator. An expired iterator is a Conflict
// error: get a new one and read again.
func (r *Reader) Read(ctx context.Context, iterator string) (Page, error) {
	out, err := r.Client.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: aws.String(iterator), Limit: aws.Int32(1000)})
	if err != nil {
		return Page{}, callError("get records", err)
	}
	p := Page{Next: aws.ToString(out.NextShardIterator)}
	for _, rec := range out.Records {
		p.Records = append(p.Records, LambdaRecord(rec, r.StreamARN))
	}
	return p, nil
}

// callError classifies a failed stream call. A deleted stream and records
// trimmed before they were read cannot be retried, and going on would skip
// records silently; anything else is worth another try with a new
// iterator.
func callError(op string, err error) error {
	var (
		expired *types.ExpiredIteratorException
		gone    *types.ResourceNotFoundException
		trimmed *types.TrimmedDataAccessException
	)
	switch {
	case errors.As(err, &expired):
		return broker.Wrap(broker.Conflict, op+": iterator expired", err)
	case errors.As(err, &gone):
		return broker.Wrap(broker.NotFound, op, err)
	case errors.As(err, &trimmed):
		return broker.Wrap(broker.Internal, op+": records were trimmed before they were read", err)
	default:
		return broker.Wrap(broker.Transient, op, err)
	}
}

func retryable(err error) bool {
	k := broker.KindOf(err)
	return k == broker.Transient || k == broker.Conflict
}

func (r *Reader) backoff(n int) time.Duration {
	if r.Backoff != nil {
		return r.Backoff(n)
	}
	return backoff.Jitter(n, 100*time.Millisecond, 5*time.Second)
}

// gaveUp reports the nth failed call in a row of what (a shard, or
// discovery) as final, or returns nil when it should be retried.
func (r *Reader) gaveUp(what string, n int, err error) error {
	if !retryable(err) {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n >= cmp.Or(r.MaxFailures, defaultMaxFailures) {
		return fmt.Errorf("%s: %d failed calls in a row: %w", what, n, err)
	}
	r.logger().Warn("stream read failed, will retry", "in", what, "attempt", n, "err", err)
	return nil
}

// ReadAll reads every shard from its oldest record, parents first, and
// calls fn with each non-empty page. A closed shard is read to its end:
// GetRecords may return empty pages before it. An open shard is read until
// it returns idleReads empty pages in a row: a stream has no end, so
// "caught up" is the best a reader can know. A failed call (an expired
// iterator, throttling) is retried after a backoff from just after the
// last record fn took, so fn sees every record once; after MaxFailures in
// a row ReadAll returns the error.
func (r *Reader) ReadAll(ctx context.Context, idleReads int, fn func(ctx context.Context, shardID string, recs []events.DynamoDBEventRecord) error) error {
	shards, err := r.Shards(ctx)
	if err != nil {
		return err
	}
	for _, s := range shards {
		if err := r.readShard(ctx, s, idleReads, fn); err != nil {
			return err
		}
	}
	return nil
}

func (r *Reader) readShard(ctx context.Context, s types.Shard, idleReads int, fn func(ctx context.Context, shardID string, recs []events.DynamoDBEventRecord) error) error {
	id := aws.ToString(s.ShardId)
	isClosed := closed(s)
	var it, last string // it is "" when a new iterator is needed
	idle, failures := 0, 0
	for isClosed || idle < idleReads {
		var page Page
		var err error
		if it == "" {
			it, err = r.Iterator(ctx, id, after(last))
		}
		if err == nil {
			page, err = r.Read(ctx, it)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			failures++
			if err := r.gaveUp("shard "+id, failures, err); err != nil {
				return err
			}
			if err := backoff.Sleep(ctx, r.backoff(failures)); err != nil {
				return err
			}
			it = ""
			continue
		}
		failures = 0
		if len(page.Records) == 0 {
			idle++
		} else {
			idle = 0
			if err := fn(ctx, id, page.Records); err != nil {
				return err
			}
			last = page.Records[len(page.Records)-1].Change.SequenceNumber
		}
		if page.Next == "" {
			break
		}
		it = page.Next
	}
	r.logger().Debug("shard read", "shardId", id, "closed", isClosed, "idle", idle)
	return nil
}

// Poll follows the stream until ctx ends, calling fn with each page, shard
// by shard in shard order; a child shard waits until its parent is read to
// the end. New shards are discovered every discoverEvery.
//
// When fn returns an error or retryFrom (the first record it did not
// take), the shard backs off and is read again from that record, as Lambda
// retries a failed batch: fn sees duplicates and must be idempotent. Other
// shards go on meanwhile. After BatchRetries redeliveries the failing
// record is logged as an error and skipped, as Lambda hands a batch to the
// on-failure destination (BisectBatchOnFunctionError narrows it to the
// record). A failed call backs off the same way and goes on with a new
// iterator from where fn left off.
//
// Poll returns nil when ctx ends, and an error when the stream is gone,
// records were trimmed unread, or MaxFailures calls in a row failed on one
// shard or in discovery.
func (r *Reader) Poll(ctx context.Context, every, discoverEvery time.Duration,
	fn func(ctx context.Context, shardID string, recs []events.DynamoDBEventRecord) (retryFrom string, err error)) error {
	p := &poller{r: r, fn: fn, shards: map[string]*shardState{}}
	tick := time.NewTicker(every)
	defer tick.Stop()
	var lastDiscover time.Time
	discoverFailures := 0
	for {
		if time.Since(lastDiscover) >= discoverEvery {
			lastDiscover = time.Now()
			if err := p.discover(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				discoverFailures++
				if err := r.gaveUp("stream discovery", discoverFailures, err); err != nil {
					return err
				}
			} else {
				discoverFailures = 0
			}
		}
		for _, s := range p.order {
			if s.done || time.Now().Before(s.notBefore) || !p.parentDone(s) {
				continue
			}
			err := p.poll(ctx, s)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

type poller struct {
	r      *Reader
	fn     func(ctx context.Context, shardID string, recs []events.DynamoDBEventRecord) (string, error)
	shards map[string]*shardState // the shards DescribeStream last listed
	order  []*shardState          // parents first
}

// shardState is where Poll is in one shard.
type shardState struct {
	id, parent string
	pos        Position // just after the last record fn took
	it         string   // iterator to read next; "" to get one at pos
	done       bool     // closed and read to the end
	failures   int      // failed calls in a row
	failing    string   // the record fn last failed on
	attempts   int      // failed deliveries of failing
	notBefore  time.Time
}

func (p *poller) discover(ctx context.Context) error {
	shards, err := p.r.Shards(ctx)
	if err != nil {
		return err
	}
	known := p.shards
	p.shards = make(map[string]*shardState, len(shards))
	p.order = p.order[:0]
	for _, s := range shards {
		id := aws.ToString(s.ShardId)
		st, ok := known[id]
		if !ok {
			st = &shardState{id: id, parent: aws.ToString(s.ParentShardId), pos: TrimHorizon}
		}
		p.shards[id] = st
		p.order = append(p.order, st)
	}
	return nil
}

// parentDone reports whether s may be read: its records follow any of its
// parent's for the same item. A parent that aged out of the stream holds
// nothing left to read.
func (p *poller) parentDone(s *shardState) bool {
	parent, ok := p.shards[s.parent]
	return !ok || parent.done
}

// poll reads s until it is caught up or must wait. It returns an error
// only when Poll should give up.
func (p *poller) poll(ctx context.Context, s *shardState) error {
	r := p.r
	for !s.done {
		if s.it == "" {
			it, err := r.Iterator(ctx, s.id, s.pos)
			if err != nil {
				return p.callFailed(ctx, s, err)
			}
			s.it = it
		}
		page, err := r.Read(ctx, s.it)
		if err != nil {
			// An expired iterator cannot be read again, and after any
			// other failure a new one is as good.
			s.it = ""
			return p.callFailed(ctx, s, err)
		}
		s.failures = 0
		if len(page.Records) == 0 {
			s.it, s.done = page.Next, page.Next == ""
			return nil
		}
		retryFrom, err := p.fn(ctx, s.id, page.Records)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil && retryFrom == "" {
			s.failing, s.attempts = "", 0
			s.pos = after(page.Records[len(page.Records)-1].Change.SequenceNumber)
			s.it, s.done = page.Next, page.Next == ""
			continue
		}
		if retryFrom == "" {
			retryFrom = page.Records[0].Change.SequenceNumber
		}
		if err == nil {
			err = fmt.Errorf("the handler reported record %s as failed", retryFrom)
		}
		if retryFrom != s.failing {
			s.failing, s.attempts = retryFrom, 0
		}
		s.attempts++
		s.it = ""
		if s.attempts > cmp.Or(r.BatchRetries, defaultBatchRetries) {
			r.logger().Error("record skipped: delivery failed every time", "shardId", s.id,
				"attempts", s.attempts, "record", recordAttrs(page.Records, retryFrom), "err", err)
			s.failing, s.attempts = "", 0
			s.pos = after(retryFrom)
			continue
		}
		r.logger().Warn("batch failed, will retry", "shardId", s.id, "retryFrom", retryFrom, "attempt", s.attempts, "err", err)
		s.pos = Position{Type: types.ShardIteratorTypeAtSequenceNumber, After: retryFrom}
		s.notBefore = time.Now().Add(r.backoff(s.attempts))
		return nil
	}
	return nil
}

// callFailed makes s back off after a failed call, or returns the error
// when Poll should give up.
func (p *poller) callFailed(ctx context.Context, s *shardState, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	s.failures++
	if err := p.r.gaveUp("shard "+s.id, s.failures, err); err != nil {
		return err
	}
	s.notBefore = time.Now().Add(p.r.backoff(s.failures))
	return nil
}

// recordAttrs names the record seq of recs in a log line, so that an
// operator can find the item and replay it.
func recordAttrs(recs []events.DynamoDBEventRecord, seq string) slog.Value {
	attrs := []slog.Attr{slog.String("sequenceNumber", seq)}
	for _, rec := range recs {
		if rec.Change.SequenceNumber != seq {
			continue
		}
		keys, _ := json.Marshal(rec.Change.Keys)
		attrs = append(attrs, slog.String("eventId", rec.EventID), slog.String("eventName", rec.EventName),
			slog.String("keys", string(keys)))
		break
	}
	return slog.GroupValue(attrs...)
}
