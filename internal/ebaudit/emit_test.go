package ebaudit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
)

// faultyEventBridge is a hand-written PutEventsAPI for the faults moto cannot
// inject (partial failures, throttling, 5xx). put decides each call's
// outcome; every request is recorded, and every entry the fake reports as
// accepted is counted by its key.
type faultyEventBridge struct {
	put func(call int, entries []types.PutEventsRequestEntry) (*eventbridge.PutEventsOutput, error)

	mu       sync.Mutex
	calls    [][]types.PutEventsRequestEntry
	accepted map[string]int
}

func (f *faultyEventBridge) PutEvents(_ context.Context, in *eventbridge.PutEventsInput, _ ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, slices.Clone(in.Entries))
	out, err := f.put(len(f.calls)-1, in.Entries)
	if err != nil {
		return nil, err
	}
	if f.accepted == nil {
		f.accepted = map[string]int{}
	}
	for i, r := range out.Entries {
		if r.ErrorCode == nil && r.EventId != nil {
			f.accepted[key(in.Entries[i])]++
		}
	}
	return out, nil
}

// callKeys returns the keys of the entries of each call.
func (f *faultyEventBridge) callKeys() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([][]string, len(f.calls))
	for i, c := range f.calls {
		for _, e := range c {
			out[i] = append(out[i], key(e))
		}
	}
	return out
}

// key identifies a test entry by the pk of its ProjectionRejected detail.
func key(e types.PutEventsRequestEntry) string {
	var d struct {
		PK string `json:"pk"`
	}
	_ = json.Unmarshal([]byte(aws.ToString(e.Detail)), &d)
	return d.PK
}

// reply answers entries, failing those for which code returns a non-empty code.
func reply(entries []types.PutEventsRequestEntry, code func(i int, key string) string) *eventbridge.PutEventsOutput {
	out := &eventbridge.PutEventsOutput{Entries: make([]types.PutEventsResultEntry, len(entries))}
	for i, e := range entries {
		if c := code(i, key(e)); c != "" {
			out.Entries[i] = types.PutEventsResultEntry{ErrorCode: aws.String(c), ErrorMessage: aws.String("injected " + c)}
			out.FailedEntryCount++
			continue
		}
		out.Entries[i] = types.PutEventsResultEntry{EventId: aws.String(fmt.Sprintf("id-%s", key(e)))}
	}
	return out
}

func acceptAll(_ int, entries []types.PutEventsRequestEntry) (*eventbridge.PutEventsOutput, error) {
	return reply(entries, func(int, string) string { return "" }), nil
}

func fail(codes map[string]string) func(int, string) string {
	return func(_ int, k string) string { return codes[k] }
}

func apiError(code string, fault smithy.ErrorFault) error {
	return &smithy.GenericAPIError{Code: code, Message: "injected", Fault: fault}
}

func httpError(status int) error {
	return &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
		Err:      fmt.Errorf("injected HTTP %d", status),
	}
}

// rejected returns n ProjectionRejected events with pks "0", "1", ...
func rejected(n int) []broker.AuditEvent {
	events := make([]broker.AuditEvent, n)
	for i := range n {
		events[i] = broker.AuditEvent{
			Source:     broker.SourceProjector,
			DetailType: broker.DetailProjectionRejected,
			Time:       time.Date(2025, 3, 14, 8, 0, i, 0, time.UTC),
			Detail: broker.ProjectionRejectedDetail{
				SchemaVersion: broker.AuditSchemaVersion,
				PK:            fmt.Sprint(i), SK: "BUCKET#x", Reason: "invalid bucket name",
			},
		}
	}
	return events
}

func keys(n int) []string {
	out := make([]string, n)
	for i := range n {
		out[i] = fmt.Sprint(i)
	}
	return out
}

// sleeps records the backoffs Emit asked for instead of sleeping.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d = append(s.d, d)
	return ctx.Err()
}

func newTestEmitter(client PutEventsAPI, s *sleeps) *Emitter {
	return New(Config{
		Client:      client,
		BusName:     "audit-test",
		MaxAttempts: 4,
		Sleep:       s.sleep,
		Logger:      slog.New(slog.DiscardHandler),
	})
}

func TestEmitFaults(t *testing.T) {
	tests := []struct {
		name   string
		events int
		put    func(call int, entries []types.PutEventsRequestEntry) (*eventbridge.PutEventsOutput, error)
		// wantKind is Other for success.
		wantKind     broker.Kind
		wantInMsg    []string
		wantCalls    [][]string
		wantAccepted map[string]int
		wantSleeps   int
	}{
		{
			name:   "partially failed entries are retried alone and each event is accepted once",
			events: 4,
			put: func(call int, entries []types.PutEventsRequestEntry) (*eventbridge.PutEventsOutput, error) {
				if call == 0 {
					return reply(entries, fail(map[string]string{"1": "ThrottlingException", "3": "InternalFailure"})), nil
				}
				return acceptAll(call, entries)
			},
			wantCalls:    [][]string{{"0", "1", "2", "3"}, {"1", "3"}},
			wantAccepted: map[string]int{"0": 1, "1": 1, "2": 1, "3": 1},
			wantSleeps:   1,
		},
		{
			name:   "an entry failing on every attempt gives a transient error after MaxAttempts",
			events: 3,
			put: func(_ int, entries []types.PutEventsRequestEntry) (*eventbridge.PutEventsOutput, error) {
				return reply(entries, fail(map[string]string{"2": "InternalFailure"})), nil
			},
			wantKind:     broker.Transient,
			wantInMsg:    []string{"1 of 3", "after 4 attempts", "InternalFailure: 1"},
			wantCalls:    [][]string{{"0", "1", "2"}, {"2"}, {"2"}, {"2"}},
			wantAccepted: map[string]int{"0": 1, "1": 1},
			wantSleeps:   3,
		},
		{
			name:   "a call failing on every attempt gives a transient error after MaxAttempts",
			events: 2,
			put: func(int, []types.PutEventsRequestEntry) (*eventbridge.PutEventsOutput, error) {
				return nil, apiError("ThrottlingException", smithy.FaultClient)
			},
			wantKind:   broker.Transient,
			wantInMsg:  []string{"2 of 2", "after 4 attempts", "ThrottlingException: 2"},
			wantCalls:  [][]string{{"0", "1"}, {"0", "1"}, {"0", "1"}, {"0", "1"}},
			wantSleeps: 3,
		},
		{
			name:   "a throttled call is retried and then succeeds",
			events: 2,
			put: func(call int, entries []types.PutEventsRequestEntry) (*eventbridge.PutEventsOutput, error) {
				if call == 0 {
					return nil, apiError("ThrottlingException", smithy.FaultClient)
				}
				return acceptAll(call, entries)
			},
			wantCalls:    [][]string{{"0", "1"}, {"0", "1"}},
			wantAccepted: map[string]int{"0": 1, "1": 1},
			wantSleeps:   1,
		},
		{
			name:   "a call failing with HTTP 503 is retried and then succeeds",
			events: 1,
			put: func(call int, entries []types.PutEventsRequestEntry) (*eventbridge.PutEventsOutput, error) {
				if call < 2 {
					return nil, httpError(http.StatusServiceUnavailable)
				}
				return acceptAll(call, entries)
			},
			wantCalls:    [][]string{{"0"}, {"0"}, {"0"}},
			wantAccepted: map[string]int{"0": 1},
			wantSleeps:   2,
		},
		{
			name:   "a non-retryable entry error is an internal error and is not retried",
			events: 3,
			put: func(_ int, entries []types.PutEventsRequestEntry) (*eventbridge.PutEventsOutput, error) {
				return reply(entries, fail(map[string]string{"1": "MalformedDetail"})), nil
			},
			wantKind:     broker.Internal,
			wantInMsg:    []string{"1 of 3", "MalformedDetail: 1"},
			wantCalls:    [][]string{{"0", "1", "2"}},
			wantAccepted: map[string]int{"0": 1, "2": 1},
		},
		{
			name:   "a permanent rejection next to a retryable failure is internal after retrying the retryable one",
			events: 3,
			put: func(call int, entries []types.PutEventsRequestEntry) (*eventbridge.PutEventsOutput, error) {
				if call == 0 {
					return reply(entries, fail(map[string]string{"0": "ValidationException", "2": "ThrottlingException"})), nil
				}
				return acceptAll(call, entries)
			},
			wantKind:     broker.Internal,
			wantInMsg:    []string{"1 of 3", "ValidationException: 1"},
			wantCalls:    [][]string{{"0", "1", "2"}, {"2"}},
			wantAccepted: map[string]int{"1": 1, "2": 1},
			wantSleeps:   1,
		},
		{
			name:   "a missing bus is an internal error and is not retried",
			events: 12,
			put: func(int, []types.PutEventsRequestEntry) (*eventbridge.PutEventsOutput, error) {
				return nil, apiError("ResourceNotFoundException", smithy.FaultClient)
			},
			wantKind:  broker.Internal,
			wantInMsg: []string{"12 of 12", "ResourceNotFoundException"},
			wantCalls: [][]string{keys(10)},
		},
		{
			name:   "an unexplained call error is transient and is not retried",
			events: 1,
			put: func(int, []types.PutEventsRequestEntry) (*eventbridge.PutEventsOutput, error) {
				return nil, errors.New("something odd")
			},
			wantKind:  broker.Transient,
			wantInMsg: []string{"1 of 1"},
			wantCalls: [][]string{{"0"}},
		},
		{
			name:   "an entry without an event ID is not taken as accepted",
			events: 1,
			put: func(call int, entries []types.PutEventsRequestEntry) (*eventbridge.PutEventsOutput, error) {
				if call == 0 {
					return &eventbridge.PutEventsOutput{Entries: []types.PutEventsResultEntry{{}}}, nil
				}
				return acceptAll(call, entries)
			},
			wantCalls:    [][]string{{"0"}, {"0"}},
			wantAccepted: map[string]int{"0": 1},
			wantSleeps:   1,
		},
		{
			name:      "25 events go out in 3 requests of at most 10",
			events:    25,
			put:       acceptAll,
			wantCalls: [][]string{keys(25)[:10], keys(25)[10:20], keys(25)[20:]},
			wantAccepted: func() map[string]int {
				m := map[string]int{}
				for _, k := range keys(25) {
					m[k] = 1
				}
				return m
			}(),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := &faultyEventBridge{put: tc.put}
			var s sleeps
			err := newTestEmitter(fake, &s).Emit(context.Background(), rejected(tc.events)...)

			if got := broker.KindOf(err); got != tc.wantKind {
				t.Fatalf("Emit error kind = %v, want %v (err: %v)", got, tc.wantKind, err)
			}
			for _, want := range tc.wantInMsg {
				if !strings.Contains(broker.MessageOf(err), want) {
					t.Errorf("error message %q does not contain %q", broker.MessageOf(err), want)
				}
			}
			if diff := cmp.Diff(tc.wantCalls, fake.callKeys()); diff != "" {
				t.Errorf("entries per PutEvents call (-want +got):\n%s", diff)
			}
			wantAccepted := tc.wantAccepted
			if wantAccepted == nil {
				wantAccepted = map[string]int{}
			}
			gotAccepted := fake.accepted
			if gotAccepted == nil {
				gotAccepted = map[string]int{}
			}
			if diff := cmp.Diff(wantAccepted, gotAccepted); diff != "" {
				t.Errorf("accepted entries (-want +got):\n%s", diff)
			}
			// One backoff between consecutive attempts, none after the last.
			if len(s.d) != tc.wantSleeps {
				t.Errorf("slept %d times, want %d", len(s.d), tc.wantSleeps)
			}
		})
	}
}

func TestEmitWithNoEventsMakesNoCall(t *testing.T) {
	fake := &faultyEventBridge{put: acceptAll}
	if err := newTestEmitter(fake, &sleeps{}).Emit(context.Background()); err != nil {
		t.Fatalf("Emit() = %v, want nil", err)
	}
	if len(fake.calls) != 0 {
		t.Errorf("made %d PutEvents calls, want none", len(fake.calls))
	}
}

func TestEmitStopsWhenContextEndsDuringBackoff(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	fake := &faultyEventBridge{put: func(_ int, entries []types.PutEventsRequestEntry) (*eventbridge.PutEventsOutput, error) {
		cancel()
		return reply(entries, func(int, string) string { return "ThrottlingException" }), nil
	}}
	err := newTestEmitter(fake, &sleeps{}).Emit(ctx, rejected(2)...)
	if broker.KindOf(err) != broker.Transient || !errors.Is(err, context.Canceled) {
		t.Fatalf("Emit() = %v, want a transient error wrapping context.Canceled", err)
	}
	if len(fake.calls) != 1 {
		t.Errorf("made %d calls after the context ended, want 1", len(fake.calls))
	}
}

func TestEmitSplitsRequestsBySize(t *testing.T) {
	// Six events of about 100 KiB: two fit in 256 KiB, three do not.
	events := make([]broker.AuditEvent, 6)
	for i := range events {
		events[i] = broker.AuditEvent{
			Source: broker.SourceProjector, DetailType: broker.DetailProjectionRejected,
			Detail: broker.ProjectionRejectedDetail{PK: fmt.Sprint(i), SK: "BUCKET#x", Reason: strings.Repeat("r", 100*1024)},
		}
	}
	fake := &faultyEventBridge{put: acceptAll}
	if err := newTestEmitter(fake, &sleeps{}).Emit(context.Background(), events...); err != nil {
		t.Fatalf("Emit() = %v", err)
	}
	if diff := cmp.Diff([][]string{{"0", "1"}, {"2", "3"}, {"4", "5"}}, fake.callKeys()); diff != "" {
		t.Errorf("entries per call (-want +got):\n%s", diff)
	}
	for i, call := range fake.calls {
		size := 0
		for _, e := range call {
			size += entrySize(e)
		}
		if size > MaxRequestBytes {
			t.Errorf("call %d carries %d bytes, over the %d limit", i, size, MaxRequestBytes)
		}
	}
}

func TestEmitEntryFields(t *testing.T) {
	now := time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)
	fake := &faultyEventBridge{put: acceptAll}
	e := New(Config{Client: fake, BusName: "audit-bus", Now: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler)})
	err := e.Emit(context.Background(), broker.AuditEvent{
		Source:     broker.SourceProjector,
		DetailType: broker.DetailProjectionRejected,
		// No Time: the emitter stamps it; no SchemaVersion: the emitter fills it.
		Detail: &broker.ProjectionRejectedDetail{PK: "PROJECT#p", SK: "BUCKET#a&b", Reason: "<not> a bucket"},
	})
	if err != nil {
		t.Fatalf("Emit() = %v", err)
	}
	want := []types.PutEventsRequestEntry{{
		EventBusName: aws.String("audit-bus"),
		Source:       aws.String(broker.SourceProjector),
		DetailType:   aws.String(broker.DetailProjectionRejected),
		Time:         aws.Time(now),
		Detail:       aws.String(`{"schemaVersion":"1","pk":"PROJECT#p","sk":"BUCKET#a&b","reason":"<not> a bucket"}`),
	}}
	if diff := cmp.Diff(want, fake.calls[0], cmp.AllowUnexported(types.PutEventsRequestEntry{})); diff != "" {
		t.Errorf("PutEvents entries (-want +got):\n%s", diff)
	}
}

func TestEmitRefusesUnsendableEvents(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		event broker.AuditEvent
	}{
		{"an emitter without a bus name refuses to send", Config{}, rejected(1)[0]},
		{"an event without a source is refused", Config{BusName: "b"}, broker.AuditEvent{DetailType: "X", Detail: map[string]any{}}},
		{"an event without a detail is refused", Config{BusName: "b"}, broker.AuditEvent{Source: "s", DetailType: "X"}},
		{"a nil detail pointer is refused", Config{BusName: "b"}, broker.AuditEvent{Source: "s", DetailType: "X", Detail: (*broker.PolicyChangedDetail)(nil)}},
		{"a detail that is not a JSON object is refused", Config{BusName: "b"}, broker.AuditEvent{Source: "s", DetailType: "X", Detail: "text"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := &faultyEventBridge{put: acceptAll}
			tc.cfg.Client = fake
			tc.cfg.Logger = slog.New(slog.DiscardHandler)
			// A valid event first: nothing may be sent when any event is bad.
			err := New(tc.cfg).Emit(context.Background(), rejected(1)[0], tc.event)
			if broker.KindOf(err) != broker.Internal {
				t.Fatalf("Emit() = %v, want an internal error", err)
			}
			if len(fake.calls) != 0 {
				t.Errorf("made %d calls, want none", len(fake.calls))
			}
		})
	}
}

func TestBackoffIsCappedFullJitter(t *testing.T) {
	e := New(Config{BaseBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	for attempt := 1; attempt <= 40; attempt++ {
		ceiling := min(100*time.Millisecond, 10*time.Millisecond<<min(attempt-1, 20))
		for range 200 {
			if d := e.backoff(attempt); d < 0 || d > ceiling {
				t.Fatalf("backoff(%d) = %v, want within [0, %v]", attempt, d, ceiling)
			}
		}
	}
}

func TestTrimIsLoggedAtWarn(t *testing.T) {
	var logs bytes.Buffer
	fake := &faultyEventBridge{put: acceptAll}
	e := New(Config{Client: fake, BusName: "b", Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err := e.Emit(context.Background(), bigPolicyChanged(4000)); err != nil {
		t.Fatalf("Emit() = %v", err)
	}
	var rec struct {
		Level      string `json:"level"`
		Msg        string `json:"msg"`
		DetailType string `json:"detailType"`
	}
	if err := json.Unmarshal(logs.Bytes(), &rec); err != nil {
		t.Fatalf("want one JSON log line, got %q: %v", logs.String(), err)
	}
	want := struct{ Level, DetailType string }{"WARN", broker.DetailPolicyChanged}
	if diff := cmp.Diff(want, struct{ Level, DetailType string }{rec.Level, rec.DetailType}); diff != "" {
		t.Errorf("trim log (-want +got):\n%s\n%s", diff, logs.String())
	}
}
