package lambdaext

import (
	"context"
	"log/slog"
)

// FlushAfterInvokeExiting is FlushAfterInvoke with the process's exit
// replaced.
func FlushAfterInvokeExiting[E, R any](api string, f Flusher, handler func(context.Context, E) (R, error), log *slog.Logger, exit func(code int)) func(context.Context, E) (R, error) {
	return flushAfterInvoke(api, f, handler, log, exit)
}
