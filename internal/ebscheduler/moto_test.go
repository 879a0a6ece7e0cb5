//go:build integration

package ebscheduler_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/scheduler/types"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/ebscheduler"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
)

// Arming writes one one-time schedule that invokes the target at the
// expiry with the user's payload and deletes itself after; arming the same
// expiry again is a no-op, another expiry is another schedule.
func TestArmCreatesOneSelfDeletingScheduleAtTheExpiry(t *testing.T) {
	ctx := context.Background()
	client := scheduler.NewFromConfig(mototest.Config(t))
	group := mototest.Name(t, "expiry")
	if _, err := client.CreateScheduleGroup(ctx, &scheduler.CreateScheduleGroupInput{Name: aws.String(group)}); err != nil {
		t.Fatal(err)
	}
	timer := &ebscheduler.Timer{Client: client, Group: group,
		RoleARN:   "arn:aws:iam::123456789012:role/expiry-scheduler",
		TargetARN: "arn:aws:lambda:us-east-1:123456789012:function:projector"}
	at := time.Date(2031, 12, 31, 18, 0, 0, 0, time.UTC)
	for range 2 {
		if err := timer.Arm(ctx, "alice@example.com", at.Add(400*time.Millisecond)); err != nil {
			t.Fatalf("arm: %v", err)
		}
	}
	if err := timer.Arm(ctx, "alice@example.com", at.Add(time.Hour)); err != nil {
		t.Fatalf("arm another expiry: %v", err)
	}
	list, err := client.ListSchedules(ctx, &scheduler.ListSchedulesInput{GroupName: aws.String(group)})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Schedules) != 2 {
		t.Errorf("%d schedules, want one per expiry (2)", len(list.Schedules))
	}
	got, err := client.GetSchedule(ctx, &scheduler.GetScheduleInput{GroupName: aws.String(group), Name: aws.String(ebscheduler.ScheduleName("alice@example.com", at))})
	if err != nil {
		t.Fatal(err)
	}
	if e := aws.ToString(got.ScheduleExpression); e != "at(2031-12-31T18:00:00)" || aws.ToString(got.ScheduleExpressionTimezone) != "UTC" {
		t.Errorf("expression %q in %q, want at(2031-12-31T18:00:00) in UTC", e, aws.ToString(got.ScheduleExpressionTimezone))
	}
	if got.ActionAfterCompletion != "" && got.ActionAfterCompletion != types.ActionAfterCompletionDelete {
		t.Errorf("after completion %q, want DELETE", got.ActionAfterCompletion)
	}
	if got.Target == nil || aws.ToString(got.Target.Arn) != timer.TargetARN || aws.ToString(got.Target.RoleArn) != timer.RoleARN {
		t.Fatalf("target %+v, want the projector with the scheduler's role", got.Target)
	}
	var p broker.ExpiryPayload
	if err := json.Unmarshal([]byte(aws.ToString(got.Target.Input)), &p); err != nil || p.Expiry == nil ||
		p.Expiry.UserID != "alice@example.com" || !p.Expiry.At.Equal(at) {
		t.Errorf("input %q (%v), want alice's expiry at %v", aws.ToString(got.Target.Input), err, at)
	}
}
