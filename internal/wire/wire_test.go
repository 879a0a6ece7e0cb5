package wire_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/credbroker/credbroker/internal/logging"
	"github.com/credbroker/credbroker/internal/projector"
	"github.com/credbroker/credbroker/internal/wire"
)

// In Lambda, log lines and metric (EMF) lines share stdout. Metric lines
// carry no "level", so only the logger may filter (template.yaml lets
// Lambda pass every line): at every CREDBROKER_LOG_LEVEL the metrics are written, and
// the logger drops what is below its level.
func TestMetricLinesAreWrittenAtEveryLogLevel(t *testing.T) {
	for _, tc := range []struct {
		level     slog.Level
		infoLines bool
	}{
		{slog.LevelDebug, true}, {slog.LevelInfo, true}, {slog.LevelWarn, false}, {slog.LevelError, false},
	} {
		t.Run(tc.level.String(), func(t *testing.T) {
			var stdout bytes.Buffer
			// An empty batch calls no AWS API; any call would fail here.
			awsCfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String("http://127.0.0.1:1")}
			cfg := projector.Config{MembershipTable: "m", PolicyTable: "p", AuditBusName: "b", Partition: "aws", LogLevel: tc.level}
			h := wire.Projector(cfg, awsCfg, logging.New(&stdout, cfg.LogLevel, "projector"), &stdout)
			if _, err := h.Handle(t.Context(), json.RawMessage(`{"Records":[]}`)); err != nil {
				t.Fatal(err)
			}
			metrics, info := 0, 0
			for l := range strings.Lines(stdout.String()) {
				var line map[string]any
				if err := json.Unmarshal([]byte(l), &line); err != nil {
					t.Fatalf("stdout line is not JSON: %v: %q", err, l)
				}
				if _, ok := line["_aws"]; ok {
					metrics++
					if _, ok := line["level"]; ok {
						t.Errorf("metric line has a level: %s", l)
					}
				}
				if line["level"] == "INFO" {
					info++
				}
			}
			if metrics != 1 {
				t.Errorf("%d metric lines at CREDBROKER_LOG_LEVEL %s, want 1:\n%s", metrics, tc.level, stdout.String())
			}
			if (info > 0) != tc.infoLines {
				t.Errorf("%d INFO lines at CREDBROKER_LOG_LEVEL %s:\n%s", info, tc.level, stdout.String())
			}
		})
	}
}
