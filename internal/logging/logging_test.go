package logging_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/logging"
)

// Lambda's JSON log format reads "level" and an RFC 3339 "timestamp"; a
// line without them is re-stamped and taken for INFO.
func TestLinesCarryTheLevelAndTimestampLambdaReads(t *testing.T) {
	var buf bytes.Buffer
	before := time.Now()
	logging.New(&buf, slog.LevelDebug, "projector").Warn("slow", "ms", 12)
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("not one JSON line: %v: %q", err, buf.String())
	}
	ts, _ := line["timestamp"].(string)
	got, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		t.Fatalf("timestamp %q is not RFC 3339: %v (line %s)", ts, err, buf.String())
	}
	if !strings.HasSuffix(ts, "Z") || got.Before(before.Add(-time.Second)) || got.After(time.Now().Add(time.Second)) {
		t.Errorf("timestamp %q is not the time of the call in UTC", ts)
	}
	if _, ok := line["time"]; ok {
		t.Errorf("line keeps slog's time key: %s", buf.String())
	}
	delete(line, "timestamp")
	want := map[string]any{"level": "WARN", "msg": "slow", "function": "projector", "ms": 12.0}
	if diff := cmp.Diff(want, line); diff != "" {
		t.Errorf("line (-want +got):\n%s", diff)
	}
}

func TestGroupedTimeAttributesAreLeftAlone(t *testing.T) {
	var buf bytes.Buffer
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	logging.New(&buf, slog.LevelInfo, "").WithGroup("req").Info("x", "time", at)
	var line struct {
		Req map[string]any `json:"req"`
	}
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	if line.Req["time"] != "2026-01-02T03:04:05Z" {
		t.Errorf("req.time = %v, want the attribute as logged", line.Req["time"])
	}
}

// The application's level does the filtering Lambda no longer does.
func TestTheLoggerFiltersAtItsLevel(t *testing.T) {
	for _, tc := range []struct {
		level slog.Level
		want  []string
	}{
		{slog.LevelDebug, []string{"DEBUG", "INFO", "WARN", "ERROR"}},
		{slog.LevelInfo, []string{"INFO", "WARN", "ERROR"}},
		{slog.LevelWarn, []string{"WARN", "ERROR"}},
		{slog.LevelError, []string{"ERROR"}},
	} {
		t.Run(tc.level.String(), func(t *testing.T) {
			var buf bytes.Buffer
			log := logging.New(&buf, tc.level, "f")
			log.Debug("d")
			log.Info("i")
			log.Warn("w")
			log.Error("e")
			var got []string
			for l := range strings.Lines(buf.String()) {
				var line struct{ Level string }
				if err := json.Unmarshal([]byte(l), &line); err != nil {
					t.Fatal(err)
				}
				got = append(got, line.Level)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("levels written (-want +got):\n%s", diff)
			}
		})
	}
}
