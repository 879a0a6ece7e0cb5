package replay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/replay"
)

func TestReplayFromTrimHorizonReproducesTheTableTheLiveProjectorBuilt(t *testing.T) {
	f := newFixture(t)
	f.populate()
	// History the replay must get through: departures, a bucket moved
	// between projects, a prefix changed, a role changed.
	f.leave("bob", "p1")
	f.unbucket("p1", "lake-raw")
	f.bucket("p2", "lake-raw", "")
	f.project()
	f.bucket("p2", "exports", "team-b/")
	f.member("erin", "p1", "write")
	f.member("frank", "p3", "read")
	f.leave("dave", "p3")
	f.project()
	live := f.policy.Snapshot(t)

	empty := f.tables.NewPolicyTable(t)
	_, svc := f.wire(empty)
	rep, err := svc.Replay(context.Background(), time.Time{})
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	records := len(f.streamRecords())
	if rep.Records != records || rep.Delivered != records || rep.Skipped != 0 || rep.Failed != 0 {
		t.Errorf("replay report %+v, want all %d records delivered", rep, records)
	}
	if diff := cmp.Diff(live, empty.Snapshot(t)); diff != "" {
		t.Errorf("replayed table differs from the live one (-live +replayed):\n%s", diff)
	}
	if len(live.Versions) < 6 || len(live.Index) < 5 {
		t.Fatalf("the live table is too small to prove anything: %+v", live)
	}
}

func TestReplaySkipsRecordsOlderThanSince(t *testing.T) {
	f := newFixture(t)
	f.populate()
	empty := f.tables.NewPolicyTable(t)
	_, svc := f.wire(empty)
	rep, err := svc.Replay(context.Background(), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records == 0 || rep.Skipped != rep.Records || rep.Delivered != 0 || rep.Batches != 0 {
		t.Errorf("report %+v, want every record skipped", rep)
	}
	if got := empty.Snapshot(t); len(got.Versions) != 0 || len(got.Index) != 0 {
		t.Errorf("skipped records were projected: %+v", got)
	}
}

// Stream creation times have whole seconds, so a record stamped with
// since's own second may have been created after since.
func TestReplayDeliversRecordsOfTheSecondOfSince(t *testing.T) {
	since := time.Date(2025, 3, 15, 12, 0, 0, 700_000_000, time.UTC)
	stream := fakeStream{"shard-parent": records("a", 4)}
	for i, at := range []time.Time{since.Add(-2 * time.Second), since.Add(-time.Second), since.Truncate(time.Second), since.Add(time.Second)} {
		stream["shard-parent"][i].Change.ApproximateCreationDateTime = events.SecondsEpochTime{Time: at.Truncate(time.Second)}
	}
	h := &flakyHandler{fail: func(int, []string) []string { return nil }}
	svc := &replay.Service{Stream: stream, Handler: h}
	rep, err := svc.Replay(context.Background(), since)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]string{{"a002", "a003"}}, h.batches); diff != "" {
		t.Errorf("deliveries (-want +got):\n%s", diff)
	}
	if rep.Skipped != 2 || rep.Delivered != 2 {
		t.Errorf("report %+v, want 2 skipped and 2 delivered", rep)
	}
}

// fakeStream serves fixed pages (hand-written: moto cannot make the
// handler fail, and the batching rules need more records than a test
// should write).
type fakeStream map[string][]events.DynamoDBEventRecord

func (s fakeStream) ReadAll(ctx context.Context, _ int, fn func(context.Context, string, []events.DynamoDBEventRecord) error) error {
	for _, id := range []string{"shard-parent", "shard-child"} {
		if err := fn(ctx, id, s[id]); err != nil {
			return err
		}
	}
	return nil
}

// flakyHandler records what it is given and fails records as told.
type flakyHandler struct {
	batches [][]string
	fail    func(call int, seqs []string) []string
}

func (h *flakyHandler) Handle(_ context.Context, payload json.RawMessage) (events.DynamoDBEventResponse, error) {
	var ev events.DynamoDBEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return events.DynamoDBEventResponse{}, err
	}
	var seqs []string
	for _, r := range ev.Records {
		seqs = append(seqs, r.Change.SequenceNumber)
	}
	h.batches = append(h.batches, seqs)
	resp := events.DynamoDBEventResponse{}
	for _, s := range h.fail(len(h.batches), seqs) {
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.DynamoDBBatchItemFailure{ItemIdentifier: s})
	}
	return resp, nil
}

func records(prefix string, n int) []events.DynamoDBEventRecord {
	out := make([]events.DynamoDBEventRecord, n)
	for i := range out {
		out[i].EventName = "INSERT"
		out[i].Change.SequenceNumber = fmt.Sprintf("%s%03d", prefix, i)
	}
	return out
}

func TestReplayBatchesAndRedeliversFromTheFirstFailedRecord(t *testing.T) {
	stream := fakeStream{"shard-parent": records("a", 150), "shard-child": records("b", 3)}
	tests := []struct {
		name    string
		fail    func(call int, seqs []string) []string
		want    [][2]string // first and last sequence number of each delivery
		wantErr bool
	}{
		{
			name: "pages are cut into batches of at most 100, parents first",
			fail: func(int, []string) []string { return nil },
			want: [][2]string{{"a000", "a099"}, {"a100", "a149"}, {"b000", "b002"}},
		},
		{
			name: "a failed record is delivered again with everything after it",
			fail: func(call int, _ []string) []string {
				if call == 1 {
					return []string{"a060", "a040"}
				}
				return nil
			},
			want: [][2]string{{"a000", "a099"}, {"a040", "a099"}, {"a100", "a149"}, {"b000", "b002"}},
		},
		{
			name: "a failure naming no record of the batch redelivers all of it",
			fail: func(call int, _ []string) []string {
				if call == 3 {
					return []string{"unknown"}
				}
				return nil
			},
			want: [][2]string{{"a000", "a099"}, {"a100", "a149"}, {"b000", "b002"}, {"b000", "b002"}},
		},
		{
			name:    "a record failing every attempt stops the replay",
			fail:    func(call int, seqs []string) []string { return []string{"a099"} },
			want:    [][2]string{{"a000", "a099"}, {"a099", "a099"}, {"a099", "a099"}},
			wantErr: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &flakyHandler{fail: tc.fail}
			svc := &replay.Service{Stream: stream, Handler: h, MaxAttempts: 3}
			rep, err := svc.Replay(context.Background(), time.Time{})
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			var got [][2]string
			for _, b := range h.batches {
				got = append(got, [2]string{b[0], b[len(b)-1]})
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("deliveries (-want +got):\n%s", diff)
			}
			if tc.wantErr {
				if broker.KindOf(err) != broker.Transient || rep.Failed != 1 || rep.Delivered != 99 {
					t.Errorf("err kind %v, report %+v", broker.KindOf(err), rep)
				}
			} else if rep.Delivered != 153 {
				t.Errorf("delivered %d of 153", rep.Delivered)
			}
		})
	}
}
