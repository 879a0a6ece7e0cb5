package revoke

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/credbroker/credbroker/internal/backoff"
	"github.com/credbroker/credbroker/internal/broker"
)

// Store keeps the deny list durably, with optimistic concurrency.
type Store interface {
	// LoadDenyList reads the list (the zero List when there is none).
	LoadDenyList(ctx context.Context) (List, error)
	// SaveDenyList writes next if the stored list still has version prev;
	// it returns a Conflict error otherwise.
	SaveDenyList(ctx context.Context, prev int64, next List) error
}

// Cutoffs keeps each user's cutoff in the user's policy item. The endpoint
// tags the sessions it mints with the cutoff it read (broker.CutoffTag) and
// serves no cached credentials minted under another.
type Cutoffs interface {
	// AdvanceCutoff gives the user a new cutoff, want or just after the
	// current one (broker.NextCutoff), and returns it.
	AdvanceCutoff(ctx context.Context, userID string, want time.Time) (time.Time, error)
}

// ErrTooLarge is in the chain of a Role.Apply error when IAM refused the
// policy as too large: the budget was reckoned wrong.
var ErrTooLarge = errors.New("revocation policy too large for the role")

// Role is the base role's revocation policy.
type Role interface {
	// Budget is how many characters the revocation policy may take: IAM's
	// limit for all inline policies of the role, less the role's other
	// policies and a margin.
	Budget(ctx context.Context) (int, error)
	// Apply makes doc the role's revocation policy, or removes the policy
	// when doc is "".
	Apply(ctx context.Context, doc string) error
}

// Request asks for revocations, or, with no entries, only for expired
// entries to be pruned.
type Request struct {
	Entries []Entry
	// Reason is broker.ReasonNarrowed or broker.ReasonOperator.
	Reason string
	// Causes name what asked for it (changeIds, an operator's request id).
	Causes []string
}

// Service applies revocations: the durable list first, then the role's
// policy, then the audit events. Every step is idempotent, so a request
// that fails half-way is simply delivered again.
type Service struct {
	Store   Store
	Cutoffs Cutoffs
	Role    Role
	Auditor broker.Auditor
	Logger  *slog.Logger
	Now     func() time.Time
	// MaxSession is the longest session the endpoint issues.
	MaxSession time.Duration
	// Margin is kept on top of MaxSession before an entry is pruned
	// (default one minute).
	Margin time.Duration
	// Attempts bounds the retries of a lost optimistic write (default 8).
	Attempts int
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) logger() *slog.Logger { return cmp.Or(s.Logger, slog.Default()) }

// Revoke applies the request. For an operator's request it first gives the
// users new cutoffs in their policy items, and denies the sessions before
// those: the sessions minted under the users' earlier cutoffs included.
// (A narrowing's cutoff is in the item already.)
func (s *Service) Revoke(ctx context.Context, req Request) error {
	if req.Reason == broker.ReasonOperator {
		// Past the user's cutoff in the deny list too, should the item's
		// have been lost (a corrupt item is rewritten without it).
		listed, err := s.Store.LoadDenyList(ctx)
		if err != nil {
			return err
		}
		req.Entries = slices.Clone(req.Entries)
		for i, e := range req.Entries {
			before, err := s.Cutoffs.AdvanceCutoff(ctx, e.UserID, broker.NextCutoff(listed.Users[e.UserID].Before, e.Before))
			if err != nil {
				return err
			}
			req.Entries[i].Before = before
		}
	}
	budget, err := s.Role.Budget(ctx)
	if err != nil {
		return err
	}
	lim := Limits{MaxSession: s.MaxSession, Margin: cmp.Or(s.Margin, time.Minute), Budget: budget}
	saved, doc, err := s.save(ctx, req.Entries, lim)
	if err != nil {
		return err
	}
	err = s.apply(ctx, saved, doc)
	if errors.Is(err, ErrTooLarge) {
		// IAM counted more than the budget allowed: fall back now to one
		// cutoff for everyone, which always fits, rather than leave the
		// revocation unapplied.
		s.logger().Error("IAM refused the deny list as too large; falling back to revoking every session before a time", "budget", lim.Budget, "err", err)
		lim.Budget = 0
		if saved, doc, err = s.save(ctx, nil, lim); err == nil {
			err = s.apply(ctx, saved, doc)
		}
	}
	if err != nil {
		return err
	}
	return s.audit(ctx, req, saved)
}

// save adds the entries to the stored list under optimistic concurrency:
// a concurrent revocation that wrote first makes this one read again and
// add its entries to that list, so none is ever lost.
func (s *Service) save(ctx context.Context, entries []Entry, lim Limits) (List, string, error) {
	attempts := cmp.Or(s.Attempts, 8)
	for attempt := 1; ; attempt++ {
		cur, err := s.Store.LoadDenyList(ctx)
		if err != nil {
			return List{}, "", err
		}
		next, doc, ch := Apply(cur, entries, s.now(), lim)
		err = s.Store.SaveDenyList(ctx, cur.Version, next)
		if err == nil {
			if ch.FellBack {
				s.logger().Warn("deny list too large for the role: every session issued before a time is revoked",
					"issuedBefore", next.All, "budget", lim.Budget)
			}
			return next, doc, nil
		}
		if broker.KindOf(err) != broker.Conflict || attempt >= attempts {
			return List{}, "", err
		}
		if err := backoff.Sleep(ctx, backoff.Jitter(attempt, 20*time.Millisecond, time.Second)); err != nil {
			return List{}, "", broker.Wrap(broker.Transient, "revoke", err)
		}
	}
}

// apply puts the saved list on the role, then makes sure that no newer list
// was saved meanwhile: two revokers that save v1 and v2 may put them on the
// role in the other order, so whoever puts last reads the list again and
// puts the newest, until what it put is the newest.
func (s *Service) apply(ctx context.Context, saved List, doc string) error {
	for range cmp.Or(s.Attempts, 8) {
		if err := s.Role.Apply(ctx, doc); err != nil {
			return err
		}
		cur, err := s.Store.LoadDenyList(ctx)
		if err != nil {
			return err
		}
		if cur.Version <= saved.Version {
			return nil
		}
		saved, doc = cur, Render(cur)
	}
	return broker.Errorf(broker.Transient, "revoke", "the deny list kept changing while it was applied")
}

// audit sends one CredentialsRevoked event per cutoff in force for the
// request's users. It says what is in force rather than what this call
// added, so that a request delivered again (after a failed send) still
// produces its events: delivery is at least once, consumers dedupe on
// causes.
func (s *Service) audit(ctx context.Context, req Request, l List) error {
	type group struct {
		before time.Time
		scope  string
	}
	users := map[group][]string{}
	for _, e := range req.Entries {
		// Entries compare to the millisecond; the events say what IAM
		// compares, whole seconds.
		before := e.Before.UTC().Truncate(time.Millisecond)
		switch u, ok := l.Users[e.UserID]; {
		case ok && !u.Before.Before(before):
			g := group{ceilSecond(u.Before), broker.ScopeUser}
			users[g] = append(users[g], e.UserID)
		case !l.All.Before.Before(before) && !l.All.Before.IsZero():
			g := group{ceilSecond(l.All.Before), broker.ScopeAll}
			users[g] = append(users[g], e.UserID)
		default:
			// Pruned already: no session it could match is alive.
		}
	}
	var events []broker.AuditEvent
	for _, g := range slices.SortedFunc(maps.Keys(users), func(a, b group) int { return a.before.Compare(b.before) }) {
		ids := users[g]
		slices.Sort(ids)
		events = append(events, broker.AuditEvent{
			Source: broker.SourceRevoker, DetailType: broker.DetailCredentialsRevoked, Time: s.now(),
			Detail: broker.CredentialsRevokedDetail{
				SchemaVersion: broker.AuditSchemaVersion, UserIDs: slices.Compact(ids), IssuedBefore: g.before,
				Scope: g.scope, Reason: req.Reason, Causes: req.Causes,
				DenyListUsers: len(l.Users), DenyListVersion: l.Version,
			},
		})
	}
	if len(events) == 0 {
		return nil
	}
	if err := s.Auditor.Emit(ctx, events...); err != nil {
		return broker.Wrap(broker.Transient, "emit CredentialsRevoked", err)
	}
	for _, ev := range events {
		d := ev.Detail.(broker.CredentialsRevokedDetail)
		s.logger().Info("credentials revoked", "users", d.UserIDs, "issuedBefore", d.IssuedBefore, "scope", d.Scope, "reason", d.Reason)
	}
	return nil
}
