package revoke

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/credbroker/credbroker/internal/broker"
)

// Handler serves the revoker function. Its payload is one of:
//
//   - an EventBridge event from the audit bus's rule: a PolicyChanged whose
//     change narrows (it carries revokeBefore); other events are ignored;
//   - {"action":"revoke","userId":"<sub>","requestId":"<id>"}: an operator
//     revokes every current session of one user;
//   - {"action":"prune"}: the schedule's call, which removes expired entries.
//
// An invocation that fails returns the error, so that Lambda's retries (and
// then the dead-letter queue) take over; a payload that can never succeed
// returns an Invalid error, which the function logs and does not retry.
type Handler struct {
	Service *Service
	Now     func() time.Time
}

// Action is the shape of an operator's or the schedule's invocation.
type Action struct {
	Action    string `json:"action"`
	UserID    string `json:"userId,omitempty"`
	RequestID string `json:"requestId,omitempty"`
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// Handle decodes the payload and applies what it asks.
func (h *Handler) Handle(ctx context.Context, payload json.RawMessage) error {
	req, err := h.Decode(payload)
	if err != nil {
		return err
	}
	if req == nil {
		return nil
	}
	return h.Service.Revoke(ctx, *req)
}

// Decode turns a payload into a request; nil means nothing to do.
func (h *Handler) Decode(payload json.RawMessage) (*Request, error) {
	const op = "decode revoker event"
	var probe struct {
		DetailType *string `json:"detail-type"`
	}
	if err := json.Unmarshal(payload, &probe); err != nil {
		return nil, broker.Wrap(broker.Invalid, op, err)
	}
	if probe.DetailType != nil {
		return decodeBusEvent(payload)
	}
	var a Action
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return nil, broker.Errorf(broker.Invalid, op, `want {"action":"revoke","userId":...} or {"action":"prune"}: %v`, err)
	}
	switch a.Action {
	case "prune":
		if a.UserID != "" {
			return nil, broker.Errorf(broker.Invalid, op, "prune takes no userId")
		}
		return &Request{Reason: broker.ReasonOperator}, nil
	case "revoke":
		if err := broker.ValidateUserID(a.UserID); err != nil {
			return nil, broker.Errorf(broker.Invalid, op, "%s", broker.MessageOf(err))
		}
		causes := []string{}
		if a.RequestID != "" {
			causes = append(causes, a.RequestID)
		}
		// The cutoff leaves room for a request that read the user's item
		// just before the operator's write and mints just after it.
		return &Request{Entries: []Entry{{UserID: a.UserID, Before: broker.RevokeBefore(h.now())}},
			Reason: broker.ReasonOperator, Causes: causes}, nil
	}
	return nil, broker.Errorf(broker.Invalid, op, `unknown action %q: want "revoke" or "prune"`, a.Action)
}

func decodeBusEvent(payload json.RawMessage) (*Request, error) {
	const op = "decode audit event"
	var ev events.EventBridgeEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, broker.Wrap(broker.Invalid, op, err)
	}
	if ev.DetailType != broker.DetailPolicyChanged {
		return nil, nil
	}
	var d broker.PolicyChangedDetail
	if err := json.Unmarshal(ev.Detail, &d); err != nil {
		return nil, broker.Wrap(broker.Invalid, op, fmt.Errorf("PolicyChanged detail: %w", err))
	}
	if d.RevokeBefore == nil {
		return nil, nil // the change took nothing away
	}
	if err := broker.ValidateUserID(d.UserID); err != nil {
		return nil, broker.Errorf(broker.Invalid, op, "PolicyChanged of an invalid user: %s", broker.MessageOf(err))
	}
	return &Request{Entries: []Entry{{UserID: d.UserID, Before: *d.RevokeBefore}},
		Reason: broker.ReasonNarrowed, Causes: []string{d.ChangeID}}, nil
}
