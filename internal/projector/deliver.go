package projector

import (
	"context"
	"encoding/json"

	"github.com/aws/aws-lambda-go/events"
)

// BatchHandler is a Lambda stream handler reporting partial batch failures,
// as Handler is. Deliver feeds one the way Lambda's event source mapping
// does, for the local stack and for replay.
type BatchHandler interface {
	Handle(ctx context.Context, payload json.RawMessage) (events.DynamoDBEventResponse, error)
}

// StreamBatchSize is the stream mapping's batch size in template.yaml.
const StreamBatchSize = 100

// Deliver hands batch to h as Lambda would and returns how many records,
// from the first, were accepted: len(batch) when all were, else the index
// of the first failed one, from which Lambda would deliver again. A failure
// naming no record of the batch fails the whole batch, as it does for
// Lambda. An error means h refused the payload itself.
func Deliver(ctx context.Context, h BatchHandler, batch []events.DynamoDBEventRecord) (int, error) {
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

// Payload is the JSON Lambda hands a stream handler for records.
func Payload(records []events.DynamoDBEventRecord) ([]byte, error) {
	return json.Marshal(events.DynamoDBEvent{Records: records})
}
