package mototest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// AuditEventPattern routes every event of the broker's sources (see
// broker.Source*) to the test queue.
const AuditEventPattern = `{"source":[{"prefix":"credbroker."}]}`

// receiveDeadline bounds how long Receive waits for the events it expects.
const receiveDeadline = 20 * time.Second

// AuditBus is an EventBridge bus in moto whose events a rule copies to an
// SQS queue, so a test can read back what was put on the bus. moto delivers
// to the queue during PutEvents itself.
type AuditBus struct {
	Name     string
	ARN      string
	QueueURL string
	sqs      *sqs.Client
}

// ReceivedEvent is an EventBridge event as a rule target receives it.
type ReceivedEvent struct {
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Time       time.Time       `json:"time"`
	Resources  []string        `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
}

// NewAuditBus creates a bus, a queue, and a rule on the bus matching
// AuditEventPattern with the queue as its target. They are deleted when the
// test ends.
func NewAuditBus(tb testing.TB) *AuditBus {
	tb.Helper()
	return NewBusWithRule(tb, AuditEventPattern)
}

// NewBusWithRule is NewAuditBus with another event pattern on the rule.
func NewBusWithRule(tb testing.TB, pattern string) *AuditBus {
	tb.Helper()
	ctx := context.Background()
	eb := eventbridge.NewFromConfig(Config(tb))
	name := Name(tb, "audit")
	bus, err := eb.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(name)})
	if err != nil {
		tb.Fatalf("setup audit bus %s: create bus: %v", name, err)
	}
	tb.Cleanup(func() {
		_, _ = eb.DeleteEventBus(ctx, &eventbridge.DeleteEventBusInput{Name: aws.String(name)})
	})
	return WatchBus(tb, name, aws.ToString(bus.EventBusArn), pattern)
}

// WatchBus copies the events of an existing bus (a local stack's) that
// match pattern to a new queue, so that a test can read them back.
func WatchBus(tb testing.TB, busName, busARN, pattern string) *AuditBus {
	tb.Helper()
	ctx := context.Background()
	cfg := Config(tb)
	eb := eventbridge.NewFromConfig(cfg)
	sq := sqs.NewFromConfig(cfg)
	name := Name(tb, "watch")

	fail := func(what string, err error) {
		if err != nil {
			tb.Fatalf("setup audit bus %s: %s: %v", busName, what, err)
		}
	}
	q, err := sq.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name)})
	fail("create queue", err)
	attrs, err := sq.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       q.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	fail("queue ARN", err)
	queueARN := attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	rule := name + "-to-sqs"
	_, err = eb.PutRule(ctx, &eventbridge.PutRuleInput{
		Name:         aws.String(rule),
		EventBusName: aws.String(busName),
		EventPattern: aws.String(pattern),
	})
	fail("put rule", err)
	out, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{
		Rule:         aws.String(rule),
		EventBusName: aws.String(busName),
		Targets:      []ebtypes.Target{{Id: aws.String("queue"), Arn: aws.String(queueARN)}},
	})
	fail("put targets", err)
	if out.FailedEntryCount > 0 {
		tb.Fatalf("setup audit bus %s: put targets: %d failed", busName, out.FailedEntryCount)
	}

	tb.Cleanup(func() {
		// Best effort: moto is per test run, so leftovers cost nothing.
		_, _ = eb.RemoveTargets(ctx, &eventbridge.RemoveTargetsInput{Rule: aws.String(rule), EventBusName: aws.String(busName), Ids: []string{"queue"}})
		_, _ = eb.DeleteRule(ctx, &eventbridge.DeleteRuleInput{Name: aws.String(rule), EventBusName: aws.String(busName)})
		_, _ = sq.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: q.QueueUrl})
	})
	return &AuditBus{Name: busName, ARN: busARN, QueueURL: aws.ToString(q.QueueUrl), sqs: sq}
}

// Receive returns the next n events from the queue, long-polling until they
// have all arrived or about 20 seconds have passed; then it fails the test,
// listing what it got. Received messages are deleted.
func (b *AuditBus) Receive(tb testing.TB, n int) []ReceivedEvent {
	tb.Helper()
	deadline := time.Now().Add(receiveDeadline)
	var got []ReceivedEvent
	for len(got) < n {
		left := time.Until(deadline)
		if left <= 0 {
			tb.Fatalf("received %d of %d events from %s within %v:\n%s", len(got), n, b.Name, receiveDeadline, describe(got))
		}
		wait := int32(min(5*time.Second, max(time.Second, left.Round(time.Second))) / time.Second)
		got = append(got, b.receive(tb, int32(min(10, n-len(got))), wait)...)
	}
	return got
}

// ReceiveAll returns every event waiting in the queue. Since moto delivers
// during PutEvents, an empty answer after the events a test expects means
// nothing more was put on the bus, with no waiting.
func (b *AuditBus) ReceiveAll(tb testing.TB) []ReceivedEvent {
	tb.Helper()
	var got []ReceivedEvent
	for {
		batch := b.receive(tb, 10, 0)
		if len(batch) == 0 {
			return got
		}
		got = append(got, batch...)
	}
}

func (b *AuditBus) receive(tb testing.TB, limit, waitSeconds int32) []ReceivedEvent {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(waitSeconds+10)*time.Second)
	defer cancel()
	out, err := b.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:            aws.String(b.QueueURL),
		MaxNumberOfMessages: limit,
		WaitTimeSeconds:     waitSeconds,
	})
	if err != nil {
		tb.Fatalf("receive from %s: %v", b.Name, err)
	}
	events := make([]ReceivedEvent, 0, len(out.Messages))
	for _, m := range out.Messages {
		var ev ReceivedEvent
		if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &ev); err != nil {
			tb.Fatalf("message on %s is not an EventBridge event: %v\n%s", b.Name, err, aws.ToString(m.Body))
		}
		events = append(events, ev)
		if _, err := b.sqs.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(b.QueueURL), ReceiptHandle: m.ReceiptHandle}); err != nil {
			tb.Fatalf("delete message from %s: %v", b.Name, err)
		}
	}
	return events
}

func describe(events []ReceivedEvent) string {
	if len(events) == 0 {
		return "  (none)"
	}
	var sb strings.Builder
	for _, ev := range events {
		fmt.Fprintf(&sb, "  %s %s %s %s\n", ev.ID, ev.Source, ev.DetailType, ev.Detail)
	}
	return sb.String()
}
