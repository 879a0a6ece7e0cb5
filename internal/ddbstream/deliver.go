package ddbstream

import (
	"context"
	"encoding/json"

	"github.com/aws/aws-lambda-go/events"
)

// Handler is a Lambda stream handler reporting partial batch failures, as
// projector.Handler is.
type Handler interface {
	Handle(ctx context.Context, payload json.RawMessage) (events.DynamoDBEventResponse, error)
}

// BatchSize is the stream mapping's batch size in template.yaml.
const BatchSize = 100

// Deliver hands batch to h as Lambda would and returns how many records,
// from the first, were accepted: len(batch) when all were, else the index
// of the first failed one, from which Lambda would deliver again. A failure
// naming no record of the batch fails the whole batch, as it does for
// Lambda. An error means h refused the payload itself.
func Deliver(ctx context.Context, h Handler, batch []events.DynamoDBEventRecord) (int, error) {
	payload, err := Payload(batch)
	if err != nil {
		return 0, err
	}
	resp, err := h.Handle(ctx, payload)
	if err != nil {
		return 0, err
	}
	if len(resp.BatchItemFailures) == 0 {
		return len(batch), nil
	}
	failed := make(map[string]bool, len(resp.BatchItemFailures))
	for _, f := range resp.BatchItemFailures {
		failed[f.ItemIdentifier] = true
	}
	for i, r := range batch {
		if failed[r.Change.SequenceNumber] {
			return i, nil
		}
	}
	return 0, nil
}
