package replay

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/credbroker/credbroker/internal/broker"
)

// Function is the replay function's Lambda handler: it decodes the event
// strictly (DecodeEvent), runs the operation and answers with the report.
type Function struct {
	Service *Service
	// StreamARN is the membership table's stream; without it, replay is
	// refused (the function reads it from its environment).
	StreamARN string
	Logger    *slog.Logger
}

// Invoke runs one event. On drift or failure it returns an error, which
// carries only a message: the whole report goes to the log.
func (h *Function) Invoke(ctx context.Context, payload json.RawMessage) (Report, error) {
	req, err := DecodeEvent(payload)
	if err != nil {
		h.Logger.Error("invalid event", "err", err, "event", string(payload))
		return Report{}, err
	}
	if req.Mode == ModeReplay && h.StreamARN == "" {
		return Report{}, broker.Errorf(broker.Invalid, "replay", "CREDBROKER_MEMBERSHIP_STREAM_ARN is required for replay")
	}
	rep, err := h.Service.Run(ctx, req)
	h.Logger.Info("report", "report", rep, "exitCode", ExitCode(err))
	return rep, err
}
