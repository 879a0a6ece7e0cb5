package ebscheduler_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/scheduler/types"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/ebscheduler"
)

// createFunc is a function-field fake of the Scheduler client.
type createFunc func(*scheduler.CreateScheduleInput) error

func (f createFunc) CreateSchedule(_ context.Context, in *scheduler.CreateScheduleInput, _ ...func(*scheduler.Options)) (*scheduler.CreateScheduleOutput, error) {
	return &scheduler.CreateScheduleOutput{}, f(in)
}

func TestArmOutcomes(t *testing.T) {
	at := time.Date(2031, 12, 31, 18, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		target string
		err    error
		want   broker.Kind // Other: no error
	}{
		{"a new schedule is armed", "arn:aws:lambda:us-east-1:123456789012:function:p", nil, broker.Other},
		{"an existing schedule is the same one", "arn:aws:lambda:us-east-1:123456789012:function:p", &types.ConflictException{Message: new(string)}, broker.Other},
		{"a throttled call is transient", "arn:aws:lambda:us-east-1:123456789012:function:p", &types.ThrottlingException{Message: new(string)}, broker.Transient},
		{"no target outside a Lambda invocation is a bug", "", nil, broker.Internal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			timer := &ebscheduler.Timer{Group: "g", RoleARN: "arn:aws:iam::123456789012:role/r", TargetARN: tc.target,
				Client: createFunc(func(*scheduler.CreateScheduleInput) error { calls++; return tc.err })}
			err := timer.Arm(context.Background(), "alice", at)
			if got := broker.KindOf(err); got != tc.want {
				t.Errorf("err %v (kind %v), want kind %v", err, got, tc.want)
			}
			if tc.target == "" && calls != 0 {
				t.Error("a schedule without a target was created")
			}
		})
	}
}

// An expiry closer than MinLead fires MinLead from now, with the expiry
// itself in the payload; a later one fires at the expiry.
func TestAnExpiryTooCloseFiresAfterTheLead(t *testing.T) {
	now := time.Date(2031, 12, 31, 17, 59, 58, 0, time.UTC)
	for _, tc := range []struct {
		name string
		at   time.Time
		want string
	}{
		{"an expiry two seconds ahead fires after the lead", now.Add(2 * time.Second), "at(2031-12-31T18:00:08)"},
		{"an expiry already past fires after the lead", now.Add(-time.Second), "at(2031-12-31T18:00:08)"},
		{"an expiry an hour ahead fires at the expiry", now.Add(time.Hour), "at(2031-12-31T18:59:58)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got *scheduler.CreateScheduleInput
			timer := &ebscheduler.Timer{Group: "g", RoleARN: "r", TargetARN: "f", Now: func() time.Time { return now },
				Client: createFunc(func(in *scheduler.CreateScheduleInput) error { got = in; return nil })}
			if err := timer.Arm(context.Background(), "alice", tc.at); err != nil {
				t.Fatal(err)
			}
			if e := *got.ScheduleExpression; e != tc.want {
				t.Errorf("expression %s, want %s", e, tc.want)
			}
			if !strings.Contains(*got.Target.Input, tc.at.Format(time.RFC3339)) || *got.Name != ebscheduler.ScheduleName("alice", tc.at) {
				t.Errorf("input %s, name %s: want the expiry %v itself", *got.Target.Input, *got.Name, tc.at)
			}
		})
	}
}

// In the projector the target is the function being invoked.
func TestTheProjectorTargetsItself(t *testing.T) {
	const self = "arn:aws:lambda:eu-west-1:123456789012:function:stack-ProjectorFunction-x"
	var got *scheduler.CreateScheduleInput
	timer := &ebscheduler.Timer{Group: "g", RoleARN: "r",
		Client: createFunc(func(in *scheduler.CreateScheduleInput) error { got = in; return nil })}
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{InvokedFunctionArn: self})
	if err := timer.Arm(ctx, "alice", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if *got.Target.Arn != self {
		t.Errorf("target %s, want the invoked function %s", *got.Target.Arn, self)
	}
}

// Schedule names hold only what the scheduler admits, whatever the user id.
func TestScheduleNamesFitTheSchedulersRules(t *testing.T) {
	at := time.Date(2031, 12, 31, 18, 0, 0, 0, time.UTC)
	a, b := ebscheduler.ScheduleName("a+b=c,d.e@f-g_h", at), ebscheduler.ScheduleName("a+b=c,d.e@f-g_i", at)
	if a == b {
		t.Error("two users share a schedule name")
	}
	for _, n := range []string{a, b} {
		if len(n) > 64 {
			t.Errorf("%q is longer than 64", n)
		}
		for _, c := range n {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				t.Errorf("%q has %q", n, c)
			}
		}
	}
}
