// Package ebaudit implements broker.Auditor on an Amazon EventBridge bus.
//
// Emit sends each audit event as one PutEvents entry, in requests that respect
// the service limits (10 entries, 256 KiB), trims details that would not fit
// instead of dropping them, and retries only the entries the bus did not
// accept. It returns nil only when every entry was accepted.
package ebaudit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/smithy-go"

	"github.com/credbroker/credbroker/internal/backoff"
	"github.com/credbroker/credbroker/internal/broker"
)

// Service limits of PutEvents.
const (
	// MaxEntries is the most entries one PutEvents request may carry.
	MaxEntries = 10
	// MaxRequestBytes bounds the sum of the entry sizes of one request, and
	// so also the size of a single entry.
	MaxRequestBytes = 256 * 1024
	// timeEntryBytes is what the Time field counts for, whatever its value.
	timeEntryBytes = 14
)

// PutEventsAPI is the one EventBridge call the emitter makes.
type PutEventsAPI interface {
	PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, optFns ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

// Config configures an Emitter. Client and BusName are required.
type Config struct {
	Client  PutEventsAPI
	BusName string
	// MaxAttempts bounds the PutEvents attempts per entry (default 5). The
	// SDK's own retryer runs inside each attempt; these attempts exist for
	// the per-entry failures that it cannot see.
	MaxAttempts int
	// BaseBackoff is the first retry's backoff ceiling (default 50ms); it
	// doubles per attempt up to MaxBackoff (default 2s), with full jitter.
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	// Sleep waits d or until ctx ends (default: a timer honouring ctx).
	Sleep  func(ctx context.Context, d time.Duration) error
	Logger *slog.Logger
	// Now stamps events whose Time is zero (default time.Now).
	Now func() time.Time
}

// Emitter is a broker.Auditor on an EventBridge bus. It is safe for
// concurrent use.
type Emitter struct {
	cfg Config
}

var _ broker.Auditor = (*Emitter)(nil)

// New returns an Emitter with cfg's zero fields set to their defaults.
func New(cfg Config) *Emitter {
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.BaseBackoff <= 0 {
		cfg.BaseBackoff = 50 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 2 * time.Second
	}
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.BaseBackoff)
	if cfg.Sleep == nil {
		cfg.Sleep = backoff.Sleep
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Emitter{cfg: cfg}
}

const op = "ebaudit.Emit"

// entry is one event ready to send; index is its position in Emit's
// arguments, for logs.
type entry struct {
	req   types.PutEventsRequestEntry
	size  int
	index int
}

// Emit sends the events to the bus. It returns nil only when the bus accepted
// every one; a Transient error when some were still refused after MaxAttempts
// with retryable errors (throttling, internal failures); an Internal error
// when an event cannot be sent or the bus rejected it for good (malformed
// detail, missing bus, no permission). Events accepted before an error stay
// accepted: a caller that retries Emit may deliver them twice, so consumers
// deduplicate on the detail's own keys (changeId, requestId, runId).
func (e *Emitter) Emit(ctx context.Context, events ...broker.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	if e.cfg.Client == nil || e.cfg.BusName == "" {
		return broker.Errorf(broker.Internal, op, "audit bus not configured (client or bus name missing)")
	}
	entries := make([]entry, 0, len(events))
	for i, ev := range events {
		en, err := e.entry(ctx, i, ev)
		if err != nil {
			return err
		}
		entries = append(entries, en)
	}

	total := len(entries)
	pending := entries
	rejected := 0
	rejectedCodes := map[string]int{}
	var errs []error
	// fail reports the events not accepted. Permanent rejections make the
	// error Internal whatever else happened: retrying the whole Emit cannot
	// fix them.
	fail := func(kind broker.Kind, notAccepted int, retryCodes map[string]int, how string) error {
		what := "not accepted by the bus"
		if rejected > 0 {
			kind, what = broker.Internal, "rejected by the bus"
			errs = append(errs, broker.ErrEventRejected)
		}
		return &broker.Error{Kind: kind, Op: op,
			Message: fmt.Sprintf("%d of %d audit events %s%s (%s)", notAccepted, total, what, how, formatCodes(rejectedCodes, retryCodes)),
			Err:     errors.Join(errs...)}
	}
	for attempt := 1; ; attempt++ {
		res := e.send(ctx, pending)
		rejected += len(res.rejected)
		for c, n := range res.rejectedCodes {
			rejectedCodes[c] += n
		}
		if res.err != nil {
			errs = append(errs, res.err)
		}
		pending = res.retry
		switch {
		case res.fatal != nil:
			return fail(fatalKind(ctx, res.fatal), rejected+len(pending)+res.unsent, res.retryCodes, "")
		case len(pending) == 0 && rejected == 0:
			return nil
		case len(pending) == 0:
			return fail(broker.Internal, rejected, nil, "")
		case attempt >= e.cfg.MaxAttempts:
			return fail(broker.Transient, rejected+len(pending), res.retryCodes, fmt.Sprintf(" after %d attempts", attempt))
		}
		e.cfg.Logger.WarnContext(ctx, "audit events not accepted, retrying",
			"bus", e.cfg.BusName, "attempt", attempt, "failed", len(pending), "codes", formatCodes(res.retryCodes))
		if err := e.cfg.Sleep(ctx, e.backoff(attempt)); err != nil {
			errs = append(errs, err)
			return fail(broker.Transient, rejected+len(pending), res.retryCodes, "")
		}
	}
}

// result is the outcome of one attempt over a set of entries.
type result struct {
	retry         []entry // refused with a retryable error
	rejected      []entry // refused for good
	unsent        int     // not sent because of fatal
	retryCodes    map[string]int
	rejectedCodes map[string]int
	err           error // the last call error, for the chain
	fatal         error // a call error that ends Emit
}

// send makes one attempt: it splits pending into requests and sends each.
func (e *Emitter) send(ctx context.Context, pending []entry) result {
	res := result{retryCodes: map[string]int{}, rejectedCodes: map[string]int{}}
	batches := batch(pending)
	for bi, b := range batches {
		reqs := make([]types.PutEventsRequestEntry, len(b))
		for i, en := range b {
			reqs[i] = en.req
		}
		out, err := e.cfg.Client.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: reqs})
		if err != nil {
			res.err = err
			code, retryable := classify(ctx, err)
			res.retryCodes[code] += len(b)
			res.retry = append(res.retry, b...)
			if !retryable {
				res.fatal = err
				for _, rest := range batches[bi+1:] {
					res.unsent += len(rest)
				}
				return res
			}
			continue
		}
		if len(out.Entries) != len(b) {
			// Results are positional; without one per entry nothing tells
			// which were accepted, so all are sent again.
			res.retryCodes["IncompleteResponse"] += len(b)
			res.retry = append(res.retry, b...)
			continue
		}
		for i, r := range out.Entries {
			code := aws.ToString(r.ErrorCode)
			switch {
			case code == "" && aws.ToString(r.EventId) != "":
				// accepted
			case code == "":
				res.retryCodes["NoEventId"]++
				res.retry = append(res.retry, b[i])
			case retryableEntryCodes[code]:
				res.retryCodes[code]++
				res.retry = append(res.retry, b[i])
			default:
				res.rejectedCodes[code]++
				res.rejected = append(res.rejected, b[i])
				e.cfg.Logger.ErrorContext(ctx, "audit event rejected by the bus",
					"bus", e.cfg.BusName, "detailType", aws.ToString(b[i].req.DetailType),
					"event", b[i].index, "code", code, "message", aws.ToString(r.ErrorMessage), "bytes", b[i].size)
			}
		}
	}
	return res
}

// retryableEntryCodes are the per-entry error codes that PutEvents documents
// as retryable (plus their service-wide spellings). Any other code, known or
// not, is taken as permanent: retrying it would only delay the error.
var retryableEntryCodes = map[string]bool{
	"InternalFailure":     true,
	"InternalException":   true,
	"ThrottlingException": true,
	"ServiceUnavailable":  true,
}

// classify names a failed call and says whether another attempt may
// succeed: throttling, 5xx and connection errors may; a refusal by the
// service, a cancelled context or an unexplained error may not.
func classify(ctx context.Context, err error) (code string, retryable bool) {
	code = "RequestError"
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	if ctx.Err() != nil {
		return "Canceled", false
	}
	var status interface{ HTTPStatusCode() int }
	if errors.As(err, &status) && status.HTTPStatusCode() >= 500 {
		if apiErr == nil {
			code = fmt.Sprintf("HTTP%d", status.HTTPStatusCode())
		}
		return code, true
	}
	if retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) == aws.TrueTernary ||
		retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) == aws.TrueTernary {
		return code, true
	}
	return code, false
}

// fatalKind is the kind of a call error that ends Emit: a refusal by the
// service (no bus, no permission, invalid request) is a misconfiguration or
// a bug; a cancelled context or an unexplained failure is transient.
func fatalKind(ctx context.Context, err error) broker.Kind {
	var apiErr smithy.APIError
	if ctx.Err() == nil && errors.As(err, &apiErr) {
		return broker.Internal
	}
	return broker.Transient
}

// batch splits entries, in order, into requests within the service limits.
func batch(entries []entry) [][]entry {
	var out [][]entry
	var cur []entry
	size := 0
	for _, en := range entries {
		if len(cur) == MaxEntries || (len(cur) > 0 && size+en.size > MaxRequestBytes) {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, en)
		size += en.size
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// entrySize is the size PutEvents counts for an entry: 14 bytes for Time
// when set, and the UTF-8 bytes of Source, DetailType, Detail and each
// resource.
// https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html
func entrySize(e types.PutEventsRequestEntry) int {
	n := len(aws.ToString(e.Source)) + len(aws.ToString(e.DetailType)) + len(aws.ToString(e.Detail))
	if e.Time != nil {
		n += timeEntryBytes
	}
	for _, r := range e.Resources {
		n += len(r)
	}
	return n
}

// backoff returns the wait before attempt+1.
func (e *Emitter) backoff(attempt int) time.Duration {
	return backoff.Jitter(attempt, e.cfg.BaseBackoff, e.cfg.MaxBackoff)
}

// formatCodes renders error counts as "InternalFailure: 2, ThrottlingException: 1".
func formatCodes(sets ...map[string]int) string {
	all := map[string]int{}
	for _, m := range sets {
		for c, n := range m {
			all[c] += n
		}
	}
	if len(all) == 0 {
		return "no error code"
	}
	keys := slices.Sorted(maps.Keys(all))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, all[k])
	}
	return strings.Join(parts, ", ")
}
