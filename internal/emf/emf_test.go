package emf

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestWriteProducesAnEMFRecord(t *testing.T) {
	var buf bytes.Buffer
	w := &Writer{W: &buf, Now: func() time.Time { return time.UnixMilli(1700000000000) }}
	err := w.Write(map[string]string{"Function": "credentials"}, map[string]any{"requestId": "r1"},
		Metric{"Issued", Count, 1}, Metric{"Latency", Milliseconds, 12.5})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("not one JSON line: %v: %q", err, buf.String())
	}
	want := map[string]any{
		"Function": "credentials", "requestId": "r1", "Issued": 1.0, "Latency": 12.5,
		"_aws": map[string]any{
			"Timestamp": 1.7e12,
			"CloudWatchMetrics": []any{map[string]any{
				"Namespace":  "CredBroker",
				"Dimensions": []any{[]any{"Function"}},
				"Metrics": []any{
					map[string]any{"Name": "Issued", "Unit": "Count"},
					map[string]any{"Name": "Latency", "Unit": "Milliseconds"},
				},
			}},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("record (-want +got):\n%s", diff)
	}
}

func TestWriteWithoutMetricsWritesNothing(t *testing.T) {
	var buf bytes.Buffer
	if err := (&Writer{W: &buf}).Write(nil, nil); err != nil || buf.Len() != 0 {
		t.Errorf("err=%v, wrote %q", err, buf.String())
	}
}
