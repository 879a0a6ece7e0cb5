package revoke

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/credbroker/credbroker/internal/backoff"
	"github.com/credbroker/credbroker/internal/broker"
)

// Store keeps the deny list durably, with optimistic concurrency.
type Store interface {
	// LoadDenyList reads the list (the zero List when there is none). When
	// the stored item cannot be read, it returns an error wrapping
	// broker.ErrCorruptItem and a List whose Version is the token that
	// SaveDenyList needs to replace the item.
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
	// Cutoff returns the user's current cutoff (zero when none).
	Cutoff(ctx context.Context, userID string) (time.Time, error)
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
	// Current returns the role's revocation policy ("" when none).
	Current(ctx context.Context) (string, error)
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
//
// The role's policy is what IAM enforces, so the list must never shrink
// below it by accident: each run reads the policy first, and when the
// stored list lacks a live entry the policy holds (the item was deleted,
// cannot be read, or was restored from an old backup), it puts the entry
// back before anything else, logs an error and counts
// MetricDenyListRecovered (README "Revocation", recovering the deny list).
type Service struct {
	Store   Store
	Cutoffs Cutoffs
	Role    Role
	Auditor broker.Auditor
	Logger  *slog.Logger
	Now     func() time.Time
	// Metric counts an alarming event; nil counts nothing.
	Metric func(name string)
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

func (s *Service) count(metric string) {
	if s.Metric != nil {
		s.Metric(metric)
	}
}

func (s *Service) life() time.Duration { return s.MaxSession + cmp.Or(s.Margin, time.Minute) }

// Revoke applies the request and returns its entries as applied. For an
// operator's request it first gives the users new cutoffs in their policy
// items, and denies the sessions before those: the sessions minted under
// the users' earlier cutoffs included. (A narrowing's cutoff is in the
// item already.) With no entries it prunes, and announces what other runs
// left unannounced.
func (s *Service) Revoke(ctx context.Context, req Request) ([]Entry, error) {
	// What IAM enforces now, read before the list: anything the policy
	// holds was saved in the list before it was put, so a list loaded
	// after this read holds it too, unless the list was lost.
	current, err := s.Role.Current(ctx)
	if err != nil {
		return nil, err
	}
	enforced, err := ParseEnforced(current)
	if err != nil {
		// Not ours (edited by hand?): replacing it could lift denies.
		return nil, broker.Errorf(broker.Internal, "revoke", "%v: restore the policy the revoker wrote or remove it (README \"Revocation\")", err)
	}
	entries := make([]Entry, len(req.Entries))
	for i, e := range req.Entries {
		e.Reason, e.Causes = req.Reason, req.Causes
		entries[i] = e
	}
	if req.Reason == broker.ReasonOperator && len(entries) > 0 {
		// Past the user's cutoff in the deny list too, should the item's
		// have been lost (a corrupt item is rewritten without it).
		listed, err := s.Store.LoadDenyList(ctx)
		if err != nil && !errors.Is(err, broker.ErrCorruptItem) {
			return nil, err
		}
		for i, e := range entries {
			prev := listed.Users[e.UserID].Before
			if t, ok := enforced.Users[e.UserID]; ok && ceilSecond(prev).Before(t) {
				prev = t
			}
			before, err := s.Cutoffs.AdvanceCutoff(ctx, e.UserID, broker.NextCutoff(prev, e.Before))
			if err != nil {
				return nil, err
			}
			entries[i].Before = before
		}
	}
	budget, err := s.Role.Budget(ctx)
	if err != nil {
		return nil, err
	}
	lim := Limits{MaxSession: s.MaxSession, Margin: cmp.Or(s.Margin, time.Minute), Budget: budget}
	saved, doc, err := s.save(ctx, entries, enforced, lim)
	if err != nil {
		return nil, err
	}
	saved, err = s.apply(ctx, saved, doc, current)
	if errors.Is(err, ErrTooLarge) {
		// IAM counted more than the budget allowed: fall back now to one
		// cutoff for everyone, which always fits, rather than leave the
		// revocation unapplied.
		s.logger().Error("IAM refused the deny list as too large; falling back to revoking every session before a time", "budget", lim.Budget, "err", err)
		lim.Budget = 0
		if saved, doc, err = s.save(ctx, nil, enforced, lim); err == nil {
			saved, err = s.apply(ctx, saved, doc, current)
		}
	}
	if err != nil {
		return nil, err
	}
	if err := s.announce(ctx, saved, entries); err != nil {
		return nil, err
	}
	return entries, nil
}

// save adds the entries to the stored list under optimistic concurrency:
// a concurrent revocation that wrote first makes this one read again and
// add its entries to that list, so none is ever lost. What the role's
// policy enforces and the list lost is put back first. A call that would
// change nothing writes nothing.
func (s *Service) save(ctx context.Context, entries []Entry, enforced Enforced, lim Limits) (List, string, error) {
	attempts := cmp.Or(s.Attempts, 8)
	for attempt := 1; ; attempt++ {
		cur, err := s.Store.LoadDenyList(ctx)
		corrupt := errors.Is(err, broker.ErrCorruptItem)
		if err != nil && !corrupt {
			return List{}, "", err
		}
		prev := cur.Version
		if corrupt {
			cur = List{Version: prev}
		}
		now := s.now()
		lost := cur.Lost(enforced, now, s.life())
		recovered := len(lost.Users) > 0 || !lost.All.IsZero()
		if recovered || corrupt {
			if cur, err = s.restore(ctx, cur, lost, corrupt, err); err != nil {
				return List{}, "", err
			}
		}
		next, doc, ch := Apply(cur, entries, now, lim)
		if !recovered && !corrupt && ch.Pruned == 0 && ch.Noted == 0 && !ch.FellBack && sameList(cur, next) {
			return cur, doc, nil // nothing to write
		}
		err = s.Store.SaveDenyList(ctx, prev, next)
		if err == nil {
			if ch.FellBack {
				s.logger().Warn("deny list too large for the role: every session issued before a time is revoked",
					"issuedBefore", next.All.Before, "budget", lim.Budget)
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

// restore puts back into l what the role's policy enforces and l lost. A
// lost user's entry takes the user's current cutoff when its deny is the
// lost one's or later, so that the sessions minted under it stay spared;
// otherwise the lost second itself, which spares nobody's sessions.
func (s *Service) restore(ctx context.Context, l List, lost Enforced, corrupt bool, loadErr error) (List, error) {
	users := make(map[string]time.Time, len(lost.Users))
	for u, before := range lost.Users {
		c, err := s.Cutoffs.Cutoff(ctx, u)
		if err != nil {
			return List{}, err
		}
		if c.IsZero() || ceilSecond(c).Before(before) {
			c = before
		}
		users[u] = c
	}
	s.count(MetricDenyListRecovered)
	s.logger().Error("the deny-list item was lost, unreadable or older than the role's policy: putting back what the role's policy still denies (README \"Revocation\")",
		"unreadable", corrupt, "loadError", loadErr, "usersRestored", len(users), "allRestored", !lost.All.IsZero())
	return l.Restore(users, lost.All, s.life()), nil
}

// sameList reports whether a and b hold the same entries and notices,
// whatever their versions.
func sameList(a, b List) bool {
	a.Version, b.Version = 0, 0
	return reflect.DeepEqual(normal(a), normal(b))
}

func normal(l List) List {
	if len(l.Users) == 0 {
		l.Users = nil
	}
	if len(l.Unannounced) == 0 {
		l.Unannounced = nil
	}
	return l
}

// apply puts the saved list on the role unless the role holds it already
// (current, read at the start of the run), then makes sure that no newer
// list was saved meanwhile: two revokers that save v1 and v2 may put them
// on the role in the other order, so whoever puts last reads the list
// again and puts the newest, until what it put is the newest. It returns
// the list now on the role.
func (s *Service) apply(ctx context.Context, saved List, doc, current string) (List, error) {
	for range cmp.Or(s.Attempts, 8) {
		if Size(doc) != Size(current) || compact(doc) != compact(current) {
			if err := s.Role.Apply(ctx, doc); err != nil {
				return List{}, err
			}
			current = doc
		}
		cur, err := s.Store.LoadDenyList(ctx)
		if err != nil {
			return List{}, err
		}
		if cur.Version <= saved.Version {
			return saved, nil
		}
		saved, doc = cur, Render(cur)
	}
	return List{}, broker.Errorf(broker.Transient, "revoke", "the deny list kept changing while it was applied")
}

func compact(doc string) string { return strings.Join(strings.Fields(doc), "") }

// announce sends one CredentialsRevoked event per group of the notices
// that l (now on the role) holds for this run's entries, and of those that
// another run saved and left unannounced for OrphanAge (it failed, and its
// retries may have too), then removes them from the stored list. So every
// applied revocation is announced, by its own run or by the next one after
// OrphanAge (the 5-minute prune at the latest). A run that fails between
// sending and removing sends them again on its retry, and the same event
// delivered twice at once may announce twice: delivery is at least once;
// consumers dedupe on causes.
func (s *Service) announce(ctx context.Context, l List, entries []Entry) error {
	type group struct {
		before time.Time
		scope  string
		reason string
		causes string
	}
	users := map[group][]string{}
	causes := map[group][]string{}
	var sent []Notice
	now := s.now()
	for _, n := range l.Unannounced {
		if n.Version > l.Version {
			continue // not on the role yet: its own run announces it
		}
		own := slices.ContainsFunc(entries, func(e Entry) bool { return e.UserID == n.UserID && slices.Equal(e.Causes, n.Causes) })
		if !own && now.Sub(n.Noted) < OrphanAge {
			continue // its own run is still under way
		}
		sent = append(sent, n)
		// Notices compare to the millisecond; the events say what IAM
		// compares, whole seconds.
		g := group{before: ceilSecond(n.Before), scope: broker.ScopeUser, reason: n.Reason, causes: strings.Join(n.Causes, "\x00")}
		switch u, ok := l.Users[n.UserID]; {
		case ok && !u.Before.Before(n.Before):
			g.before = ceilSecond(u.Before)
		case !l.All.Before.IsZero() && !l.All.Before.Before(n.Before):
			g.before, g.scope = ceilSecond(l.All.Before), broker.ScopeAll
		default:
			// Pruned already: no session it could match is alive; the
			// event still says that it was applied.
		}
		users[g] = append(users[g], n.UserID)
		causes[g] = n.Causes
	}
	if len(sent) == 0 {
		return nil
	}
	var events []broker.AuditEvent
	for _, g := range slices.SortedFunc(maps.Keys(users), func(a, b group) int {
		return cmp.Or(a.before.Compare(b.before), cmp.Compare(a.scope, b.scope), cmp.Compare(a.reason, b.reason), cmp.Compare(a.causes, b.causes))
	}) {
		ids, why := users[g], causes[g]
		slices.Sort(ids)
		if why == nil {
			why = []string{}
		}
		events = append(events, broker.AuditEvent{
			Source: broker.SourceRevoker, DetailType: broker.DetailCredentialsRevoked, Time: s.now(),
			Detail: broker.CredentialsRevokedDetail{
				SchemaVersion: broker.AuditSchemaVersion, UserIDs: slices.Compact(ids), IssuedBefore: g.before,
				Scope: g.scope, Reason: g.reason, Causes: why,
				DenyListUsers: len(l.Users), DenyListVersion: l.Version,
			},
		})
	}
	if err := s.Auditor.Emit(ctx, events...); err != nil {
		return broker.Wrap(broker.Transient, "emit CredentialsRevoked", err)
	}
	for _, ev := range events {
		d := ev.Detail.(broker.CredentialsRevokedDetail)
		s.logger().Info("credentials revoked", "users", d.UserIDs, "issuedBefore", d.IssuedBefore, "scope", d.Scope, "reason", d.Reason)
	}
	return s.forget(ctx, sent)
}

// forget removes announced notices from the stored list.
func (s *Service) forget(ctx context.Context, sent []Notice) error {
	attempts := cmp.Or(s.Attempts, 8)
	for attempt := 1; ; attempt++ {
		cur, err := s.Store.LoadDenyList(ctx)
		if err != nil {
			return err
		}
		next := cur
		next.Version++
		next.Unannounced = slices.DeleteFunc(slices.Clone(cur.Unannounced), func(n Notice) bool {
			return slices.ContainsFunc(sent, func(m Notice) bool { return reflect.DeepEqual(normalNotice(n), normalNotice(m)) })
		})
		if len(next.Unannounced) == len(cur.Unannounced) {
			return nil // another run removed them
		}
		err = s.Store.SaveDenyList(ctx, cur.Version, next)
		if err == nil || broker.KindOf(err) != broker.Conflict || attempt >= attempts {
			return err
		}
		if err := backoff.Sleep(ctx, backoff.Jitter(attempt, 20*time.Millisecond, time.Second)); err != nil {
			return broker.Wrap(broker.Transient, "revoke", err)
		}
	}
}

func normalNotice(n Notice) Notice {
	n.Before = n.Before.UTC()
	if len(n.Causes) == 0 {
		n.Causes = nil
	}
	return n
}
