package projector

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/credbroker/credbroker/internal/broker"
)

// Change is one stream record of the membership table, free of the shape it
// arrived in (Lambda event, dynamodbstreams API, replay).
type Change struct {
	EventID        string
	EventName      string // INSERT, MODIFY, REMOVE
	SequenceNumber string
	At             time.Time
	Keys           broker.SourceItem  // PK and SK only
	New, Old       *broker.SourceItem // nil when the record has no such image
	// Err is why the record could not be decoded; only its identifiers
	// were salvaged, and the projector rejects it.
	Err error
}

// FromLambdaRecord converts a record of a Lambda DynamoDB event.
func FromLambdaRecord(r events.DynamoDBEventRecord) Change {
	c := Change{
		EventID:        r.EventID,
		EventName:      r.EventName,
		SequenceNumber: r.Change.SequenceNumber,
		At:             r.Change.ApproximateCreationDateTime.Time,
		Keys:           lambdaItem(r.Change.Keys),
	}
	if r.Change.NewImage != nil {
		it := lambdaItem(r.Change.NewImage)
		c.New = &it
	}
	if r.Change.OldImage != nil {
		it := lambdaItem(r.Change.OldImage)
		c.Old = &it
	}
	return c
}

func lambdaItem(m map[string]events.DynamoDBAttributeValue) broker.SourceItem {
	s := func(name string) string {
		if v, ok := m[name]; ok && v.DataType() == events.DataTypeString {
			return v.String()
		}
		return ""
	}
	return broker.SourceItem{PK: s("pk"), SK: s("sk"), Role: lambdaAttr(m, "role"), Prefix: lambdaAttr(m, "prefix"), ExpiresAt: lambdaAttr(m, "expiresAt")}
}

var lambdaTypes = map[events.DynamoDBDataType]string{
	events.DataTypeBinary: "B", events.DataTypeBoolean: "BOOL", events.DataTypeBinarySet: "BS",
	events.DataTypeList: "L", events.DataTypeMap: "M", events.DataTypeNumber: "N",
	events.DataTypeNumberSet: "NS", events.DataTypeNull: "NULL", events.DataTypeString: "S",
	events.DataTypeStringSet: "SS",
}

func lambdaAttr(m map[string]events.DynamoDBAttributeValue, name string) broker.Attr {
	v, ok := m[name]
	if !ok {
		return broker.Attr{}
	}
	if v.DataType() == events.DataTypeString {
		return broker.StringAttr(v.String())
	}
	return broker.Attr{Present: true, Type: lambdaTypes[v.DataType()]}
}

// DecodeEvent decodes a Lambda DynamoDB event record by record, so that one
// malformed record is reported on its own instead of failing the batch. A
// record that does not decode comes back as a Change with EventName
// "MALFORMED" and the decoding error in Err.
func DecodeEvent(payload []byte) ([]Change, error) {
	var env struct {
		Records []json.RawMessage `json:"Records"`
	}
	if err := json.Unmarshal(payload, &env); err != nil {
		return nil, fmt.Errorf("decode DynamoDB event: %w", err)
	}
	changes := make([]Change, len(env.Records))
	for i, raw := range env.Records {
		r, err := decodeRecord(raw)
		if err != nil {
			changes[i] = malformed(raw)
			changes[i].Err = fmt.Errorf("record %d: %w", i, err)
			continue
		}
		changes[i] = FromLambdaRecord(r)
	}
	return changes, nil
}

// decodeRecord decodes one record. aws-lambda-go's attribute decoder
// panics on some malformed values (a binary set of numbers), which must
// reject that record, not crash the batch.
func decodeRecord(raw json.RawMessage) (r events.DynamoDBEventRecord, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("malformed attribute value: %v", p)
		}
	}()
	err = json.Unmarshal(raw, &r)
	return r, err
}

// malformed salvages the identifiers of a record that does not decode, so
// that the rejection can name it.
func malformed(raw json.RawMessage) Change {
	var loose struct {
		EventID string `json:"eventID"`
		Change  struct {
			SequenceNumber string `json:"SequenceNumber"`
			Keys           struct {
				PK struct{ S string } `json:"pk"`
				SK struct{ S string } `json:"sk"`
			} `json:"Keys"`
		} `json:"dynamodb"`
	}
	_ = json.Unmarshal(raw, &loose)
	return Change{
		EventID: loose.EventID, EventName: "MALFORMED", SequenceNumber: loose.Change.SequenceNumber,
		Keys: broker.SourceItem{PK: loose.Change.Keys.PK.S, SK: loose.Change.Keys.SK.S},
	}
}
