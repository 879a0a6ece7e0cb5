package projector

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/credbroker/credbroker/internal/auditqueue"
	"github.com/credbroker/credbroker/internal/broker"
)

// The delta path: a bucket change reaches a member by applying the
// project's current places to the member's compiled item, instead of
// re-reading every project of the member. Per member it costs a claim and,
// when the item changes, a commit; per chunk of up to chunkSize members it
// costs one batch read of their memberships of the project, one read of
// the project's buckets and one transaction that clears the outboxes whose
// events were sent.
//
// It is a recompute like any other as far as the guarantees go: the claim
// is taken before anything is read (the membership, the buckets), and the
// commit holds only while no newer claim exists, so the stale-write rule
// is the full recompute's. The other projects' places come from the
// claimed item, which is the newest committed one: anything committed
// before the claim is in it, and a recompute that claims after voids this
// one. Where the item does not say enough to apply the change exactly as
// a full recompute would, the member takes the full recompute under the
// same claim (fallback).

// chunkSize is the members that share one membership read, one bucket
// read and one outbox transaction (DynamoDB's limit for both is 100); the
// members joining the project in their item share a batch index write per
// 25.
const chunkSize = 100

// deltaCounts are the recomputes the delta path did, for the Outcome.
type deltaCounts struct {
	recomputed, changed, fallbacks atomic.Int64
}

// member is one member's progress through a chunk.
type member struct {
	broker.Member
	claim   broker.Claim
	claimed bool
	entered bool                         // its index entry was written under this claim
	outbox  []broker.PolicyChangedDetail // to send after the commit
	err     error
}

// applyMembers brings every member's item in line with the project's
// buckets, at most cap(sem) DynamoDB calls in flight (a full recompute of
// a member that falls back holds one slot for its calls). It returns each
// member's error, nil for those that succeeded.
func (p *Projector) applyMembers(ctx context.Context, sem chan struct{}, project string, members []broker.Member, causes []string, counts *deltaCounts) []error {
	ms := make([]member, 0, len(members))
	seen := map[string]bool{}
	for _, m := range members {
		if !seen[m.UserID] { // a batch read refuses duplicate keys
			seen[m.UserID] = true
			ms = append(ms, member{Member: m})
		}
	}
	var wg sync.WaitGroup
	for chunk := range slices.Chunk(ms, chunkSize) {
		wg.Go(func() { p.applyChunk(ctx, sem, project, chunk, causes, counts) })
	}
	wg.Wait()
	errs := make([]error, len(members))
	byUser := make(map[string]error, len(ms))
	for _, m := range ms {
		byUser[m.UserID] = m.err
	}
	for i, m := range members {
		errs[i] = byUser[m.UserID]
	}
	return errs
}

// slot runs fn holding one of sem's slots.
func slot(sem chan struct{}, fn func()) {
	sem <- struct{}{}
	defer func() { <-sem }()
	fn()
}

// each runs fn for every member in parallel, each call holding a slot.
func each(sem chan struct{}, ms []member, fn func(m *member)) {
	var wg sync.WaitGroup
	for i := range ms {
		wg.Go(func() { slot(sem, func() { fn(&ms[i]) }) })
	}
	wg.Wait()
}

func (p *Projector) applyChunk(ctx context.Context, sem chan struct{}, project string, ms []member, causes []string, counts *deltaCounts) {
	// Claims first: everything read below is read under them.
	each(sem, ms, func(m *member) {
		m.claim, m.err = p.Store.Claim(ctx, m.UserID, p.now())
		m.claimed = m.err == nil
	})
	var users []string
	for _, m := range ms {
		if m.claimed {
			users = append(users, m.UserID)
		}
	}
	if len(users) == 0 {
		return
	}
	var memberships map[string]broker.SourceItem
	var buckets []broker.SourceItem
	var err error
	slot(sem, func() { memberships, err = p.Source.ProjectMemberships(ctx, project, users) })
	if err == nil {
		err = p.enter(ctx, sem, project, ms, memberships)
	}
	if err == nil {
		slot(sem, func() { buckets, err = p.Source.ProjectBuckets(ctx, project) })
	}
	if err != nil {
		for i := range ms {
			if ms[i].claimed {
				ms[i].err = err
			}
		}
		return
	}
	each(sem, ms, func(m *member) {
		if !m.claimed {
			return
		}
		var it *broker.SourceItem
		if item, ok := memberships[m.UserID]; ok {
			it = &item
		}
		changed, err := p.applyOne(ctx, m, project, it, buckets, causes, counts)
		m.err = err
		counts.recomputed.Add(1)
		if changed {
			counts.changed.Add(1)
		}
	})
	p.sendChunk(ctx, sem, ms)
}

// applyOne applies the change to one claimed member, or, when the delta
// cannot be applied safely, recomputes the member in full under the same
// claim. Outboxes to send after the commit are left in m.outbox.
func (p *Projector) applyOne(ctx context.Context, m *member, project string, membership *broker.SourceItem, buckets []broker.SourceItem, causes []string, counts *deltaCounts) (bool, error) {
	hint := Hint{Prune: map[string]int64{project: m.Token}}
	next, ok := p.delta(m.claim, project, membership, buckets, p.now(), m.entered)
	if !ok {
		counts.fallbacks.Add(1)
		changed, err := p.recomputeClaimed(ctx, m.claim, hint, causes)
		if broker.KindOf(err) == broker.Conflict {
			return p.Recompute(ctx, m.UserID, hint, causes)
		}
		return changed, err
	}
	changed, outbox, err := p.write(ctx, m.claim, next, causes)
	if broker.KindOf(err) == broker.Conflict {
		// A newer claim: whoever holds it read after this one did. Start
		// over in full, as a recompute that loses its claim does.
		counts.fallbacks.Add(1)
		return p.Recompute(ctx, m.UserID, hint, causes)
	}
	if err != nil {
		return false, err
	}
	if err := p.armExpiry(ctx, m.UserID, next); err != nil {
		return changed, err
	}
	m.outbox = outbox
	return changed, nil
}

// liveMembership is the member's membership of the project read under
// the claim, if it is valid and grants something at now.
func liveMembership(claim broker.Claim, project string, item *broker.SourceItem, now time.Time) (broker.Membership, bool) {
	if item == nil {
		return broker.Membership{}, false
	}
	parsed, err := item.Parse()
	if err != nil || parsed.Kind != broker.MembershipRecord {
		return broker.Membership{}, false
	}
	m := parsed.Membership
	return m, m.UserID == claim.UserID && m.ProjectID == project && m.LiveAt(now)
}

// enter writes, in batches, the project's index entry of each claimed
// member whose item does not hold the project yet and whose membership is
// live, with the claim's ticket as its token, before the project's buckets
// are read: the rule a full recompute follows, so that a bucket change
// committed after that read finds the member, and a removal of the entry
// read before this claim can no longer take it away.
func (p *Projector) enter(ctx context.Context, sem chan struct{}, project string, ms []member, memberships map[string]broker.SourceItem) error {
	var entries []broker.Member
	var who []*member
	for i := range ms {
		m := &ms[i]
		if !m.claimed || m.claim.Corrupt != "" || len(m.claim.Prev.ByProject[project]) > 0 {
			continue
		}
		item, ok := memberships[m.UserID]
		if _, live := liveMembership(m.claim, project, &item, p.now()); ok && live {
			entries = append(entries, broker.Member{UserID: m.UserID, Token: m.claim.Ticket})
			who = append(who, m)
		}
	}
	if len(entries) == 0 {
		return nil
	}
	var err error
	slot(sem, func() { err = p.Index.PutProjectMembers(ctx, project, entries) })
	for _, m := range who {
		m.entered = err == nil
	}
	return err
}

// delta returns the item the claimed one becomes when the project's places
// are those its bucket items give now, or false when the claimed item does
// not say enough for the result to equal a full recompute's:
//   - the item is unreadable;
//   - the membership is gone, invalid or past its expiry, or its access
//     or expiry differ from the item's (a membership change on its way);
//   - the item does not hold the project and its index entry was not
//     written under this claim (entered): a project joins an item only
//     after its entry, as in a full recompute;
//   - another project's expiry has passed (a full recompute drops it).
func (p *Projector) delta(claim broker.Claim, project string, membership *broker.SourceItem, buckets []broker.SourceItem, now time.Time, entered bool) (broker.UserPolicy, bool) {
	prev := claim.Prev
	held := prev.ByProject[project]
	m, live := liveMembership(claim, project, membership, now)
	if claim.Corrupt != "" || !live || len(held) == 0 && !entered {
		return broker.UserPolicy{}, false
	}
	for _, pl := range held {
		if pl.Access != m.Access {
			return broker.UserPolicy{}, false
		}
	}
	expiry := m.ExpiresAt
	if !expiry.IsZero() {
		expiry = expiry.UTC().Truncate(time.Second)
	}
	if len(held) > 0 && !prev.Expires[project].Equal(expiry) {
		return broker.UserPolicy{}, false
	}
	for _, e := range prev.Expires {
		if !e.After(now) {
			return broker.UserPolicy{}, false
		}
	}
	byProject := maps.Clone(prev.ByProject)
	if byProject == nil {
		byProject = map[string][]broker.Place{}
	}
	byProject[project] = placesOf(project, buckets, m.Access)
	expires := maps.Clone(prev.Expires)
	if expires == nil {
		expires = map[string]time.Time{}
	}
	if !m.ExpiresAt.IsZero() {
		expires[project] = m.ExpiresAt
	}
	next, err := p.compilePlaces(claim.UserID, byProject, expires)
	if err != nil {
		return broker.UserPolicy{}, false
	}
	return next, true
}

// sendChunk sends the events the chunk's commits left in their outboxes,
// in one delivery, then clears those outboxes in one transaction. A member
// whose events the bus did not take fails with errEventsPending, as a
// full recompute's emit does: its item keeps them for the next claim.
func (p *Projector) sendChunk(ctx context.Context, sem chan struct{}, ms []member) {
	var evs []broker.AuditEvent
	for _, m := range ms {
		for _, d := range m.outbox {
			evs = append(evs, broker.AuditEvent{Source: broker.SourceProjector, DetailType: broker.DetailPolicyChanged, Time: d.ChangedAt, Detail: d})
		}
	}
	if len(evs) == 0 {
		return
	}
	retry, err := auditqueue.Deliver(ctx, p.Auditor, p.logger(), evs...)
	pending := map[string]bool{}
	for _, ev := range retry {
		if d, ok := ev.Detail.(broker.PolicyChangedDetail); ok {
			pending[d.ChangeID] = true
		}
	}
	var clear []broker.Claim
	for i := range ms {
		m := &ms[i]
		if len(m.outbox) == 0 {
			continue
		}
		if slices.ContainsFunc(m.outbox, func(d broker.PolicyChangedDetail) bool { return pending[d.ChangeID] }) {
			m.err = broker.Wrap(broker.Transient, "recompute", fmt.Errorf("%w: %w", errEventsPending, err))
			continue
		}
		clear = append(clear, m.claim)
	}
	if len(clear) == 0 {
		return
	}
	// A failed clear only means the next claimer sends the events again;
	// consumers dedupe on changeId.
	slot(sem, func() { err = p.Store.ClearOutboxes(ctx, clear) })
	if err != nil {
		p.logger().Warn("clear outboxes", "users", len(clear), "err", err)
	}
}
