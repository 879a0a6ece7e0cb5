package revoke

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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
// returns an error wrapping ErrRefused, which the function logs in full and
// does not retry. Only the payload decides that: a failure of the work
// itself, whatever its kind, is retried.
type Handler struct {
	Service *Service
	Now     func() time.Time
}

// ErrRefused is in the chain of the error of a payload that can never be
// applied.
var ErrRefused = errors.New("revoker payload refused")

// MaxAhead bounds how far in the future a narrowing's cutoff may lie when
// the revoker receives it: the projector sets broker.RevokeBefore of its
// clock, a few seconds ahead. A later one is not the projector's and could
// lock a user out (or, through the fallback, everyone); it is refused.
const MaxAhead = broker.CommitWindow + broker.IssueWindow + broker.ClockMargin + time.Second + time.Minute

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
		return fmt.Errorf("%w: %w", ErrRefused, err)
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
		return h.decodeBusEvent(payload)
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

func (h *Handler) decodeBusEvent(payload json.RawMessage) (*Request, error) {
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
	// Anyone allowed to put events on the bus could name any source; the
	// template lets each function put only its own, and only the
	// projector's changes revoke.
	if ev.Source != broker.SourceProjector {
		return nil, broker.Errorf(broker.Invalid, op, "PolicyChanged from source %q: only %s's narrowings revoke", ev.Source, broker.SourceProjector)
	}
	if limit := h.now().Add(MaxAhead); d.RevokeBefore.After(limit) {
		return nil, broker.Errorf(broker.Invalid, op, "revokeBefore %s is more than %v ahead", d.RevokeBefore.UTC().Format(time.RFC3339), MaxAhead)
	}
	if err := broker.ValidateUserID(d.UserID); err != nil {
		return nil, broker.Errorf(broker.Invalid, op, "PolicyChanged of an invalid user: %s", broker.MessageOf(err))
	}
	return &Request{Entries: []Entry{{UserID: d.UserID, Before: *d.RevokeBefore}},
		Reason: broker.ReasonNarrowed, Causes: []string{d.ChangeID}}, nil
}
