package ddbstream_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/ddbstream"
)

// reader reads f with waits recorded in *waits instead of slept through
// (almost: each is a microsecond, or wait when it is set).
func reader(f *fakeStreams, waits *[]int, wait time.Duration, log *slog.Logger) *ddbstream.Reader {
	return &ddbstream.Reader{
		Client: f, StreamARN: "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x",
		Logger: log, MaxFailures: 3, BatchRetries: 2,
		Backoff: func(n int) time.Duration {
			*waits = append(*waits, n)
			return max(wait, time.Microsecond)
		},
	}
}

func seqs(recs []events.DynamoDBEventRecord) string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Change.SequenceNumber)
	}
	return strings.Join(out, ",")
}

func TestReadAll(t *testing.T) {
	one := func(script ...string) []fakeShard { return []fakeShard{{id: "s1", closed: true, script: script}} }
	tests := []struct {
		name      string
		shards    []fakeShard
		idleReads int
		fail      func(op string, n int) error
		want      []string // pages as "shard:seq,seq"
		wantWaits []int
		wantKind  broker.Kind // of the error; 0 for none
	}{
		{
			name:   "closed shard is read past empty pages to its end",
			shards: one("a", "", "", "", "b", "c", "", "d"), idleReads: 2,
			want: []string{"s1:a", "s1:b,c", "s1:d"},
		},
		{
			name:   "open shard ends after idleReads empty pages in a row",
			shards: []fakeShard{{id: "s1", script: []string{"a", "", "b", "", "", "c"}}}, idleReads: 2,
			want: []string{"s1:a", "s1:b"},
		},
		{
			name: "parent is read before its child",
			shards: []fakeShard{
				{id: "child", parent: "parent", script: []string{"c1"}},
				{id: "parent", closed: true, script: []string{"p1", "p2", "p3"}},
			},
			idleReads: 1,
			want:      []string{"parent:p1,p2", "parent:p3", "child:c1"},
		},
		{
			name:   "expired iterator is replaced after the last delivered record",
			shards: one("a", "b", "c", "d", "e"), idleReads: 1, fail: failOn("GetRecords", errExpired, 2),
			want: []string{"s1:a,b", "s1:c,d", "s1:e"}, wantWaits: []int{1},
		},
		{
			name:   "expired iterator before any record restarts at the trim horizon",
			shards: one("a", "b", "c"), idleReads: 1, fail: failOn("GetRecords", errExpired, 1),
			want: []string{"s1:a,b", "s1:c"}, wantWaits: []int{1},
		},
		{
			name:   "throttled reads are retried with growing waits",
			shards: one("a", "b", "c", "d"), idleReads: 1, fail: failOn("GetRecords", errThrottled, 2, 3),
			want: []string{"s1:a,b", "s1:c,d"}, wantWaits: []int{1, 2},
		},
		{
			name:   "failed GetShardIterator is retried",
			shards: one("a"), idleReads: 1, fail: failOn("GetShardIterator", errThrottled, 1, 2),
			want: []string{"s1:a"}, wantWaits: []int{1, 2},
		},
		{
			name:   "throttling that does not stop ends ReadAll with a transient error",
			shards: one("a", "b", "c"), idleReads: 1, fail: failFrom("GetRecords", errThrottled, 2),
			want: []string{"s1:a,b"}, wantWaits: []int{1, 2}, wantKind: broker.Transient,
		},
		{
			name:   "trimmed records end ReadAll at once instead of being skipped",
			shards: one("a", "b", "c"), idleReads: 1, fail: failOn("GetRecords", errTrimmed, 2),
			want: []string{"s1:a,b"}, wantKind: broker.Internal,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeStreams{shards: tt.shards, fail: tt.fail}
			var waits []int
			var got []string
			err := reader(f, &waits, 0, nil).ReadAll(context.Background(), tt.idleReads, func(_ context.Context, shardID string, recs []events.DynamoDBEventRecord) error {
				got = append(got, shardID+":"+seqs(recs))
				return nil
			})
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("pages (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantWaits, waits); diff != "" {
				t.Errorf("backoff attempts (-want +got):\n%s", diff)
			}
			if tt.wantKind == 0 && err != nil || tt.wantKind != 0 && broker.KindOf(err) != tt.wantKind {
				t.Errorf("err = %v (kind %v), want kind %v", err, broker.KindOf(err), tt.wantKind)
			}
		})
	}
}

func TestPoll(t *testing.T) {
	// always fails every delivery of shard s1.
	always := func(shard string, _ []string) (string, error) {
		if shard == "s1" {
			return "", broker.Errorf(broker.Transient, "project", "policy table unavailable")
		}
		return "", nil
	}
	tests := []struct {
		name   string
		shards []fakeShard
		fail   func(op string, n int) error
		// batch answers each delivery; nil takes everything.
		batch func(shard string, seqs []string) (retryFrom string, err error)
		wait  time.Duration // each backoff, instead of a microsecond
		until string        // Poll is stopped once this record is taken
		want  []string      // deliveries as "shard:seq,seq ok|fail"
		// wantWaits are the backoff attempts asked for.
		wantWaits   []int
		wantKind    broker.Kind // of Poll's error; 0 for none
		wantSkipped []string    // sequence numbers logged as skipped
	}{
		{
			name:   "expired iterator is got again after the last record taken",
			shards: []fakeShard{{id: "s1", script: []string{"a", "b", "c", "d"}}},
			fail:   failOn("GetRecords", errExpired, 2), until: "d",
			want: []string{"s1:a,b ok", "s1:c,d ok"}, wantWaits: []int{1},
		},
		{
			name:   "failed reads back off with growing waits",
			shards: []fakeShard{{id: "s1", script: []string{"a", "b", "c"}}},
			fail:   failOn("GetRecords", errThrottled, 1, 2), until: "c",
			want: []string{"s1:a,b ok", "s1:c ok"}, wantWaits: []int{1, 2},
		},
		{
			name:   "failed batch backs off and is delivered again from retryFrom",
			shards: []fakeShard{{id: "s1", script: []string{"a", "b", "c"}}},
			batch:  failFirst("s1", 1, "b"), until: "c",
			want: []string{"s1:a,b fail", "s1:b,c ok"}, wantWaits: []int{1},
		},
		{
			name: "child waits while its parent's batch fails",
			shards: []fakeShard{
				{id: "parent", closed: true, script: []string{"p1", "p2"}},
				{id: "child", parent: "parent", script: []string{"c1"}},
			},
			batch: failFirst("parent", 2, ""), until: "c1",
			want:      []string{"parent:p1,p2 fail", "parent:p1,p2 fail", "parent:p1,p2 ok", "child:c1 ok"},
			wantWaits: []int{1, 2},
		},
		{
			name:   "child whose parent aged out of the stream is read",
			shards: []fakeShard{{id: "child", parent: "gone", script: []string{"c1"}}},
			until:  "c1",
			want:   []string{"child:c1 ok"},
		},
		{
			name:   "poison record is logged and skipped after BatchRetries redeliveries",
			shards: []fakeShard{{id: "s1", script: []string{"a", "b", "c"}}},
			batch: func(_ string, seqs []string) (string, error) {
				if slices.Contains(seqs, "b") {
					return "b", nil
				}
				return "", nil
			},
			until:       "c",
			want:        []string{"s1:a,b fail", "s1:b,c fail", "s1:b,c fail", "s1:c ok"},
			wantWaits:   []int{1, 2},
			wantSkipped: []string{"b"},
		},
		{
			name:   "failed GetShardIterator during a retry is retried",
			shards: []fakeShard{{id: "s1", script: []string{"a", "b", "c"}}},
			fail:   failOn("GetShardIterator", errThrottled, 2),
			batch:  failFirst("s1", 1, "b"), until: "c",
			want: []string{"s1:a,b fail", "s1:b,c ok"}, wantWaits: []int{1, 1},
		},
		{
			name: "shard backing off does not hold up its sibling",
			shards: []fakeShard{
				{id: "s1", script: []string{"a"}},
				{id: "s2", script: []string{"b"}},
			},
			batch: always, wait: time.Hour, until: "b",
			want: []string{"s1:a fail", "s2:b ok"}, wantWaits: []int{1},
		},
		{
			name:   "trimmed records end Poll with an error",
			shards: []fakeShard{{id: "s1", script: []string{"a"}}},
			fail:   failOn("GetRecords", errTrimmed, 1),
			want:   nil, wantKind: broker.Internal,
		},
		{
			name:   "deleted stream ends Poll with an error",
			shards: []fakeShard{{id: "s1", script: []string{"a"}}},
			fail:   failOn("DescribeStream", errGone, 1),
			want:   nil, wantKind: broker.NotFound,
		},
		{
			name:   "reads failing MaxFailures times in a row end Poll",
			shards: []fakeShard{{id: "s1", script: []string{"a"}}},
			fail:   failFrom("GetRecords", errThrottled, 1),
			want:   nil, wantWaits: []int{1, 2}, wantKind: broker.Transient,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeStreams{shards: tt.shards, fail: tt.fail}
			var logs bytes.Buffer
			var waits []int
			r := reader(f, &waits, tt.wait, slog.New(slog.NewJSONHandler(&logs, nil)))
			// The deadline only stops a Poll that never takes tt.until.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var got []string
			err := r.Poll(ctx, time.Millisecond, time.Hour, func(_ context.Context, shardID string, recs []events.DynamoDBEventRecord) (string, error) {
				var page []string
				for _, r := range recs {
					page = append(page, r.Change.SequenceNumber)
				}
				retryFrom, err := "", error(nil)
				if tt.batch != nil {
					retryFrom, err = tt.batch(shardID, page)
				}
				outcome := " ok"
				if err != nil || retryFrom != "" {
					outcome = " fail"
				} else if slices.Contains(page, tt.until) {
					cancel()
				}
				got = append(got, shardID+":"+strings.Join(page, ",")+outcome)
				return retryFrom, err
			})
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("deliveries (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantWaits, waits); diff != "" {
				t.Errorf("backoff attempts (-want +got):\n%s", diff)
			}
			if tt.wantKind == 0 && err != nil || tt.wantKind != 0 && broker.KindOf(err) != tt.wantKind {
				t.Errorf("err = %v (kind %v), want kind %v", err, broker.KindOf(err), tt.wantKind)
			}
			if diff := cmp.Diff(tt.wantSkipped, skipped(t, &logs)); diff != "" {
				t.Errorf("records logged as skipped (-want +got):\n%s", diff)
			}
		})
	}
}

// failFirst fails the first n deliveries of shard, asking for
// redelivery from retryFrom (or, when it is "", with an error).
func failFirst(shard string, n int, retryFrom string) func(string, []string) (string, error) {
	seen := 0
	return func(s string, _ []string) (string, error) {
		if s != shard {
			return "", nil
		}
		if seen++; seen > n {
			return "", nil
		}
		if retryFrom != "" {
			return retryFrom, nil
		}
		return "", broker.Errorf(broker.Transient, "project", "policy table unavailable")
	}
}

// skipped returns the sequence numbers of the records logged as skipped,
// checking that each names its item.
func skipped(t *testing.T, logs io.Reader) []string {
	t.Helper()
	var out []string
	lines := bufio.NewScanner(logs)
	for lines.Scan() {
		var line struct {
			Level  string
			Record struct{ SequenceNumber, EventID, Keys string }
		}
		if err := json.Unmarshal(lines.Bytes(), &line); err != nil {
			t.Fatalf("log line %s: %v", lines.Bytes(), err)
		}
		if line.Level != "ERROR" {
			continue
		}
		if !strings.Contains(line.Record.Keys, "ITEM#"+line.Record.SequenceNumber) || line.Record.EventID == "" {
			t.Errorf("skipped record is not named: %s", lines.Bytes())
		}
		out = append(out, line.Record.SequenceNumber)
	}
	return out
}
