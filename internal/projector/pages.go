package projector

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/credbroker/credbroker/internal/backoff"
	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/emf"
)

// Queue hands fan-out pages to workers: on AWS an SQS queue whose event
// source invokes the projector function with batches of them, at most
// ProjectorWorkerConcurrency invocations at once (template.yaml). A page
// is delivered at least once; reaching a member twice is idempotent.
type Queue interface {
	// Send enqueues each body as one message, delivered no sooner than
	// delay from now.
	Send(ctx context.Context, bodies []string, delay time.Duration) error
}

// Page is one page of a fan-out: members of a project to bring in line with
// its buckets, for the change with EventID (the cause in their events).
type Page struct {
	Project string          `json:"project"`
	EventID string          `json:"eventId"`
	Members []broker.Member `json:"members"`
	// Attempt counts the deliveries of members that failed before; a page
	// of them is sent again until maxPageAttempts, then left to the
	// queue's own redrive (and its dead-letter queue).
	Attempt int `json:"attempt,omitempty"`
}

// maxPageAttempts bounds the pages of failed members a worker sends again.
const maxPageAttempts = 5

// sendPage enqueues one page of members.
func (p *Projector) sendPage(ctx context.Context, pg Page, delay time.Duration) error {
	body, err := json.Marshal(pg)
	if err != nil {
		return broker.Wrap(broker.Internal, "encode fan-out page", err)
	}
	if err := p.Pages.Send(ctx, []string{string(body)}, delay); err != nil {
		return broker.Wrap(broker.Transient, "send fan-out page", err)
	}
	return nil
}

// ProcessPage brings one page's members in line with the project's
// buckets, at most Concurrency DynamoDB calls in flight, and returns the
// members that failed with their errors.
func (p *Projector) ProcessPage(ctx context.Context, pg Page) ([]broker.Member, []error) {
	sem := make(chan struct{}, cmp.Or(p.Concurrency, 16))
	var counts deltaCounts
	var failed []broker.Member
	var errs []error
	for i, err := range p.applyMembers(ctx, sem, pg.Project, pg.Members, []string{pg.EventID}, &counts) {
		if err != nil {
			failed = append(failed, pg.Members[i])
			errs = append(errs, fmt.Errorf("%s: %w", pg.Members[i].UserID, err))
		}
	}
	return failed, errs
}

// isQueueEvent reports whether payload is an SQS event (fan-out pages).
func isQueueEvent(payload json.RawMessage) bool {
	var env struct {
		Records []struct {
			EventSource string `json:"eventSource"`
		} `json:"Records"`
	}
	return json.Unmarshal(payload, &env) == nil && len(env.Records) > 0 && env.Records[0].EventSource == "aws:sqs"
}

// pages is the worker: each message is one page. A page whose members all
// succeed is acknowledged; one with failed members sends a page of just
// those again, after a backoff, and is acknowledged, until maxPageAttempts,
// after which the message fails and the queue's redrive delivers it again
// and finally moves it to the dead-letter queue (alarmed). A message that
// is not a page fails the same way.
func (h *Handler) pages(ctx context.Context, p *Projector, payload json.RawMessage) (events.DynamoDBEventResponse, error) {
	start := time.Now()
	var ev events.SQSEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return events.DynamoDBEventResponse{}, fmt.Errorf("decode SQS event: %w", err)
	}
	resp := events.DynamoDBEventResponse{BatchItemFailures: []events.DynamoDBBatchItemFailure{}}
	members, failedMembers := 0, 0
	for _, rec := range ev.Records {
		var pg Page
		if err := json.Unmarshal([]byte(rec.Body), &pg); err != nil || pg.Project == "" {
			p.logger().Error("fan-out message is not a page", "messageId", rec.MessageId, "err", err)
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.DynamoDBBatchItemFailure{ItemIdentifier: rec.MessageId})
			continue
		}
		failed, errs := p.ProcessPage(ctx, pg)
		members += len(pg.Members)
		failedMembers += len(failed)
		if len(failed) == 0 {
			continue
		}
		retry := Page{Project: pg.Project, EventID: pg.EventID, Members: failed, Attempt: pg.Attempt + 1}
		p.reportFailedMembers(pg.Project, Change{EventID: pg.EventID, SequenceNumber: rec.MessageId}, failed, errs)
		if retry.Attempt < maxPageAttempts && p.Pages != nil {
			delay := backoff.Jitter(retry.Attempt, 2*time.Second, time.Minute)
			if err := p.sendPage(ctx, retry, delay); err == nil {
				continue
			} else {
				p.logger().Error("fan-out page of failed members not sent; the page is handed back", "project", pg.Project, "err", err)
			}
		}
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.DynamoDBBatchItemFailure{ItemIdentifier: rec.MessageId})
	}
	p.logger().Info("fan-out pages applied", "pages", len(ev.Records), "failedPages", len(resp.BatchItemFailures),
		"members", members, "failedMembers", failedMembers, "ms", time.Since(start).Milliseconds())
	_ = h.Metrics.Write(map[string]string{"Function": "projector"}, nil,
		emf.Metric{Name: "FanoutPageMembers", Unit: emf.Count, Value: float64(members)},
		emf.Metric{Name: "FanoutMemberFailures", Unit: emf.Count, Value: float64(failedMembers)},
	)
	return resp, nil
}
