package projector

import (
	"context"
	"encoding/json"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/emf"
)

// Handler serves the projector as a Lambda function on the membership
// table's stream, reporting partial batch failures by sequence number. The
// same function is the fan-out worker on the page queue (an SQS event,
// failures by message id) and the target of expiry timers.
type Handler struct {
	Projector *Projector
	Metrics   *emf.Writer
}

// Handle projects one stream batch. It decodes records one by one, so a
// malformed record is rejected alone; it returns an error only when the
// payload is not a DynamoDB event at all, so that Lambda retries it and
// finally hands it to the on-failure destination.
func (h *Handler) Handle(ctx context.Context, payload json.RawMessage) (events.DynamoDBEventResponse, error) {
	start := time.Now()
	p := *h.Projector
	requestID := ""
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		requestID = lc.AwsRequestID
	}
	p.Logger = p.logger().With("requestId", requestID)
	if at, ok := decodeExpiry(payload); ok {
		return events.DynamoDBEventResponse{}, h.expire(ctx, &p, at)
	}
	if isQueueEvent(payload) {
		return h.pages(ctx, &p, payload)
	}
	changes, err := DecodeEvent(payload)
	if err != nil {
		p.Logger.Error("payload is not a DynamoDB event", "err", err, "bytes", len(payload))
		return events.DynamoDBEventResponse{}, err
	}
	out := p.Process(ctx, changes)
	resp := events.DynamoDBEventResponse{BatchItemFailures: []events.DynamoDBBatchItemFailure{}}
	for _, seq := range out.Failed {
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.DynamoDBBatchItemFailure{ItemIdentifier: seq})
	}
	p.Logger.Info("batch projected", "records", len(changes), "failed", len(out.Failed), "rejected", out.Rejected,
		"recomputed", out.Recomputed, "changed", out.Changed, "fanoutUsers", out.FanoutUsers,
		"ms", time.Since(start).Milliseconds())
	_ = h.Metrics.Write(map[string]string{"Function": "projector"}, map[string]any{"requestId": requestID},
		emf.Metric{Name: "Records", Unit: emf.Count, Value: float64(len(changes))},
		emf.Metric{Name: "FailedRecords", Unit: emf.Count, Value: float64(len(out.Failed))},
		emf.Metric{Name: "RejectedRecords", Unit: emf.Count, Value: float64(out.Rejected)},
		emf.Metric{Name: "Recomputes", Unit: emf.Count, Value: float64(out.Recomputed)},
		emf.Metric{Name: "PolicyChanges", Unit: emf.Count, Value: float64(out.Changed)},
		emf.Metric{Name: "BatchDuration", Unit: emf.Milliseconds, Value: float64(time.Since(start).Milliseconds())},
	)
	return resp, nil
}

// decodeExpiry reports whether payload is an expiry timer's.
func decodeExpiry(payload json.RawMessage) (broker.ExpiryEvent, bool) {
	var x broker.ExpiryPayload
	if json.Unmarshal(payload, &x) != nil || x.Expiry == nil {
		return broker.ExpiryEvent{}, false
	}
	return *x.Expiry, true
}

// MetricExpiryLag is how long after a membership's expiry its recompute
// committed (milliseconds), which ExpiryLagAlarm bounds.
const MetricExpiryLag = "ExpiryLag"

// expire runs one expiry timer's recompute. An error makes the scheduler
// retry the invocation (its retry policy), and the recompute is idempotent.
func (h *Handler) expire(ctx context.Context, p *Projector, ev broker.ExpiryEvent) error {
	start := time.Now()
	changed, err := p.Expire(ctx, ev.UserID, ev.At)
	lag := p.now().Sub(ev.At)
	if err != nil {
		p.logger().Error("expiry recompute failed", "userId", ev.UserID, "expiresAt", ev.At, "err", err)
		return err
	}
	p.logger().Info("expiry recomputed", "userId", ev.UserID, "expiresAt", ev.At, "changed", changed,
		"lagMs", lag.Milliseconds(), "ms", time.Since(start).Milliseconds())
	_ = h.Metrics.Write(map[string]string{"Function": "projector"}, nil,
		emf.Metric{Name: MetricExpiryLag, Unit: emf.Milliseconds, Value: float64(lag.Milliseconds())})
	return nil
}
