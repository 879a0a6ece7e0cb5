package ddbstream_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
)

// fakeStreams is a hand-written DynamoDB Streams for what moto cannot do:
// closed shards, empty pages in the middle of a shard, expired iterators
// and throttling. Each shard is a script of sequence numbers in which ""
// stands for an empty page; GetRecords serves at most two records a page.
// It is used by one goroutine at a time.
type fakeStreams struct {
	shards []fakeShard
	// fail, when set, may fail a call instead: op is the API operation and
	// n counts its calls from 1. An ExpiredIteratorException also expires
	// the iterator for good.
	fail func(op string, n int) error

	calls   map[string]int
	serial  int
	expired map[string]bool
}

type fakeShard struct {
	id, parent string
	closed     bool
	script     []string
}

// failOn fails the calls of op numbered ns with err.
func failOn(op string, err error, ns ...int) func(string, int) error {
	return func(o string, n int) error {
		if o == op && slices.Contains(ns, n) {
			return err
		}
		return nil
	}
}

// failFrom fails every call of op from the nth on with err.
func failFrom(op string, err error, from int) func(string, int) error {
	return func(o string, n int) error {
		if o == op && n >= from {
			return err
		}
		return nil
	}
}

var (
	errThrottled = &types.LimitExceededException{Message: aws.String("rate exceeded")}
	errExpired   = &types.ExpiredIteratorException{Message: aws.String("iterator expired")}
	errTrimmed   = &types.TrimmedDataAccessException{Message: aws.String("trimmed")}
	errGone      = &types.ResourceNotFoundException{Message: aws.String("no such stream")}
)

func (f *fakeStreams) call(op string) error {
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[op]++
	if f.fail == nil {
		return nil
	}
	return f.fail(op, f.calls[op])
}

func (f *fakeStreams) shard(id string) (fakeShard, error) {
	for _, s := range f.shards {
		if s.id == id {
			return s, nil
		}
	}
	return fakeShard{}, &types.ResourceNotFoundException{Message: aws.String("no shard " + id)}
}

func (f *fakeStreams) iterator(shardID string, pos int) *string {
	f.serial++
	return aws.String(fmt.Sprintf("%s/%d/%d", shardID, pos, f.serial))
}

func (f *fakeStreams) DescribeStream(_ context.Context, _ *dynamodbstreams.DescribeStreamInput, _ ...func(*dynamodbstreams.Options)) (*dynamodbstreams.DescribeStreamOutput, error) {
	if err := f.call("DescribeStream"); err != nil {
		return nil, err
	}
	var out []types.Shard
	for _, s := range f.shards {
		sh := types.Shard{ShardId: aws.String(s.id), SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String("0")}}
		if s.parent != "" {
			sh.ParentShardId = aws.String(s.parent)
		}
		if s.closed {
			sh.SequenceNumberRange.EndingSequenceNumber = aws.String("999")
		}
		out = append(out, sh)
	}
	return &dynamodbstreams.DescribeStreamOutput{StreamDescription: &types.StreamDescription{Shards: out}}, nil
}

func (f *fakeStreams) GetShardIterator(_ context.Context, in *dynamodbstreams.GetShardIteratorInput, _ ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetShardIteratorOutput, error) {
	if err := f.call("GetShardIterator"); err != nil {
		return nil, err
	}
	s, err := f.shard(aws.ToString(in.ShardId))
	if err != nil {
		return nil, err
	}
	pos := 0
	if in.ShardIteratorType != types.ShardIteratorTypeTrimHorizon {
		i := slices.Index(s.script, aws.ToString(in.SequenceNumber))
		if i < 0 || aws.ToString(in.SequenceNumber) == "" {
			return nil, fmt.Errorf("fakeStreams: no record %q in shard %s", aws.ToString(in.SequenceNumber), s.id)
		}
		pos = i
		if in.ShardIteratorType == types.ShardIteratorTypeAfterSequenceNumber {
			pos++
		}
	}
	return &dynamodbstreams.GetShardIteratorOutput{ShardIterator: f.iterator(s.id, pos)}, nil
}

func (f *fakeStreams) GetRecords(_ context.Context, in *dynamodbstreams.GetRecordsInput, _ ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetRecordsOutput, error) {
	it := aws.ToString(in.ShardIterator)
	if f.expired[it] {
		return nil, errExpired
	}
	if err := f.call("GetRecords"); err != nil {
		if _, ok := err.(*types.ExpiredIteratorException); ok {
			if f.expired == nil {
				f.expired = map[string]bool{}
			}
			f.expired[it] = true
		}
		return nil, err
	}
	parts := strings.Split(it, "/")
	s, err := f.shard(parts[0])
	if err != nil {
		return nil, err
	}
	pos, _ := strconv.Atoi(parts[1])
	var out dynamodbstreams.GetRecordsOutput
	if pos < len(s.script) && s.script[pos] == "" {
		pos++ // an empty page
	} else {
		for ; pos < len(s.script) && s.script[pos] != "" && len(out.Records) < 2; pos++ {
			out.Records = append(out.Records, fakeRecord(s.script[pos]))
		}
	}
	if pos < len(s.script) || !s.closed {
		out.NextShardIterator = f.iterator(s.id, pos)
	}
	return &out, nil
}

func fakeRecord(seq string) types.Record {
	return types.Record{
		EventID: aws.String("event-" + seq), EventName: types.OperationTypeModify,
		Dynamodb: &types.StreamRecord{
			SequenceNumber: aws.String(seq),
			Keys:           map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "ITEM#" + seq}},
		},
	}
}
