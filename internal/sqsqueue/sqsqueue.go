// Package sqsqueue adapts an SQS queue to the projector's page queue
// (projector.Queue): each body one message.
package sqsqueue

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// API is the part of the SQS client the queue uses.
type API interface {
	SendMessageBatch(context.Context, *sqs.SendMessageBatchInput, ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
}

// Queue sends messages to one SQS queue.
type Queue struct {
	Client API
	URL    string
}

// SQS's limits of one SendMessageBatch: 10 messages, 256 KiB in all, and
// the longest delay.
const (
	batchMax      = 10
	batchBytesMax = 256 << 10
	maxDelay      = 15 * time.Minute
)

// Send sends the bodies in as few batches as SQS's limits allow, each
// delivered no sooner than delay (at most 15 minutes) from now. A message
// that SQS did not take fails the send, after the rest of its batch was
// taken: the caller sends again, and a page delivered twice is harmless.
func (q *Queue) Send(ctx context.Context, bodies []string, delay time.Duration) error {
	secs := int32(min(delay, maxDelay).Seconds())
	for len(bodies) > 0 {
		n, size := 0, 0
		for n < len(bodies) && n < batchMax && (n == 0 || size+len(bodies[n]) <= batchBytesMax) {
			size += len(bodies[n])
			n++
		}
		entries := make([]types.SendMessageBatchRequestEntry, n)
		for i, b := range bodies[:n] {
			entries[i] = types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(b), DelaySeconds: secs}
		}
		out, err := q.Client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(q.URL), Entries: entries})
		if err != nil {
			return fmt.Errorf("send to %s: %w", q.URL, err)
		}
		if len(out.Failed) > 0 {
			f := out.Failed[0]
			return fmt.Errorf("send to %s: %d of %d messages refused, first: %s %s", q.URL, len(out.Failed), n, aws.ToString(f.Code), aws.ToString(f.Message))
		}
		bodies = bodies[n:]
	}
	return nil
}
