// Package projector keeps the policy table equal to what the membership table
// grants. It takes membership-table changes (from the DynamoDB stream, or a
// replay), finds the users they affect and recomputes each of them from the
// membership table with strongly consistent reads.
//
// Streams deliver at least once, in order per item only, with shards in
// parallel, so nothing here trusts a record's images: a record only says
// whom to recompute. Correctness rests on three rules:
//
//   - A recompute claims the user's item before it reads (broker.Claim); a
//     write under an older claim fails, so stale state never overwrites newer.
//   - Bucket changes fan out through a member index in the policy table,
//     read strongly consistently, never through an eventually consistent
//     GSI. Before a recompute reads a project's buckets it writes the user's
//     entry for that project, so a bucket change committed after those reads
//     finds the user in the index, and one committed before is in the reads.
//   - An entry is removed only after the item without that project's grants
//     is committed, and only if it still holds the token read before the
//     memberships were: a removal never undoes a concurrent re-join, and a
//     user is never missing from the index while their item holds grants of
//     that project.
package projector

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/policy"
)

// Projector recomputes policy items. Its dependencies are injected
// (internal/wire builds it on DynamoDB and EventBridge).
type Projector struct {
	Source      broker.SourceReader
	Store       broker.PolicyStore
	Index       broker.MemberIndex
	Checkpoints broker.Checkpoints
	Auditor     broker.Auditor
	// Expiries, when set, is armed with each user's next membership
	// expiry, so that the item is recomputed when it comes.
	Expiries broker.ExpiryTimer
	Compiler policy.Compiler
	Logger   *slog.Logger
	Now      func() time.Time

	// Concurrency bounds parallel recomputes (default 16).
	Concurrency int
	// PageSize is the number of members read per index page (default 500).
	PageSize int
	// ConflictRetries bounds recomputes of one user that lose a claim race
	// before the change is handed back for retry (default 5).
	ConflictRetries int
	// DeadlineMargin is how long before the invocation's deadline a fan-out
	// stops starting pages and saves its place (default 20s).
	DeadlineMargin time.Duration
	// Pages, when set, takes the fan-outs of more than one page: the
	// stream's invocation only reads the member index and sends its pages
	// to workers (ProcessPage), so that the shard moves on. Without it, a
	// fan-out runs in the invocation, page after page.
	Pages Queue
	// MaxOutbox bounds the PolicyChanged events an item keeps while the bus
	// is unreachable (default 50; at most 96 KiB of them whatever the
	// count); older ones are dropped with an error log.
	MaxOutbox int
}

func (p *Projector) logger() *slog.Logger { return cmp.Or(p.Logger, slog.Default()) }

func (p *Projector) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// Outcome is what became of one batch.
type Outcome struct {
	// Failed holds the sequence numbers of changes to deliver again, in
	// batch order.
	Failed      []string
	Rejected    int
	Recomputed  int
	Changed     int
	FanoutUsers int
}

// job is one user's recompute in this batch. Every change that needs the
// user shares it, and its result.
type job struct {
	userID  string
	touched map[string]bool  // projects whose index entry follows membership
	prune   map[string]int64 // index entries to drop if no longer a member
	causes  []string         // event ids, for the PolicyChanged event
	done    chan struct{}
	err     error
	changed bool
}

// batch is the shared state of one Process call.
type batch struct {
	p    *Projector
	sem  chan struct{}
	mu   sync.Mutex
	jobs map[string]*job
	// delta counts the members fan-outs reached on the delta path.
	delta deltaCounts
}

// Process projects one batch of changes. It never fails as a whole: each
// change either succeeds, is rejected (invalid; reported and not retried),
// or is listed in Outcome.Failed for redelivery.
func (p *Projector) Process(ctx context.Context, changes []Change) Outcome {
	b := &batch{p: p, sem: make(chan struct{}, cmp.Or(p.Concurrency, 16)), jobs: map[string]*job{}}
	var out Outcome
	failed := make([]bool, len(changes))
	direct := make([]*job, len(changes)) // the user a membership change needs
	fanouts := make(map[int]string)      // change index -> project to fan out
	var rejections []broker.AuditEvent
	rejectedBy := map[int]bool{}

	for i, c := range changes {
		plan := p.plan(c)
		if plan.reject != "" {
			p.logger().Warn("source record rejected", "pk", c.Keys.PK, "sk", c.Keys.SK, "reason", plan.reject,
				"eventId", c.EventID, "sequenceNumber", c.SequenceNumber)
			rejections = append(rejections, p.rejection(c, plan.reject))
			rejectedBy[i] = true
			out.Rejected++
		}
		switch plan.ref.Kind {
		case broker.MembershipRecord:
			if plan.ref.UserID != "" && plan.ref.ProjectID != "" {
				direct[i] = b.want(plan.ref.UserID, plan.ref.ProjectID, c.EventID)
			}
		case broker.BucketRecord:
			if plan.ref.ProjectID != "" {
				fanouts[i] = plan.ref.ProjectID
			}
		}
	}

	// Rejections are audit events like any other: if the bus refuses them,
	// the records come back rather than being lost.
	if len(rejections) > 0 {
		if err := p.deliver(ctx, rejections); err != nil {
			p.logger().Error("emit ProjectionRejected", "err", err, "count", len(rejections))
			for i := range rejectedBy {
				failed[i] = true
			}
		}
	}

	// Direct jobs all start before any fan-out, so a fan-out only ever
	// finds started jobs.
	var wg sync.WaitGroup
	for _, j := range b.jobs {
		j.done = make(chan struct{})
		wg.Go(func() { b.run(ctx, j) })
	}
	var fmu sync.Mutex
	for i, project := range fanouts {
		wg.Go(func() {
			n, err := b.fanout(ctx, changes[i], project)
			fmu.Lock()
			defer fmu.Unlock()
			out.FanoutUsers += n
			if err != nil {
				failed[i] = true
				p.logger().Error("fan-out incomplete, change handed back", "project", project, "eventId", changes[i].EventID, "err", err)
			}
		})
	}
	wg.Wait()

	for i, j := range direct {
		if j != nil && j.err != nil {
			failed[i] = true
		}
	}
	for _, j := range b.jobs {
		<-j.done
		out.Recomputed++
		if j.changed {
			out.Changed++
		}
	}
	out.Recomputed += int(b.delta.recomputed.Load())
	out.Changed += int(b.delta.changed.Load())
	for i, f := range failed {
		if f {
			out.Failed = append(out.Failed, changes[i].SequenceNumber)
		}
	}
	return out
}

// want registers that a change needs user's recompute, touching project's
// index entry.
func (b *batch) want(userID, projectID, cause string) *job {
	b.mu.Lock()
	defer b.mu.Unlock()
	j := b.jobs[userID]
	if j == nil {
		j = &job{userID: userID, touched: map[string]bool{}, prune: map[string]int64{}}
		b.jobs[userID] = j
	}
	j.touched[projectID] = true
	j.causes = append(j.causes, cause)
	return j
}

func (b *batch) run(ctx context.Context, j *job) {
	defer close(j.done)
	b.sem <- struct{}{}
	defer func() { <-b.sem }()
	j.changed, j.err = b.p.Recompute(ctx, j.userID, Hint{Touched: j.touched, Prune: j.prune}, j.causes)
	if j.err != nil {
		b.p.logger().Error("recompute failed", "userId", j.userID, "err", j.err, "kind", broker.KindOf(j.err).String())
	}
}

// apply brings a page of the project's members in line with its buckets
// and returns each member's error. A user that a membership change of
// this batch recomputes in full is not reached again: every change of the
// batch had committed before the batch began, so that recompute reads this
// one too. The others take the delta path.
func (b *batch) apply(ctx context.Context, projectID string, members []broker.Member, cause string) []error {
	errs := make([]error, len(members))
	var own []broker.Member
	var at []int
	b.mu.Lock()
	direct := make([]*job, len(members))
	for i, m := range members {
		if j := b.jobs[m.UserID]; j != nil {
			direct[i] = j
		} else {
			own, at = append(own, m), append(at, i)
		}
	}
	b.mu.Unlock()
	for i, err := range b.p.applyMembers(ctx, b.sem, projectID, own, []string{cause}, &b.delta) {
		errs[at[i]] = err
	}
	for i, j := range direct {
		if j != nil {
			<-j.done
			errs[i] = j.err
		}
	}
	return errs
}

// fanoutState is what a fan-out keeps across deliveries of its change, as
// a checkpoint in the policy table under the change's project and event id.
type fanoutState struct {
	// Cursor is where the next page of members starts ("" for the first).
	Cursor string `json:"cursor,omitempty"`
	// Done says every page was read.
	Done bool `json:"done,omitempty"`
	// Retry lists members whose recompute failed, or whose events wait in
	// their outbox, in an earlier delivery: only they are recomputed again.
	Retry []broker.Member `json:"retry,omitempty"`
}

// maxRetryMembers bounds the members a checkpoint lists (about 100 bytes
// each, within DynamoDB's item size). Beyond it the fan-out starts over on
// redelivery, which recomputes everyone again: slower, never wrong.
const maxRetryMembers = 2000

// fanout recomputes every member of the project, page by page. A member
// that fails does not stop it: every page is read and every other member
// recomputed, so one poisoned member or an unreachable bus never keeps a
// removal from the members after it. The failed members are saved with
// the checkpoint and the change is handed back; the redelivered change
// recomputes only them. Near the invocation's deadline the fan-out saves
// its cursor the same way and resumes there.
func (b *batch) fanout(ctx context.Context, c Change, projectID string) (int, error) {
	p := b.p
	ckKey := projectID + "#" + c.EventID
	st, resumed, err := p.loadFanout(ctx, ckKey)
	if err != nil {
		return 0, err
	}
	if resumed {
		p.logger().Info("fan-out resumes from checkpoint", "project", projectID, "eventId", c.EventID,
			"cursor", st.Cursor, "pagesDone", st.Done, "retry", len(st.Retry))
	}
	margin := cmp.Or(p.DeadlineMargin, 20*time.Second)
	pageSize := cmp.Or(p.PageSize, 500)
	var failed []broker.Member // members to retry on the next delivery
	var failures []error
	n := 0
	recompute := func(members []broker.Member) {
		for i, err := range b.apply(ctx, projectID, members, c.EventID) {
			if err != nil {
				failed = append(failed, members[i])
				failures = append(failures, fmt.Errorf("%s: %w", members[i].UserID, err))
			}
		}
		n += len(members)
	}
	// handBack saves what is left and fails the change, so that Lambda
	// delivers it again. If the save fails too, the next delivery repeats
	// work from the previous checkpoint: idempotent, only slower.
	handBack := func(reason error) (int, error) {
		next := fanoutState{Cursor: st.Cursor, Done: st.Done, Retry: append(failed, st.Retry...)}
		if len(next.Retry) > maxRetryMembers {
			p.logger().Warn("too many failed members to list; the fan-out will start over", "project", projectID, "eventId", c.EventID, "failed", len(next.Retry))
			next = fanoutState{}
		}
		if err := p.saveFanout(ctx, ckKey, next); err != nil {
			return n, errors.Join(reason, err)
		}
		return n, reason
	}

	// Members that failed in an earlier delivery come first, a page at a time.
	for len(st.Retry) > 0 {
		if p.nearDeadline(ctx, margin) {
			return handBack(fmt.Errorf("deadline near: fan-out saved with %d members to retry", len(st.Retry)+len(failed)))
		}
		k := min(pageSize, len(st.Retry))
		members := st.Retry[:k]
		st.Retry = st.Retry[k:]
		recompute(members)
	}
	// A fan-out of more than one page goes to the workers, page by page;
	// one that fits a page is done here, sooner than a queue would.
	queued := p.Pages != nil && st.Cursor != ""
	for !st.Done {
		if p.nearDeadline(ctx, margin) {
			return handBack(fmt.Errorf("deadline near: fan-out saved at %q after %d members", st.Cursor, n))
		}
		page, err := p.Index.ProjectMembers(ctx, projectID, st.Cursor, pageSize)
		if err != nil {
			return handBack(err)
		}
		queued = queued || p.Pages != nil && page.Next != ""
		if queued {
			if err := p.sendPage(ctx, Page{Project: projectID, EventID: c.EventID, Members: page.Members}, 0); err != nil {
				return handBack(err)
			}
			n += len(page.Members)
		} else {
			recompute(page.Members)
		}
		if page.Next == "" {
			st.Done = true
		} else {
			st.Cursor = page.Next
		}
	}
	if len(failed) > 0 {
		p.reportFailedMembers(projectID, c, failed, failures)
		return handBack(fmt.Errorf("%d of %d members to retry, first: %w", len(failed), n, failures[0]))
	}
	if resumed {
		if err := p.Checkpoints.DeleteCheckpoint(ctx, ckKey); err != nil {
			p.logger().Warn("delete fan-out checkpoint", "key", ckKey, "err", err)
		}
	}
	return n, nil
}

func (p *Projector) nearDeadline(ctx context.Context, margin time.Duration) bool {
	dl, ok := ctx.Deadline()
	return ok && dl.Sub(p.now()) < margin
}

// reportFailedMembers logs the members a fan-out could not finish. Members
// whose change is committed and only whose events wait are a warning; the
// others still hold what the change took away, until a redelivery (or, once
// Lambda's retries run out, an operator's rebuild after the dead-letter
// alarm) reaches them.
func (p *Projector) reportFailedMembers(projectID string, c Change, failed []broker.Member, failures []error) {
	const listed = 20
	var stuck, pending []string
	for i, m := range failed {
		if eventsPending(failures[i]) {
			pending = append(pending, m.UserID)
		} else {
			stuck = append(stuck, m.UserID)
		}
	}
	if len(stuck) > 0 {
		p.logger().Error("fan-out members not recomputed; the change is handed back for them alone",
			"project", projectID, "eventId", c.EventID, "sequenceNumber", c.SequenceNumber,
			"failed", len(stuck), "users", stuck[:min(len(stuck), listed)], "firstError", failures[0].Error())
	}
	if len(pending) > 0 {
		p.logger().Warn("fan-out members committed, their PolicyChanged events wait in their outboxes",
			"project", projectID, "eventId", c.EventID, "members", len(pending), "users", pending[:min(len(pending), listed)])
	}
}

// loadFanout reads a fan-out's checkpoint. One that does not decode is
// logged and ignored: starting over recomputes members again, which is
// idempotent.
func (p *Projector) loadFanout(ctx context.Context, key string) (fanoutState, bool, error) {
	raw, err := p.Checkpoints.LoadCheckpoint(ctx, key)
	if err != nil || raw == "" {
		return fanoutState{}, false, err
	}
	var st fanoutState
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		p.logger().Warn("fan-out checkpoint unreadable; starting over", "key", key, "err", err)
		return fanoutState{}, true, nil
	}
	return st, true, nil
}

func (p *Projector) saveFanout(ctx context.Context, key string, st fanoutState) error {
	raw, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return p.Checkpoints.SaveCheckpoint(ctx, key, string(raw), p.now().Add(48*time.Hour))
}

// plan says what a change means: whom it concerns, and whether it is
// rejected. A rejected record still names the user or project it concerns,
// so that an item turning invalid revokes what it granted.
type plan struct {
	ref    broker.Ref
	reject string
}

func (p *Projector) plan(c Change) plan {
	ref, err := broker.ParseRef(c.Keys.PK, c.Keys.SK)
	if c.Err != nil {
		return plan{ref: ref, reject: "malformed stream record: " + c.Err.Error()}
	}
	if err != nil {
		return plan{ref: ref, reject: broker.MessageOf(err)}
	}
	if ref.Kind == broker.Ignored || c.New == nil {
		return plan{ref: ref}
	}
	if _, err := p.Validate(*c.New); err != nil {
		return plan{ref: ref, reject: broker.MessageOf(err)}
	}
	return plan{ref: ref}
}

// Validate applies the rules of the membership table (docs/contract.md
// "Source records") to one item exactly as the projector does before it projects
// the item: its keys, its attributes, and, for a bucket record, whether one
// grant of its folder fits in a session policy. An invalid item gives an
// Invalid error whose safe message (broker.MessageOf) is the reason the
// projector reports in its ProjectionRejected event; an item of a key
// shape the broker does not own parses as broker.Ignored, without error.
// The operators' tools validate with it before they write.
func Validate(c policy.Compiler, it broker.SourceItem) (broker.ParsedItem, error) {
	parsed, err := it.Parse()
	if err != nil || parsed.Kind != broker.BucketRecord {
		return parsed, err
	}
	if !c.FitsAlone(parsed.Bucket.Bucket, parsed.Bucket.Prefix) {
		return parsed, broker.Errorf(broker.Invalid, "prefix", "prefix too long: one grant of it would not fit in a session policy")
	}
	return parsed, nil
}

// Validate is Validate with the projector's compiler.
func (p *Projector) Validate(it broker.SourceItem) (broker.ParsedItem, error) {
	return Validate(p.Compiler, it)
}

func (p *Projector) rejection(c Change, reason string) broker.AuditEvent {
	return broker.AuditEvent{
		Source: broker.SourceProjector, DetailType: broker.DetailProjectionRejected, Time: p.now(),
		Detail: broker.ProjectionRejectedDetail{
			SchemaVersion: broker.AuditSchemaVersion, PK: c.Keys.PK, SK: c.Keys.SK, Reason: reason,
			EventID: c.EventID, EventName: c.EventName, SequenceNumber: c.SequenceNumber,
		},
	}
}

// sortedKeys returns a map's keys in order, for deterministic calls.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
