//go:build integration

package wire_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/ddbstore"
	"github.com/credbroker/credbroker/internal/localstack"
	"github.com/credbroker/credbroker/internal/revoker"
	"github.com/credbroker/credbroker/internal/samtemplate"
	"github.com/credbroker/credbroker/internal/testkit/iameval"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
	"github.com/credbroker/credbroker/internal/wire"
)

// 200 narrowings arrive from 200 concurrent producers (a bucket removed
// from a 200-member project) and take the path the template sets up: the
// bus, the revoker rule (its pattern from template.yaml), the revocation
// queue, and the revoker fed from it as Lambda's SQS event source feeds it
// (batches, two at once, failed messages delivered again, a dead-letter
// queue after the fifth receive: modelled in process, since moto runs no
// functions), against moto's DynamoDB, IAM and EventBridge. Every user ends
// denied and announced, and none is in the dead-letter queue.
func TestConcurrentRevocationsAllLand(t *testing.T) {
	const users = 200
	ctx := t.Context()
	cfg := mototest.Config(t)
	tpl, err := samtemplate.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	rule, err := tpl.Resource("RevokerRule")
	if err != nil {
		t.Fatal(err)
	}
	pattern, _ := json.Marshal(rule.Properties["EventPattern"])
	narrowings := mototest.NewBusWithRule(t, string(pattern)) // its queue is the revocation queue
	announced := mototest.NewAuditBus(t)
	tables := mototest.NewTables(t)
	base, err := tpl.CreateBaseRole(ctx, iam.NewFromConfig(cfg), mototest.Name(t, "base"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := wire.Revoker(revoker.Config{PolicyTable: tables.Policy, AuditBusName: announced.Name, BaseRoleARN: base.ARN, MaxSession: 15 * time.Minute},
		cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	store := &ddbstore.Store{Client: tables.DDB, PolicyTable: tables.Policy}

	// The producers: the projector's narrowing of each member, its cutoff
	// in the member's item first, then its PolicyChanged as the revoker
	// rule delivers it to the queue (the rule's pattern has its own test,
	// TestRevokerRuleMatchesNarrowingChangesOnly; moto spends about 150 ms
	// of its one process on each event a rule delivers).
	queue := sqs.NewFromConfig(cfg)
	started := time.Now()
	cutoffs := make([]time.Time, users)
	var wg sync.WaitGroup
	for i := range users {
		wg.Go(func() {
			u := member(i)
			cut, err := store.AdvanceCutoff(ctx, u, broker.RevokeBefore(time.Now()))
			if err != nil {
				t.Error(err)
				return
			}
			cutoffs[i] = cut
			detail, _ := json.Marshal(broker.PolicyChangedDetail{SchemaVersion: "1", ChangeID: u + "/v1/v2", UserID: u, RemovedCount: 1, RevokeBefore: &cut,
				RevokedCutoffTags: []string{broker.CutoffTag(u, time.Time{})}})
			body, _ := json.Marshal(events.EventBridgeEvent{Version: "0", ID: u, DetailType: broker.DetailPolicyChanged, Source: broker.SourceProjector,
				Time: time.Now(), Region: mototest.Region, Resources: []string{}, Detail: detail})
			if _, err := queue.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(narrowings.QueueURL), MessageBody: aws.String(string(body))}); err != nil {
				t.Errorf("send %s's narrowing: %v", u, err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("producers done in %v", time.Since(started))
	started = time.Now()
	src := &eventSource{sqs: queue, queue: narrowings.QueueURL, handler: h.Invoke, dlq: map[string]string{}}
	stats := src.drain(t, ctx)
	t.Logf("%d narrowings in %d batches (largest %d), %d messages delivered again, in %v", users, stats.batches, stats.largest, stats.redelivered, time.Since(started))
	if len(src.dlq) > 0 {
		t.Errorf("%d narrowings in the dead-letter queue: %v", len(src.dlq), src.dlq)
	}

	name := base.Name
	role := mototest.Role(t, name).Eval(t)
	seen := map[string]bool{}
	for _, ev := range announced.Receive(t, 1) {
		addUsers(seen, ev)
	}
	for _, ev := range announced.ReceiveAll(t) {
		addUsers(seen, ev)
	}
	for i := range users {
		u := member(i)
		if reaches(role, u, broker.CutoffTag(u, time.Time{})) {
			t.Errorf("%s's session from before the narrowing still works", u)
		}
		if !reaches(role, u, broker.CutoffTag(u, cutoffs[i])) {
			t.Errorf("%s's session minted under the new cutoff is denied", u)
		}
		if !seen[u] {
			t.Errorf("%s's revocation was never announced", u)
		}
	}
	if !reaches(role, "bystander", broker.CutoffTag("bystander", time.Time{})) {
		t.Error("a bystander's session is denied")
	}
}

func member(i int) string { return fmt.Sprintf("3f8e2a5c-0b6d-4c1e-9a7f-%012d", i) }

func addUsers(seen map[string]bool, ev mototest.ReceivedEvent) {
	var d broker.CredentialsRevokedDetail
	if ev.DetailType == broker.DetailCredentialsRevoked && json.Unmarshal(ev.Detail, &d) == nil {
		for _, u := range d.UserIDs {
			seen[u] = true
		}
	}
}

// reaches judges, with the project's IAM evaluator (moto enforces none),
// whether a session of user tagged with the cutoff tag may read a bucket
// its session policy grants, under the base role as IAM holds it.
func reaches(role iameval.Role, user, tag string) bool {
	session, _ := iameval.Parse(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::` + samtemplate.LocalAccountID + `-lake/*"}]}`)
	return role.Allows(session, iameval.Request{Action: "s3:GetObject", Resource: "arn:aws:s3:::" + samtemplate.LocalAccountID + "-lake/k", Context: map[string]string{
		"aws:SourceIdentity": user, "aws:TokenIssueTime": time.Now().UTC().Format(time.RFC3339), "aws:SecureTransport": "true",
		"s3:ResourceAccount": samtemplate.LocalAccountID, "aws:PrincipalTag/" + broker.UserTagKey: broker.UserTag(user), "aws:PrincipalTag/" + broker.CutoffTagKey: tag,
	}})
}

// eventSource models Lambda's SQS event source for the revoker as
// template.yaml configures it: batches of up to localstack.BatchSize
// messages gathered for up to localstack.Window, localstack.Concurrency
// pollers, partial batch failures made visible again, and a message moved
// to the dead-letter queue after localstack.MaxReceives receives.
type eventSource struct {
	sqs     *sqs.Client
	queue   string
	handler func(context.Context, json.RawMessage) (any, error)

	mu  sync.Mutex
	dlq map[string]string // message id -> body
}

type sourceStats struct {
	batches, largest, redelivered int
}

// drain polls until the queue stays empty and nothing is in flight.
func (s *eventSource) drain(t *testing.T, ctx context.Context) sourceStats {
	var batches, largest, redelivered, inFlight atomic.Int64
	var idle atomic.Int64
	deadline := time.Now().Add(2 * time.Minute)
	var wg sync.WaitGroup
	for range localstack.Concurrency {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				batch := s.gather(t, ctx)
				if len(batch) == 0 {
					if inFlight.Load() == 0 && idle.Add(1) > 3 {
						return
					}
					continue
				}
				idle.Store(0)
				inFlight.Add(1)
				failed := s.deliver(t, ctx, batch)
				inFlight.Add(-1)
				batches.Add(1)
				redelivered.Add(int64(len(failed)))
				for n := int64(len(batch)); ; {
					cur := largest.Load()
					if n <= cur || largest.CompareAndSwap(cur, n) {
						break
					}
				}
			}
		})
	}
	wg.Wait()
	return sourceStats{batches: int(batches.Load()), largest: int(largest.Load()), redelivered: int(redelivered.Load())}
}

func (s *eventSource) gather(t *testing.T, ctx context.Context) []sqstypes.Message {
	var batch []sqstypes.Message
	until := time.Now().Add(localstack.Window)
	for len(batch) < localstack.BatchSize && time.Now().Before(until) {
		out, err := s.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(s.queue), MaxNumberOfMessages: 10,
			VisibilityTimeout: 60, MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameApproximateReceiveCount}})
		if err != nil {
			t.Errorf("receive: %v", err)
			return batch
		}
		if len(out.Messages) == 0 {
			if len(batch) > 0 {
				break
			}
			time.Sleep(50 * time.Millisecond) // an empty poll, as Lambda's pollers make
			continue
		}
		batch = append(batch, out.Messages...)
	}
	return batch
}

// deliver hands the batch to the revoker, deletes what it applied and
// returns the ids of the messages it reported failed.
func (s *eventSource) deliver(t *testing.T, ctx context.Context, batch []sqstypes.Message) []string {
	ev := events.SQSEvent{Records: make([]events.SQSMessage, len(batch))}
	for i, m := range batch {
		ev.Records[i] = events.SQSMessage{MessageId: aws.ToString(m.MessageId), Body: aws.ToString(m.Body), EventSource: "aws:sqs"}
	}
	payload, _ := json.Marshal(ev)
	out, err := s.handler(ctx, payload)
	failed := map[string]bool{}
	if err != nil {
		for _, m := range batch {
			failed[aws.ToString(m.MessageId)] = true
		}
	} else if resp, ok := out.(events.SQSEventResponse); ok {
		for _, f := range resp.BatchItemFailures {
			failed[f.ItemIdentifier] = true
		}
	}
	var ids []string
	var done []sqstypes.DeleteMessageBatchRequestEntry
	for _, m := range batch {
		id := aws.ToString(m.MessageId)
		if failed[id] {
			ids = append(ids, id)
			if n, _ := strconv.Atoi(m.Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)]); n < localstack.MaxReceives {
				continue // visible again when its visibility timeout ends
			}
			s.mu.Lock()
			s.dlq[id] = aws.ToString(m.Body)
			s.mu.Unlock()
		}
		done = append(done, sqstypes.DeleteMessageBatchRequestEntry{Id: m.MessageId, ReceiptHandle: m.ReceiptHandle})
	}
	for chunk := range slices.Chunk(done, 10) {
		out, err := s.sqs.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(s.queue), Entries: chunk})
		if err != nil {
			t.Errorf("delete a batch: %v", err)
		} else if len(out.Failed) > 0 {
			// Delivered again meanwhile, as SQS may: the revoker is
			// idempotent, and the next delivery is deleted.
			t.Logf("%d deletes failed: %s", len(out.Failed), aws.ToString(out.Failed[0].Message))
		}
	}
	return ids
}
