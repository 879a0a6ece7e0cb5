package revoker

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/credbroker/credbroker/internal/broker"
)

// Handler serves the revoker function. Its payload is one of:
//
//   - an EventBridge event from the audit bus's rule: a PolicyChanged whose
//     change narrows (it carries revokeBefore, and, when the projector read
//     the item it replaced, revokedCutoffTags); other events are ignored;
//   - {"action":"revoke","userId":"<sub>","requestId":"<id>"}: an operator
//     revokes every current session of one user;
//   - {"action":"prune"}: the schedule's call, which removes expired entries.
//
// The revoker's clock sets every cutoff it makes (an operator's revocation,
// a narrowing it had to clamp) and every prune: the operator's machine never
// enters one (docs/security.md "Revocation").
//
// Invoke is what the function runs. A failure of the work returns the
// error, so that Lambda's retries (and then the dead-letter queue) take
// over; a payload that can never succeed is refused (ErrRefused): never
// silently, since a refused narrowing is a revocation that did not happen.
// Only the payload decides that: a failure of the work itself, whatever its
// kind, is retried.
type Handler struct {
	Service *Service
	Now     func() time.Time
	// Logger gets the refusals, in full (default slog.Default()).
	Logger *slog.Logger
	// Metric counts an alarming event (MetricRefused, MetricClamped); nil
	// counts nothing.
	Metric func(name string)
	// Partition is the AWS partition of the buckets' ARNs (default "aws").
	Partition string
}

// The revoker's metrics (namespace emf.Namespace); template.yaml alarms on
// each.
const (
	// MetricRefused counts payloads refused for good: a narrowing that
	// will not be applied.
	MetricRefused = "RevocationsRefused"
	// MetricClamped counts narrowings whose cutoff lay too far ahead and
	// that were applied at the revoker's own clock instead.
	MetricClamped = "RevocationsClamped"
	// MetricFailed counts invocations that failed (Lambda retries them).
	MetricFailed = "RevocationsFailed"
	// MetricPruneFailed counts failed prunes, apart from revocations.
	MetricPruneFailed = "PrunesFailed"
	// MetricDenyListRecovered counts runs that found the deny-list item
	// missing, unreadable or older than the role's policy and rebuilt it
	// from the role's policy.
	MetricDenyListRecovered = "DenyListRecovered"
)

// Result answers an operator's revocation: the new cutoff of the user,
// which the deny rounds up to the second.
type Result struct {
	UserID       string    `json:"userId"`
	IssuedBefore time.Time `json:"issuedBefore"`
	Scope        string    `json:"scope"`
}

// ErrRefused is in the chain of the error of a payload that can never be
// applied.
var ErrRefused = errors.New("revoker payload refused")

// MaxAhead bounds how far in the future a narrowing's cutoff may lie when
// the revoker receives it: the projector sets broker.RevokeBefore of its
// clock, a few seconds ahead. A later one comes from a clock that is off
// (or a forged event) and could keep an entry far too long (or, through
// the fallback, lock everyone out): the revoker counts it loudly, and
// Apply reckons its entry from the revoker's own clock.
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

func (h *Handler) logger() *slog.Logger { return cmp.Or(h.Logger, slog.Default()) }

func (h *Handler) count(metric string) {
	if h.Metric != nil {
		h.Metric(metric)
	}
}

// Handle decodes the payload and applies what it asks. It returns the
// Result of an operator's revocation (nil for other payloads).
func (h *Handler) Handle(ctx context.Context, payload json.RawMessage) (*Result, error) {
	req, err := h.Decode(payload)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	if req == nil {
		return nil, nil
	}
	applied, err := h.Service.Revoke(ctx, *req)
	if err != nil || req.Reason != broker.ReasonOperator || len(applied) == 0 {
		return nil, err
	}
	return &Result{UserID: applied[0].UserID, IssuedBefore: applied[0].Before, Scope: broker.ScopeUser}, nil
}

// Invoke is the function's handler: Handle, with every refusal and failure
// logged as an error and counted. A refused event of the bus returns
// success, as delivering it again cannot help (the log line and the
// metric's alarm are its dead letter); a refused call of an operator
// returns the error, which the caller sees. A batch of the revocation
// queue (SQS) is applied as one revocation (Batch).
func (h *Handler) Invoke(ctx context.Context, payload json.RawMessage) (any, error) {
	if batch, ok := sqsBatch(payload); ok {
		return h.Batch(ctx, batch), nil
	}
	res, err := h.Handle(ctx, payload)
	switch {
	case err == nil:
		return res, nil
	case errors.Is(err, ErrRefused):
		h.count(MetricRefused)
		h.logger().Error("revoker payload refused: no revocation was applied", "err", err, "event", string(payload))
		if isBusEvent(payload) {
			return nil, nil
		}
		return nil, err
	case isPrune(payload):
		h.count(MetricPruneFailed)
		h.logger().Error("prune failed; Lambda retries it", "err", err)
	default:
		h.count(MetricFailed)
		h.logger().Error("revocation failed; Lambda retries it", "err", err, "event", string(payload))
	}
	return nil, err
}

func isBusEvent(payload json.RawMessage) bool {
	var probe struct {
		DetailType *string `json:"detail-type"`
	}
	return json.Unmarshal(payload, &probe) == nil && probe.DetailType != nil
}

func isPrune(payload json.RawMessage) bool {
	var a Action
	return json.Unmarshal(payload, &a) == nil && a.Action == "prune"
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
	// projector's changes revoker.
	if ev.Source != broker.SourceProjector {
		return nil, broker.Errorf(broker.Invalid, op, "PolicyChanged from source %q: only %s's narrowings revoke", ev.Source, broker.SourceProjector)
	}
	if err := broker.ValidateUserID(d.UserID); err != nil {
		return nil, broker.Errorf(broker.Invalid, op, "PolicyChanged of an invalid user: %s", broker.MessageOf(err))
	}
	entry := Entry{UserID: d.UserID, Before: *d.RevokeBefore, Resources: h.removed(d)}
	if !slices.ContainsFunc(d.RevokedCutoffTags, func(tag string) bool { return !broker.IsCutoffTag(tag) }) {
		entry.Revoked = slices.Clone(d.RevokedCutoffTags)
		if d.PreviousRevokeBefore != nil {
			entry.Previous = *d.PreviousRevokeBefore
		}
	} else {
		// Not what the projector sends: deny as for a narrowing whose
		// previous cutoff is unknown, which spares only the new cutoff.
		h.logger().Error("narrowing names revoked cutoff tags of the wrong shape: revoking every session of the user issued before its cutoff",
			"userId", d.UserID, "changeId", d.ChangeID, "revokedCutoffTags", d.RevokedCutoffTags)
	}
	if now := h.now(); d.RevokeBefore.After(now.Add(MaxAhead)) {
		// The projector's clock ran ahead (or the event is forged: the
		// template lets only the projector put it). Refusing would leave
		// the user's old sessions alive. The deny of the revoked tags
		// needs no time; Apply keeps the entry, any time it denies by,
		// and any fallback it joins, to our own clock (clamp), so that
		// none outlives what it must stop.
		h.count(MetricClamped)
		h.logger().Error("narrowing's cutoff lies too far ahead of the revoker's clock (is the projector's clock off?): its entry is kept to the revoker's clock",
			"userId", d.UserID, "changeId", d.ChangeID, "revokeBefore", d.RevokeBefore.UTC(), "maxAhead", MaxAhead)
	}
	return &Request{Entries: []Entry{entry}, Reason: broker.ReasonNarrowed, Causes: []string{d.ChangeID}}, nil
}

// sqsBatch reports whether payload is a batch of the revocation queue.
func sqsBatch(payload json.RawMessage) (events.SQSEvent, bool) {
	var ev events.SQSEvent
	if json.Unmarshal(payload, &ev) != nil || len(ev.Records) == 0 || ev.Records[0].EventSource != "aws:sqs" {
		return events.SQSEvent{}, false
	}
	return ev, true
}

// Batch applies every narrowing of a batch of the revocation queue (each
// message the bus rule's event) as one revocation: one save of the list
// and one write of the pages it changes, however many users it holds. A
// message that can never be applied is refused, loudly, and not retried;
// when the revocation fails, every other message is reported failed, so
// that the queue delivers it again (and after its last receive, moves it
// to the dead-letter queue).
func (h *Handler) Batch(ctx context.Context, batch events.SQSEvent) events.SQSEventResponse {
	req := Request{Reason: broker.ReasonNarrowed}
	var applied []string
	for _, m := range batch.Records {
		r, err := h.Decode(json.RawMessage(m.Body))
		if err != nil {
			h.count(MetricRefused)
			h.logger().Error("revoker payload refused: no revocation was applied", "err", err, "messageId", m.MessageId, "event", m.Body)
			continue
		}
		if r == nil {
			continue // nothing to revoke
		}
		for _, e := range r.Entries {
			e.Reason, e.Causes = r.Reason, r.Causes
			req.Entries = append(req.Entries, e)
		}
		applied = append(applied, m.MessageId)
	}
	var resp events.SQSEventResponse
	if len(req.Entries) == 0 {
		return resp
	}
	if _, err := h.Service.Revoke(ctx, req); err != nil {
		h.count(MetricFailed)
		h.logger().Error("revocation of a batch failed; the queue delivers it again", "err", err, "messages", len(applied), "entries", len(req.Entries))
		for _, id := range applied {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: id})
		}
	}
	return resp
}

// removed names what a narrowing took away, as S3 resources, should the
// deny list overflow: each removed grant's bucket (its listing) and its
// objects (under the folder, for a folder's grant). A change that cannot
// name what it took away (its detail cut to fit the bus, its previous
// item unreadable) names nothing: its fallback is everything.
func (h *Handler) removed(d broker.PolicyChangedDetail) []string {
	if d.Truncated || d.PreviousUnreadable || len(d.Removed) == 0 || len(d.Removed) < d.RemovedCount {
		return nil
	}
	partition := cmp.Or(h.Partition, "aws")
	var out []string
	for _, g := range d.Removed {
		if broker.ValidateBucketName(g.Bucket) != nil || strings.ContainsAny(g.Prefix, "*?$") {
			return nil // not what the projector sends: name nothing
		}
		bucket := "arn:" + partition + ":s3:::" + g.Bucket
		out = append(out, bucket, bucket+"/"+g.Prefix+"*")
	}
	slices.Sort(out)
	return slices.Compact(out)
}
