package replay

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/credbroker/credbroker/internal/backoff"
	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/projector"
)

// maxBatch is the largest batch Lambda's event source mapping delivers
// from a DynamoDB stream by default, and what Replay hands on at once.
const maxBatch = 100

// Replay reads the membership table's stream from TRIM_HORIZON, every shard
// with parents before children, and hands its records in batches to the
// projector's Lambda handler, as the event source mapping would. Records
// created before since (when not zero) are read and skipped: a stream
// cannot start at a time.
//
// When the handler reports failed records, the batch is delivered again
// from the first failed sequence number, as Lambda does, up to MaxAttempts
// times; then Replay stops with an error naming the shard and record. The
// projector recomputes from the membership table and ignores what a record
// carried, so replaying twice, or replaying records already projected,
// gives the same table.
func (s *Service) Replay(ctx context.Context, since time.Time) (Report, error) {
	start := s.now()
	rep := Report{Mode: ModeReplay, RunID: newRunID(ModeReplay, start), StartedAt: start}
	log := s.logger().With("runId", rep.RunID, "mode", ModeReplay)
	log.Info("replay started", "since", since)
	size := min(maxBatch, cmp.Or(s.BatchSize, maxBatch))
	if size < 1 {
		size = maxBatch
	}

	// Creation times have whole seconds: a record of since's own second
	// may have been created after since, so that second is delivered.
	since = since.Truncate(time.Second)
	m := s.startMeter(ctx, rep.RunID, ModeReplay, "stream", 0)
	err := s.Stream.ReadAll(ctx, cmp.Or(s.IdleReads, 3), func(ctx context.Context, shardID string, recs []events.DynamoDBEventRecord) error {
		keep := make([]events.DynamoDBEventRecord, 0, len(recs))
		for _, r := range recs {
			rep.Records++
			m.items.Add(1)
			at := r.Change.ApproximateCreationDateTime.Time
			if !at.IsZero() {
				m.at.Store(at.UnixMilli())
			}
			// A record without a creation time is delivered: replaying
			// too much is harmless, too little is not.
			if !since.IsZero() && !at.IsZero() && at.Before(since) {
				rep.Skipped++
				continue
			}
			keep = append(keep, r)
		}
		for b := range slices.Chunk(keep, size) {
			if err := s.deliver(ctx, shardID, b, &rep, m); err != nil {
				return err
			}
		}
		return nil
	})
	m.finish()
	rep.FinishedAt = s.now()
	log.Info("replay finished", "records", rep.Records, "skipped", rep.Skipped, "delivered", rep.Delivered,
		"batches", rep.Batches, "redeliveries", rep.Redeliveries, "failed", rep.Failed,
		"seconds", rep.FinishedAt.Sub(start).Seconds(), "err", err)
	if err != nil {
		return rep, broker.Wrap(broker.KindOf(err), "replay incomplete; run it again (it is idempotent)", err)
	}
	return rep, nil
}

// deliver hands one batch to the handler, delivering again from the first
// failed record until the batch is accepted or the attempts run out.
func (s *Service) deliver(ctx context.Context, shardID string, batch []events.DynamoDBEventRecord, rep *Report, m *meter) error {
	attempts := max(1, cmp.Or(s.MaxAttempts, 5))
	for attempt := 1; ; attempt++ {
		rep.Batches++
		first, err := projector.Deliver(ctx, s.Handler, batch)
		if err != nil {
			// The handler refuses only payloads that are not DynamoDB
			// events: sending the same bytes again cannot help.
			rep.Failed += len(batch)
			return broker.Wrap(broker.Internal, "shard "+shardID+": handler rejected the batch", err)
		}
		rep.Delivered += first
		if first == len(batch) {
			return nil
		}
		m.failed.Add(1)
		batch = batch[first:]
		seq := batch[0].Change.SequenceNumber
		if attempt >= attempts {
			rep.Failed += len(batch)
			return broker.Errorf(broker.Transient, "replay", "shard %s: record %s still failing after %d attempts", shardID, seq, attempt)
		}
		rep.Redeliveries += len(batch)
		s.logger().Warn("batch failed, delivering again", "shardId", shardID, "from", seq, "records", len(batch), "attempt", attempt)
		if err := backoff.Sleep(ctx, backoff.Jitter(attempt, 100*time.Millisecond, 5*time.Second)); err != nil {
			return broker.Wrap(broker.Transient, "replay", err)
		}
	}
}
