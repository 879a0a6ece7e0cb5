// Package emf writes CloudWatch Embedded Metric Format records: JSON log
// lines from which CloudWatch extracts metrics, with no API call on the
// request path.
package emf

import (
	"encoding/json"
	"io"
	"maps"
	"slices"
	"sync"
	"time"
)

// Namespace of every metric the broker publishes.
const Namespace = "CredBroker"

// Unit names of the EMF specification.
const (
	Count        = "Count"
	Milliseconds = "Milliseconds"
)

// Metric is one value.
type Metric struct {
	Name  string
	Unit  string
	Value float64
}

// Writer writes EMF records to W, one line each; safe for concurrent use.
type Writer struct {
	W   io.Writer
	Now func() time.Time
	mu  sync.Mutex
}

// Write emits metrics under the dimension set dims, with props as extra
// searchable fields (request id, user id...).
func (w *Writer) Write(dims map[string]string, props map[string]any, metrics ...Metric) error {
	if w == nil || w.W == nil || len(metrics) == 0 {
		return nil
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	rec := make(map[string]any, len(dims)+len(props)+len(metrics)+1)
	maps.Copy(rec, props)
	defs := make([]map[string]string, len(metrics))
	for i, m := range metrics {
		rec[m.Name] = m.Value
		defs[i] = map[string]string{"Name": m.Name, "Unit": m.Unit}
	}
	for k, v := range dims {
		rec[k] = v
	}
	rec["_aws"] = map[string]any{
		"Timestamp": now().UnixMilli(),
		"CloudWatchMetrics": []map[string]any{{
			"Namespace":  Namespace,
			"Dimensions": [][]string{slices.Sorted(maps.Keys(dims))},
			"Metrics":    defs,
		}},
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	_, err = w.W.Write(append(b, '\n'))
	return err
}
