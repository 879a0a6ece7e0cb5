package replay

import (
	"context"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
)

// Run performs the request. Near the context's deadline (the Lambda
// timeout) it stops DeadlineMargin early, so the report still goes out.
func (s *Service) Run(ctx context.Context, req Request) (Report, error) {
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-deadlineMargin))
		defer cancel()
	}
	switch req.Mode {
	case ModeRebuild:
		return s.Rebuild(ctx)
	case ModeVerify:
		return s.Verify(ctx)
	case ModeReplay:
		return s.Replay(ctx, req.Since)
	}
	return Report{}, broker.Errorf(broker.Invalid, "run", "unknown mode %q", req.Mode)
}

// deadlineMargin is kept free before a Lambda deadline to log and answer.
const deadlineMargin = 10 * time.Second
