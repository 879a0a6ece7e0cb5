package replay_test

import (
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/exitcode"
	"github.com/credbroker/credbroker/internal/replay"
)

func TestSampleEventsDecodeAndRoundTrip(t *testing.T) {
	want := map[string]replay.Request{
		"rebuild.json": {Mode: replay.ModeRebuild},
		"verify.json":  {Mode: replay.ModeVerify},
		"replay.json":  {Mode: replay.ModeReplay, Since: time.Date(2025, 3, 15, 0, 0, 0, 0, time.UTC)},
	}
	files, err := filepath.Glob("../../events/replay/*.json")
	if err != nil || len(files) != len(want) {
		t.Fatalf("sample events %v (%v), want %d files", files, err, len(want))
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			req, err := replay.DecodeEvent(data)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if diff := cmp.Diff(want[filepath.Base(path)], req); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
			again, err := json.Marshal(req.Event())
			if err != nil {
				t.Fatal(err)
			}
			back, err := replay.DecodeEvent(again)
			if err != nil || !back.Since.Equal(req.Since) || back.Mode != req.Mode {
				t.Errorf("round trip through %s gave %+v, %v", again, back, err)
			}
		})
	}
}

func TestStrictDecodingStillAcceptsWellFormedEvents(t *testing.T) {
	tests := []struct {
		name, event string
		want        replay.Request
	}{
		{"fields in any order are accepted", `{"since":"2025-03-15T00:00:00Z","mode":"replay"}`,
			replay.Request{Mode: replay.ModeReplay, Since: time.Date(2025, 3, 15, 0, 0, 0, 0, time.UTC)}},
		{"whitespace around the object is accepted", " \n{ \"mode\" : \"rebuild\" }\n ", replay.Request{Mode: replay.ModeRebuild}},
		{"an escaped field name meaning mode is accepted", `{"mod\u0065":"verify"}`, replay.Request{Mode: replay.ModeVerify}},
		{"an empty since is no since", `{"mode":"replay","since":""}`, replay.Request{Mode: replay.ModeReplay}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := replay.DecodeEvent([]byte(tc.event))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTheScheduledVerifyEventIsAccepted(t *testing.T) {
	// template.yaml, DailyVerifySchedule: Input: '{"mode":"verify"}'
	req, err := replay.DecodeEvent([]byte(`{"mode":"verify"}`))
	if err != nil || req.Mode != replay.ModeVerify {
		t.Fatalf("got %+v, %v", req, err)
	}
}

func TestInvalidEventsAreRejectedWithAClearMessage(t *testing.T) {
	tests := []struct {
		name, event, says string
	}{
		{"unknown field is rejected", `{"mode":"verify","dryRun":true}`, `unknown field "dryRun"`},
		{"misspelt field is rejected", `{"Mode ":"verify"}`, "unknown field"},
		{"unknown mode is rejected", `{"mode":"repair"}`, `unknown mode "repair"`},
		{"missing mode is rejected", `{}`, "mode is required"},
		{"null is rejected", `null`, "null"},
		{"empty payload is rejected", ``, "event must be"},
		{"mode of the wrong type is rejected", `{"mode":1}`, "event must be"},
		{"since on verify is rejected", `{"mode":"verify","since":"2025-03-15T00:00:00Z"}`, "replay only"},
		{"since that is not RFC 3339 is rejected", `{"mode":"replay","since":"yesterday"}`, "not an RFC 3339 time"},
		{"a second JSON value is rejected", `{"mode":"verify"}{"mode":"rebuild"}`, "after the JSON object"},
		{"a repeated mode is rejected, not won by the last", `{"mode":"verify","mode":"rebuild"}`, `field "mode" given twice`},
		{"a repeated since is rejected", `{"mode":"replay","since":"2025-03-15T00:00:00Z","since":"2000-01-01T00:00:00Z"}`, `field "since" given twice`},
		{"an upper-case field name is rejected", `{"MODE":"rebuild"}`, `unknown field "MODE"`},
		{"a capitalised field name is rejected", `{"Mode":"verify"}`, `unknown field "Mode"`},
		{"a field differing in case from one given is rejected", `{"mode":"verify","Mode":"rebuild"}`, `unknown field "Mode"`},
		{"a capitalised since is rejected", `{"mode":"replay","Since":"2025-03-15T00:00:00Z"}`, `unknown field "Since"`},
		{"an array is rejected", `[{"mode":"verify"}]`, "not an object"},
		{"a string is rejected", `"verify"`, "not an object"},
		{"a truncated object is rejected", `{"mode":"verify"`, "event must be"},
		{"a trailing comma is rejected", `{"mode":"verify",}`, "event must be"},
		{"since of the wrong type is rejected", `{"mode":"replay","since":20250315}`, "since is 20250315, want a string"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := replay.DecodeEvent([]byte(tc.event))
			if err == nil {
				t.Fatal("accepted")
			}
			if broker.KindOf(err) != broker.Invalid || replay.ExitCode(err) != exitcode.Usage {
				t.Errorf("kind %v, exit code %d: want invalid, 2", broker.KindOf(err), replay.ExitCode(err))
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"success exits 0", nil, exitcode.OK},
		{"drift exits 1", &replay.DriftError{}, exitcode.Found},
		{"wrapped drift exits 1", errors.Join(&replay.DriftError{}), exitcode.Found},
		{"usage error exits 2", broker.Errorf(broker.Invalid, "request", "bad"), exitcode.Usage},
		{"dependency failure exits 3", broker.Errorf(broker.Transient, "scan", "throttled"), exitcode.Failure},
		{"unclassified failure exits 3", errors.New("boom"), exitcode.Failure},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := replay.ExitCode(tc.err); got != tc.want {
				t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}

func TestConfigFromEnv(t *testing.T) {
	env := map[string]string{
		"CREDBROKER_MEMBERSHIP_TABLE": "m", "CREDBROKER_POLICY_TABLE": "p", "CREDBROKER_MEMBERSHIP_STREAM_ARN": "arn:aws:dynamodb:us-east-1:1:table/m/stream/x",
		"CREDBROKER_EVENT_BUS": "bus", "CREDBROKER_LOG_LEVEL": "DEBUG",
	}
	c, err := replay.ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	want := replay.Config{MembershipTable: "m", PolicyTable: "p", StreamARN: env["CREDBROKER_MEMBERSHIP_STREAM_ARN"],
		AuditBusName: "bus", Partition: "aws", LogLevel: slog.LevelDebug}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	_, err = replay.ConfigFromEnv(func(string) string { return "" })
	for _, name := range []string{"CREDBROKER_MEMBERSHIP_TABLE", "CREDBROKER_POLICY_TABLE", "CREDBROKER_EVENT_BUS"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("empty environment: error %v does not name %s", err, name)
		}
	}
}

func TestProgressLines(t *testing.T) {
	tests := []struct {
		name string
		st   replay.Status
		want string
	}{
		{
			name: "known total gives percent and ETA",
			st: replay.Status{Mode: replay.ModeRebuild, Phase: "memberships", Items: 250, Total: 1000, Users: 80, Changed: 3,
				Elapsed: 10 * time.Second, Rate: 25, ETA: 30 * time.Second},
			want: "rebuild memberships: 250 items of ~1000 (25%), 80 users, 3 changed, 25 items/s, 10s elapsed, ETA 30s",
		},
		{
			name: "failures and the end are called out",
			st: replay.Status{Mode: replay.ModeVerify, Phase: "policies", Items: 10, Users: 2, Failed: 1,
				Elapsed: time.Second, Rate: 10, Done: true},
			want: "verify policies: 10 items, 2 users, 0 changed, 1 FAILED, 10 items/s, 1s elapsed, done",
		},
		{
			name: "stream position is shown",
			st: replay.Status{Mode: replay.ModeReplay, Phase: "stream", Items: 5, Elapsed: time.Second, Rate: 5,
				At: time.Date(2025, 3, 15, 1, 2, 3, 0, time.UTC)},
			want: "replay stream: 5 items, 0 users, 0 changed, 5 items/s, 1s elapsed, at 2025-03-15T01:02:03Z",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := replay.FormatStatus(tc.st); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
