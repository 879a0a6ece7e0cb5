// Package ebscheduler adapts EventBridge Scheduler to broker.ExpiryTimer:
// one one-time schedule per user and expiry instant, which invokes the
// projector function with the expiry's payload at that instant and deletes
// itself afterwards (docs/contract.md "Source records", expiresAt).
package ebscheduler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/scheduler/types"

	"github.com/credbroker/credbroker/internal/broker"
)

// API is the part of the Scheduler client the timer uses.
type API interface {
	CreateSchedule(ctx context.Context, in *scheduler.CreateScheduleInput, optFns ...func(*scheduler.Options)) (*scheduler.CreateScheduleOutput, error)
}

// Timer arms one-time schedules in one schedule group.
type Timer struct {
	Client API
	// Group is the schedule group (the template's ExpiryScheduleGroup).
	Group string
	// RoleARN is the role the scheduler assumes to invoke the target.
	RoleARN string
	// TargetARN is the projector function. Empty in the projector itself,
	// whose template cannot name its own ARN: the invoked function's ARN
	// (from the invocation's context) is the target then.
	TargetARN string
	// DeadLetterARN, when set, keeps the invocations the scheduler gave up on.
	DeadLetterARN string
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// MinLead is how far ahead of the clock a schedule fires at the earliest:
// a one-time schedule whose instant has passed by the time it is created
// may never fire, so an expiry closer than this is recomputed this long
// from now instead, well within the minute the contract allows on AWS.
const MinLead = 10 * time.Second

// ScheduleName names the schedule of one user and instant: a hash of the
// user id (schedule names admit fewer characters than user ids) and the
// instant's Unix seconds, so that arming the same expiry twice names the
// same schedule and the second CreateSchedule is a conflict, not a copy.
func ScheduleName(userID string, at time.Time) string {
	sum := sha256.Sum256([]byte(userID))
	return "expiry-" + hex.EncodeToString(sum[:12]) + "-" + strconv.FormatInt(at.Unix(), 10)
}

// Arm implements broker.ExpiryTimer. A schedule that exists already is the
// same one: nothing to do. Schedules are never deleted here: a stale one
// fires a recompute that changes nothing, and deletes itself after.
func (t *Timer) Arm(ctx context.Context, userID string, at time.Time) error {
	const op = "arm expiry schedule"
	target := t.TargetARN
	if target == "" {
		if lc, ok := lambdacontext.FromContext(ctx); ok {
			target = lc.InvokedFunctionArn
		}
	}
	if target == "" {
		return broker.Errorf(broker.Internal, op, "no target function: set the target ARN outside the projector")
	}
	at = at.UTC().Truncate(time.Second)
	now := time.Now
	if t.Now != nil {
		now = t.Now
	}
	fire := at
	if earliest := now().UTC().Add(MinLead).Truncate(time.Second); fire.Before(earliest) {
		fire = earliest
	}
	input, err := json.Marshal(broker.ExpiryPayload{Expiry: &broker.ExpiryEvent{UserID: userID, At: at}})
	if err != nil {
		return broker.Wrap(broker.Internal, op, err)
	}
	tgt := &types.Target{
		Arn:     aws.String(target),
		RoleArn: aws.String(t.RoleARN),
		Input:   aws.String(string(input)),
		// Lambda throttling or an error is retried for up to an hour; a
		// recompute is idempotent.
		RetryPolicy: &types.RetryPolicy{MaximumEventAgeInSeconds: aws.Int32(3600), MaximumRetryAttempts: aws.Int32(20)},
	}
	if t.DeadLetterARN != "" {
		tgt.DeadLetterConfig = &types.DeadLetterConfig{Arn: aws.String(t.DeadLetterARN)}
	}
	_, err = t.Client.CreateSchedule(ctx, &scheduler.CreateScheduleInput{
		Name:                       aws.String(ScheduleName(userID, at)),
		GroupName:                  aws.String(t.Group),
		ScheduleExpression:         aws.String("at(" + fire.Format("2006-01-02T15:04:05") + ")"),
		ScheduleExpressionTimezone: aws.String("UTC"),
		FlexibleTimeWindow:         &types.FlexibleTimeWindow{Mode: types.FlexibleTimeWindowModeOff},
		ActionAfterCompletion:      types.ActionAfterCompletionDelete,
		Description:                aws.String("credbroker: recompute a user at a membership expiry"),
		Target:                     tgt,
	})
	var conflict *types.ConflictException
	switch {
	case errors.As(err, &conflict):
		return nil
	case err != nil:
		return broker.Wrap(broker.Transient, op, err)
	}
	return nil
}
