package projector

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/credbroker/credbroker/internal/auditqueue"
	"github.com/credbroker/credbroker/internal/broker"
)

// What a commit tells the audit trail: the PolicyChanged events of its
// outbox (their cutoffs, diffs and size bounds), sent after the commit and
// then cleared.

// emit delivers the outbox after the commit, then clears it.
func (p *Projector) emit(ctx context.Context, claim broker.Claim, outbox []broker.PolicyChangedDetail) error {
	if len(outbox) == 0 {
		return nil
	}
	events := make([]broker.AuditEvent, len(outbox))
	for i, d := range outbox {
		events[i] = broker.AuditEvent{Source: broker.SourceProjector, DetailType: broker.DetailPolicyChanged, Time: d.ChangedAt, Detail: d}
	}
	if err := p.deliver(ctx, events); err != nil {
		return err
	}
	// Conflict means a newer claim exists; its holder saw this outbox and
	// sends it again. Consumers dedupe on changeId.
	if err := p.Store.ClearOutbox(ctx, claim); err != nil && broker.KindOf(err) != broker.Conflict {
		p.logger().Warn("clear outbox", "userId", claim.UserID, "err", err)
	}
	return nil
}

// deliver emits events; one the bus refuses for good is dropped as a dead
// letter (auditqueue.Deliver), anything else that fails is returned.
func (p *Projector) deliver(ctx context.Context, events []broker.AuditEvent) error {
	_, err := auditqueue.Deliver(ctx, p.Auditor, p.logger(), events...)
	return err
}

// cutoff returns the revocation cutoff next carries, and, when next narrows
// the claimed item's grants (a grant that nothing in next covers, or
// anything at all when the item could not be read), the machine's clock
// reading the commit window runs from; zero when it does not narrow. A
// narrowing gives the user a new cutoff, RevokeBefore(now) or just after
// the previous one: the sessions minted from the old item stop working,
// and those the endpoint mints from the new one carry the new cutoff's tag,
// which the deny spares (docs/security.md "How").
//
// A grant of the claimed item whose expiry has passed is no loss: the
// credentials issued with it stopped reaching it at the expiry (the
// session policy's aws:CurrentTime bound), so reaching an expiry revokes
// nothing, while giving a grant an expiry or an earlier one does.
func (p *Projector) cutoff(claim broker.Claim, next broker.UserPolicy) (revokedBefore, started time.Time) {
	prev := claim.Prev.RevokedBefore
	if claim.Corrupt == "" && !broker.Narrows(broker.LiveGrants(claim.Prev.Grants, p.now()), next.Grants) {
		return prev, time.Time{}
	}
	started = time.Now()
	want := broker.RevokeBefore(p.now())
	if claim.Corrupt != "" {
		// The item's cutoff is lost with the rest of it, and the deny
		// list may hold a later one, set by a projector whose clock is
		// ahead of this one's by up to the margin: a cutoff at or before
		// it would leave the sessions tagged with it alive.
		want = want.Add(broker.ClockMargin + time.Millisecond)
	}
	return broker.NextCutoff(prev, want), started
}

// changeEvent describes the change from the claimed item to next. A user
// seen for the first time with nothing granted is not a change worth an
// event; a user whose item was unreadable is, whatever it becomes.
func (p *Projector) changeEvent(claim broker.Claim, next broker.UserPolicy, narrowing bool, causes []string) (broker.PolicyChangedDetail, bool) {
	prev := claim.Prev
	if prev.Version == "" && len(next.Grants) == 0 && claim.Corrupt == "" {
		return broker.PolicyChangedDetail{}, false
	}
	added, removed := diff(prev.Grants, next.Grants)
	d := broker.PolicyChangedDetail{
		SchemaVersion:      broker.AuditSchemaVersion,
		ChangeID:           fmt.Sprintf("%s/%s/%d", claim.UserID, next.Version, claim.Ticket),
		UserID:             claim.UserID,
		PolicyVersion:      next.Version,
		PreviousVersion:    prev.Version,
		Added:              added,
		Removed:            removed,
		AddedCount:         len(added),
		RemovedCount:       len(removed),
		Sets:               len(next.Sets),
		Causes:             causes,
		ChangedAt:          next.UpdatedAt,
		PreviousUnreadable: claim.Corrupt != "",
		RevokeBefore:       narrowingCutoff(next, narrowing),
	}
	if d.RevokeBefore != nil && claim.Corrupt == "" {
		// The claim read the item this commit replaces: the sessions
		// minted from it carry its cutoff's tag, and no session minted
		// from next does (docs/security.md "How").
		d.RevokedCutoffTags = []string{broker.CutoffTag(claim.UserID, prev.RevokedBefore)}
		if !prev.RevokedBefore.IsZero() {
			t := prev.RevokedBefore.UTC()
			d.PreviousRevokeBefore = &t
		}
	}
	return d, true
}

// Bounds of the outbox kept in a policy item while the bus is unreachable:
// the item, policy document included, must stay under DynamoDB's 400 KB.
const (
	maxEventBytes  = 32 << 10
	maxOutboxBytes = 96 << 10
)

// boundOutbox keeps the newest events within MaxOutbox events and
// maxOutboxBytes; the dropped ones are logged as errors.
func (p *Projector) boundOutbox(userID string, outbox []broker.PolicyChangedDetail) []broker.PolicyChangedDetail {
	limit := cmp.Or(p.MaxOutbox, 50)
	total := 0
	keep := len(outbox)
	for keep > 0 && len(outbox)-keep < limit {
		n := eventBytes(outbox[keep-1])
		if total+n > maxOutboxBytes && keep < len(outbox) {
			break
		}
		total += n
		keep--
	}
	var dropped []broker.PolicyChangedDetail
	for _, d := range outbox[:keep] {
		p.logger().Error("audit bus unreachable too long: PolicyChanged dropped from outbox",
			"userId", userID, "changeId", d.ChangeID, "policyVersion", d.PolicyVersion, "added", d.AddedCount, "removed", d.RemovedCount)
		if d.RevokeBefore != nil {
			dropped = append(dropped, d)
		}
	}
	kept := slices.Clone(outbox[keep:])
	// A dropped narrowing must still reach the revoker: the newest event
	// kept carries its cutoff (the item's cutoff is at least as late) and
	// the tags it revoked.
	if len(dropped) > 0 {
		kept[len(kept)-1] = carryNarrowings(kept[len(kept)-1], dropped)
	}
	return kept
}

// carryNarrowings makes d revoke what the narrowings dropped revoked too:
// the latest cutoff, every tag, and the earliest previous cutoff. Should
// any of them not know its previous cutoff, d does not either: the revoker
// then revokes every session of the user issued before the cutoff. d's
// lists no longer say all that the revocation took away, so d is marked
// truncated: should the deny list overflow, the revoker's fallback for it
// is everything, not d's removed grants alone.
func carryNarrowings(d broker.PolicyChangedDetail, dropped []broker.PolicyChangedDetail) broker.PolicyChangedDetail {
	d.Truncated = true
	known := d.RevokeBefore == nil || len(d.RevokedCutoffTags) > 0
	tags := slices.Clone(d.RevokedCutoffTags)
	previous, none := d.PreviousRevokeBefore, d.RevokeBefore != nil && d.PreviousRevokeBefore == nil
	for _, n := range dropped {
		if d.RevokeBefore == nil || d.RevokeBefore.Before(*n.RevokeBefore) {
			d.RevokeBefore = n.RevokeBefore
		}
		known = known && len(n.RevokedCutoffTags) > 0
		tags = append(tags, n.RevokedCutoffTags...)
		switch {
		case n.PreviousRevokeBefore == nil:
			none = true
		case previous == nil || n.PreviousRevokeBefore.Before(*previous):
			previous = n.PreviousRevokeBefore
		}
	}
	d.RevokedCutoffTags, d.PreviousRevokeBefore = nil, nil
	if known {
		slices.Sort(tags)
		d.RevokedCutoffTags = slices.Compact(tags)
		if !none {
			d.PreviousRevokeBefore = previous
		}
	}
	return d
}

// shrinkEvent cuts an event's lists (the longest first) until its JSON is
// at most max bytes, keeping the counts and setting Truncated.
func shrinkEvent(d broker.PolicyChangedDetail, max int) broker.PolicyChangedDetail {
	for eventBytes(d) > max && (len(d.Added) > 0 || len(d.Removed) > 0 || len(d.Causes) > 1) {
		d.Truncated = true
		switch {
		case len(d.Added) >= len(d.Removed) && len(d.Added) > 0:
			d.Added = d.Added[:len(d.Added)/2]
		case len(d.Removed) > 0:
			d.Removed = d.Removed[:len(d.Removed)/2]
		default:
			d.Causes = d.Causes[:len(d.Causes)/2]
		}
	}
	return d
}

func eventBytes(d broker.PolicyChangedDetail) int {
	b, _ := json.Marshal(d)
	return len(b)
}

// diff returns the grants of next whose place and expiry are not in prev,
// and the reverse: a grant whose expiry changed is removed with the old
// one and added with the new.
func diff(prev, next []broker.Grant) (added, removed []broker.Grant) {
	type key struct {
		broker.Place
		expiry int64 // Unix seconds; 0 for none
	}
	keyOf := func(g broker.Grant) key {
		if g.ExpiresAt.IsZero() {
			return key{Place: g.Place()}
		}
		return key{g.Place(), g.ExpiresAt.Unix()}
	}
	in := func(gs []broker.Grant) map[key]bool {
		m := make(map[key]bool, len(gs))
		for _, g := range gs {
			m[keyOf(g)] = true
		}
		return m
	}
	old, cur := in(prev), in(next)
	added, removed = []broker.Grant{}, []broker.Grant{}
	for _, g := range next {
		if !old[keyOf(g)] {
			added = append(added, g)
		}
	}
	for _, g := range prev {
		if !cur[keyOf(g)] {
			removed = append(removed, g)
		}
	}
	return added, removed
}

// narrowingCutoff is the revokeBefore of a change's event: next's cutoff
// when the change narrows, nil otherwise.
func narrowingCutoff(next broker.UserPolicy, narrows bool) *time.Time {
	if !narrows || next.RevokedBefore.IsZero() {
		return nil
	}
	t := next.RevokedBefore.UTC()
	return &t
}
