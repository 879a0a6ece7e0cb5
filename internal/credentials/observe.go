package credentials

import (
	"context"
	"log/slog"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/emf"
)

// logOutcome writes the request's one summary line. A 200 names its access
// key ids: for an answer served from the cache (or from another request's
// mint) this line is the record that ties those keys to this request.
func (s *Service) logOutcome(ctx context.Context, log *slog.Logger, o *outcome, elapsed time.Duration) {
	attrs := []any{"latencyMs", float64(elapsed.Microseconds()) / 1000}
	if o.userID != "" {
		attrs = append(attrs, "userId", o.userID)
	}
	if o.project != "" {
		attrs = append(attrs, "project", o.project)
	}
	if o.compiled {
		attrs = append(attrs, "compileUs", o.compile.Microseconds())
	}
	if o.err == nil {
		log.InfoContext(ctx, "credentials issued", append(attrs, "status", 200, "sets", len(o.keyIDs),
			"minted", o.minted, "fromCache", o.minted == 0, "accessKeyIds", o.keyIDs)...)
		return
	}
	kind := broker.KindOf(o.err)
	status, code := statusOf(o.err)
	attrs = append(attrs, "status", status, "error", code, "kind", kind.String(), "err", o.err.Error())
	switch kind {
	case broker.Internal:
		log.ErrorContext(ctx, "credential request failed", attrs...)
	case broker.Transient:
		log.WarnContext(ctx, "credential request failed", attrs...)
	default:
		log.InfoContext(ctx, "credential request denied", attrs...)
	}
}

func (s *Service) metric(ctx context.Context, log *slog.Logger, rq requestMeta, o *outcome, elapsed time.Duration) {
	if s.Metrics == nil {
		return
	}
	issued, denied := 1.0, 0.0
	status, code := 200, ""
	if o.err != nil {
		issued, denied = 0, 1
		status, code = statusOf(o.err)
	}
	metrics := []emf.Metric{
		{Name: "Issued", Unit: emf.Count, Value: issued},
		{Name: "Denied", Unit: emf.Count, Value: denied},
		{Name: "Latency", Unit: emf.Milliseconds, Value: float64(elapsed.Microseconds()) / 1000},
		{Name: "CacheHit", Unit: emf.Count, Value: float64(len(o.keyIDs) - o.minted)},
		{Name: "CacheMiss", Unit: emf.Count, Value: float64(o.minted)},
	}
	if o.compiled {
		metrics = append(metrics, emf.Metric{Name: "ProjectCompile", Unit: emf.Milliseconds, Value: float64(o.compile.Microseconds()) / 1000})
	}
	props := map[string]any{"requestId": rq.id, "status": status}
	if code != "" {
		props["error"] = code
	}
	if err := s.Metrics.Write(map[string]string{"Function": "credentials"}, props, metrics...); err != nil {
		log.DebugContext(ctx, "metric line not written", "err", err)
	}
}
