package replay_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"testing"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/replay"
)

// The function refuses what it cannot run before it runs anything: a
// malformed event, and a replay without the stream to read.
func TestTheFunctionRefusesWhatItCannotRun(t *testing.T) {
	f := &replay.Function{Service: &replay.Service{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, payload := range []string{`{"mode":"repair"}`, `{"Mode":"verify"}`, `null`, `{"mode":"replay"}`} {
		if _, err := f.Invoke(t.Context(), json.RawMessage(payload)); broker.KindOf(err) != broker.Invalid {
			t.Errorf("%s: %v, want an Invalid error", payload, err)
		}
	}
}
