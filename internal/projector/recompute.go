package projector

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/credbroker/credbroker/internal/backoff"
	"github.com/credbroker/credbroker/internal/broker"
)

// Hint tells a recompute which member-index entries to maintain besides
// computing the policy.
type Hint struct {
	// Touched projects had a membership change: their entry is written if
	// the user is a member and removed (conditionally) if not.
	Touched map[string]bool
	// Prune holds entries read from a project's index during a fan-out,
	// with their tokens: each is removed if the user is no longer a member.
	Prune map[string]int64
	// Stamp asks a recompute that changes nothing to stamp the item as
	// checked anyway (a commit always does): rebuild tells the users it
	// reached from those it did not by these stamps.
	Stamp bool
}

// errEventsPending marks a recompute that committed its change but could
// not send the PolicyChanged events of the item's outbox: the policy is
// current, and only the delivery of the events waits for another attempt.
var errEventsPending = errors.New("policy committed; PolicyChanged events wait in the outbox")

// eventsPending reports whether err is only a delivery of events that
// failed after the policy was committed.
func eventsPending(err error) bool { return errors.Is(err, errEventsPending) }

// Recompute rebuilds one user's policy item from the membership table and
// reports whether it changed. Losing a claim race is retried a few times;
// after that the Conflict error is returned and the change redelivered.
func (p *Projector) Recompute(ctx context.Context, userID string, h Hint, causes []string) (bool, error) {
	retries := cmp.Or(p.ConflictRetries, 5)
	for attempt := 0; ; attempt++ {
		start := time.Now()
		changed, err := p.recomputeOnce(ctx, userID, h, causes)
		if broker.KindOf(err) != broker.Conflict || attempt >= retries {
			return changed, err
		}
		p.logger().Debug("recompute lost a claim race, retrying", "userId", userID, "attempt", attempt+1)
		// Jittered backoff on the scale of a recompute, so that two
		// recomputes of one user (two shards, or a rebuild) stop voiding
		// each other's claims: a shorter wait only collides again.
		base := max(5*time.Millisecond, time.Since(start))
		if err := backoff.Sleep(ctx, backoff.Jitter(attempt+1, base, 5*time.Second)); err != nil {
			return changed, broker.Wrap(broker.Transient, "recompute", err)
		}
	}
}

func (p *Projector) recomputeOnce(ctx context.Context, userID string, h Hint, causes []string) (bool, error) {
	claim, err := p.Store.Claim(ctx, userID, p.now())
	if err != nil {
		return false, err
	}
	return p.recomputeClaimed(ctx, claim, h, causes)
}

// recomputeClaimed is a recompute under a claim already taken: it reads
// the user's memberships and their projects' buckets and commits.
func (p *Projector) recomputeClaimed(ctx context.Context, claim broker.Claim, h Hint, causes []string) (bool, error) {
	userID := claim.UserID
	if claim.Corrupt != "" {
		p.logger().Error("policy item unreadable; it grants nothing until this recompute replaces it (its pending events are lost)", "userId", userID, "reason", claim.Corrupt)
	}
	var err error
	// Tokens are read before the memberships, so that a removal below can
	// only delete an entry that no recompute has rewritten since.
	touched := sortedKeys(h.Touched)
	tokens := map[string]int64{}
	if len(touched) > 0 {
		if tokens, err = p.Index.MemberTokens(ctx, userID, touched); err != nil {
			return false, err
		}
	}
	memberships, err := p.readMemberships(ctx, userID, p.now())
	if err != nil {
		return false, err
	}
	// Every project whose buckets this recompute reads gets a fresh index
	// entry first. A bucket change committed after the bucket reads below
	// then finds this user in the index; one committed before them is in
	// what they read. The fresh token voids any removal racing with it.
	if len(memberships) > 0 {
		if err := p.Index.PutMembers(ctx, userID, sortedKeys(memberships), claim.Ticket); err != nil {
			return false, err
		}
	}
	next, err := p.compile(ctx, userID, memberships)
	if err != nil {
		return false, err
	}
	changed, outbox, err := p.write(ctx, claim, next, causes)
	if err != nil {
		return false, err
	}
	// Armed on every recompute, changed or not: a failure here hands the
	// change back, and its redelivery, which changes nothing, arms again.
	if err := p.armExpiry(ctx, userID, next); err != nil {
		return changed, err
	}
	// Entries of projects the user has left go only now that the item
	// without them is the newest: until then a fan-out must still find the
	// user, whose current item may hold those projects' grants.
	if err := p.pruneIndex(ctx, userID, touched, tokens, h.Prune, memberships); err != nil {
		return changed, err
	}
	if !changed && h.Stamp {
		if err := p.Store.Touch(ctx, claim, p.now()); err != nil && broker.KindOf(err) != broker.Conflict {
			return changed, err
		}
	}
	if err := p.emit(ctx, claim, outbox); err != nil {
		return changed, broker.Wrap(broker.Transient, "recompute", fmt.Errorf("%w: %w", errEventsPending, err))
	}
	return changed, nil
}

// armExpiry arms the expiry timer with the earliest expiry in the user's
// new item, if any. The item holds only memberships that were live when
// they were read, so an expiry already past is one that passed during this
// recompute: it is armed too (the timer fires at once), or nothing would
// take the grant out of the item.
func (p *Projector) armExpiry(ctx context.Context, userID string, next broker.UserPolicy) error {
	if p.Expiries == nil {
		return nil
	}
	at := next.NextExpiry(time.Time{})
	if at.IsZero() {
		return nil
	}
	if err := p.Expiries.Arm(ctx, userID, at); err != nil {
		return broker.Wrap(broker.Transient, "arm the expiry timer", err)
	}
	return nil
}

// maxEarly bounds how long Expire waits for its expiry on the projector's
// clock: a timer fires at its instant by its own clock, which may run a
// little ahead of this one. One further off was armed for another instant.
const maxEarly = 10 * time.Second

// Expire is what a timer armed by a recompute runs when the expiry at of
// one of the user's memberships comes: a recompute with the expiry as its
// cause, once the projector's clock has passed at (the membership grants
// until then, so a recompute before would change nothing). Duplicate and
// stale firings recompute to the same item and write nothing.
func (p *Projector) Expire(ctx context.Context, userID string, at time.Time) (bool, error) {
	if err := broker.ValidateUserID(userID); err != nil {
		return false, err
	}
	if wait := at.Sub(p.now()); wait > maxEarly {
		return false, broker.Errorf(broker.Invalid, "expire", "expiry %s is %s ahead of the projector's clock", at.UTC().Format(time.RFC3339), wait.Round(time.Second))
	} else if wait > 0 {
		if err := backoff.Sleep(ctx, wait+time.Millisecond); err != nil {
			return false, broker.Wrap(broker.Transient, "expire", err)
		}
	}
	return p.Recompute(ctx, userID, Hint{}, []string{broker.ExpiryCause(at)})
}

// Compute reads the user's memberships and buckets and compiles them,
// writing nothing: the policy item the user should have now. Verify
// compares the table with it.
func (p *Projector) Compute(ctx context.Context, userID string) (broker.UserPolicy, error) {
	return p.ComputeAt(ctx, userID, p.now())
}

// ComputeAt is Compute with the memberships that were live at an instant
// (their expiries judged at it; the records as they are now): verify asks
// what the item held just before an expiry whose recompute is pending.
func (p *Projector) ComputeAt(ctx context.Context, userID string, at time.Time) (broker.UserPolicy, error) {
	memberships, err := p.readMemberships(ctx, userID, at)
	if err != nil {
		return broker.UserPolicy{}, err
	}
	return p.compile(ctx, userID, memberships)
}

// readMemberships returns the user's valid memberships by project that
// still grant something at now (the projector's clock): one whose expiry
// has passed counts as none, for the index as for the grants.
func (p *Projector) readMemberships(ctx context.Context, userID string, now time.Time) (map[string]broker.Membership, error) {
	items, err := p.Source.UserMemberships(ctx, userID)
	if err != nil {
		return nil, err
	}
	memberships := map[string]broker.Membership{}
	for _, it := range items {
		parsed, err := it.Parse()
		if err != nil || parsed.Kind != broker.MembershipRecord || parsed.Membership.UserID != userID {
			continue // rejected when its own change was projected
		}
		if parsed.Membership.LiveAt(now) {
			memberships[parsed.Membership.ProjectID] = parsed.Membership
		}
	}
	return memberships, nil
}

// compile reads the buckets of the user's projects and compiles the policy.
func (p *Projector) compile(ctx context.Context, userID string, memberships map[string]broker.Membership) (broker.UserPolicy, error) {
	byProject, err := p.readBuckets(ctx, memberships)
	if err != nil {
		return broker.UserPolicy{}, err
	}
	expires := map[string]time.Time{}
	for project, m := range memberships {
		if !m.ExpiresAt.IsZero() {
			expires[project] = m.ExpiresAt
		}
	}
	return p.compilePlaces(userID, byProject, expires)
}

// compilePlaces compiles the places and expiries of the user's projects.
func (p *Projector) compilePlaces(userID string, byProject map[string][]broker.Place, expires map[string]time.Time) (broker.UserPolicy, error) {
	res, err := p.Compiler.CompileBounded(byProject, expires)
	if err != nil {
		return broker.UserPolicy{}, err
	}
	for _, r := range res.Rejected {
		p.logger().Warn("grant not compiled", "userId", userID, "project", r.Project, "bucket", r.Place.Bucket, "reason", r.Reason)
	}
	return broker.UserPolicy{UserID: userID, Version: res.Version, Grants: res.Grants, Sets: res.Sets, ByProject: res.ByProject, Expires: res.Expires, UpdatedAt: p.now()}, nil
}

// pruneIndex removes, each on the token read before the memberships were,
// the entries of touched or pruned projects the user is not a member of.
func (p *Projector) pruneIndex(ctx context.Context, userID string, touched []string, tokens, prune map[string]int64, memberships map[string]broker.Membership) error {
	remove := map[string]int64{}
	for _, project := range touched {
		if tok, ok := tokens[project]; ok {
			remove[project] = tok
		}
	}
	maps.Copy(remove, prune)
	for _, project := range sortedKeys(remove) {
		if _, member := memberships[project]; member {
			continue
		}
		if _, err := p.Index.RemoveMember(ctx, project, userID, remove[project]); err != nil {
			return err
		}
	}
	return nil
}

// readBuckets reads each project's buckets, a few projects at a time.
func (p *Projector) readBuckets(ctx context.Context, memberships map[string]broker.Membership) (map[string][]broker.Place, error) {
	var mu sync.Mutex
	out := make(map[string][]broker.Place, len(memberships))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for project, m := range memberships {
		access := m.Access
		g.Go(func() error {
			items, err := p.Source.ProjectBuckets(gctx, project)
			if err != nil {
				return err
			}
			places := placesOf(project, items, access)
			mu.Lock()
			out[project] = places
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// placesOf returns the places a project's bucket items give at access.
func placesOf(project string, items []broker.SourceItem, access broker.Access) []broker.Place {
	var places []broker.Place
	for _, it := range items {
		parsed, err := it.Parse()
		if err != nil || parsed.Kind != broker.BucketRecord || parsed.Bucket.ProjectID != project {
			continue // rejected when its own change was projected
		}
		places = append(places, broker.Place{Bucket: parsed.Bucket.Bucket, Prefix: parsed.Bucket.Prefix, Access: access})
	}
	return places
}

// write commits the new policy if it differs from what the claim saw, and
// returns the item's outbox. A PolicyChanged event joins the outbox in the
// same write as the change, so the event survives a crash or a bus outage:
// whoever next claims the item sends it.
func (p *Projector) write(ctx context.Context, claim broker.Claim, next broker.UserPolicy, causes []string) (bool, []broker.PolicyChangedDetail, error) {
	prev := claim.Prev
	if next.SameContent(prev) {
		return false, claim.Outbox, nil
	}
	var started time.Time
	next.RevokedBefore, started = p.cutoff(claim, next)
	ev, hasEvent := p.changeEvent(claim, next, !started.IsZero(), causes)
	outbox := claim.Outbox
	if hasEvent {
		outbox = p.boundOutbox(claim.UserID, append(slices.Clip(outbox), shrinkEvent(ev, maxEventBytes)))
	}
	err := p.commit(ctx, claim, next, outbox, started)
	if errors.Is(err, broker.ErrItemTooLarge) {
		// DynamoDB cannot store the item. Keeping the old item could
		// keep revoked grants alive, so the user gets nothing until an
		// operator splits the grants; the event says so with counts only.
		p.logger().Error("policy item rejected by DynamoDB; granting nothing", "userId", claim.UserID, "grants", len(next.Grants), "err", err)
		empty, cerr := p.Compiler.Compile(nil)
		if cerr != nil {
			return false, nil, cerr
		}
		next = broker.UserPolicy{UserID: claim.UserID, Version: empty.Version, UpdatedAt: next.UpdatedAt}
		next.RevokedBefore, started = p.cutoff(claim, next)
		if next.Version == prev.Version {
			return false, claim.Outbox, nil
		}
		ev, hasEvent = p.changeEvent(claim, next, !started.IsZero(), causes)
		ev = shrinkEvent(ev, 0)
		outbox = claim.Outbox
		if hasEvent {
			outbox = p.boundOutbox(claim.UserID, append(slices.Clip(outbox), ev))
		}
		if err = p.commit(ctx, claim, next, outbox, started); errors.Is(err, broker.ErrItemTooLarge) {
			// Only the outbox can be too large now; the revocation matters more.
			p.logger().Error("dropping the unsent PolicyChanged events of an oversized item", "userId", claim.UserID, "events", len(claim.Outbox))
			outbox = nil
			if hasEvent {
				outbox = []broker.PolicyChangedDetail{ev}
			}
			err = p.commit(ctx, claim, next, outbox, started)
		}
	}
	if err != nil {
		return false, nil, err
	}
	return true, outbox, nil
}

// commit writes next. When next narrows the user's grants (started is not
// zero), its cutoff (new, or an earlier one of the same second or an
// operator's later one) counts on the write landing within
// broker.CommitWindow of started (docs/security.md "The cutoff"), so the write gets
// that deadline; one that misses it fails as transient and the record's
// retry computes a new cutoff.
func (p *Projector) commit(ctx context.Context, claim broker.Claim, next broker.UserPolicy, outbox []broker.PolicyChangedDetail, started time.Time) error {
	if started.IsZero() {
		return p.Store.Commit(ctx, claim, next, outbox)
	}
	cctx, cancel := context.WithDeadline(ctx, started.Add(broker.CommitWindow))
	defer cancel()
	err := p.Store.Commit(cctx, claim, next, outbox)
	if err != nil && cctx.Err() != nil && ctx.Err() == nil {
		return broker.Wrap(broker.Transient, "commit a narrowing within its window", err)
	}
	return err
}
