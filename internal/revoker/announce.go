package revoker

import (
	"cmp"
	"context"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/credbroker/credbroker/internal/backoff"
	"github.com/credbroker/credbroker/internal/broker"
)

// Announcing what a run applied: CredentialsRevoked events grouped by
// cutoff second, scope and reason, and the notices they answer removed
// from the stored list.

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
	// One event per cutoff second, scope and reason, naming every user and
	// cause of it: a bulk narrowing is a few events, not one per user.
	type group struct {
		before    time.Time
		scope     string
		reason    string
		resources string
	}
	notices := map[group][]Notice{}
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
		g := group{before: ceilSecond(n.Before), scope: broker.ScopeUser, reason: n.Reason}
		switch {
		case l.lists(n):
		case !l.All.Before.IsZero() && !l.All.Before.Before(n.Before):
			g.before, g.scope = ceilSecond(l.All.Before), broker.ScopeAll
		case len(n.Resources) > 0 && !slices.ContainsFunc(n.Resources, func(r string) bool { return l.Resource[r].Before.Before(n.Before) }):
			var at time.Time
			for _, r := range n.Resources {
				at = latest(at, l.Resource[r].Before)
			}
			g.before, g.scope, g.resources = ceilSecond(at), broker.ScopeResource, strings.Join(n.Resources, "\x00")
		default:
			// Pruned already: no session it could match is alive; the
			// event still says that it was applied.
		}
		notices[g] = append(notices[g], n)
		if g.scope != broker.ScopeAll && !l.All.Before.IsZero() && l.All.enforces(n.Causes) {
			// Part of it fell back to everything (an entry by time
			// covering an earlier narrowing the list cannot see, on full
			// pages): the trail says so, or it would under-report.
			all := group{before: ceilSecond(l.All.Before), scope: broker.ScopeAll, reason: n.Reason}
			notices[all] = append(notices[all], n)
		}
	}
	if len(sent) == 0 {
		return nil
	}
	var events []broker.AuditEvent
	for _, g := range slices.SortedFunc(maps.Keys(notices), func(a, b group) int {
		return cmp.Or(a.before.Compare(b.before), cmp.Compare(a.scope, b.scope), cmp.Compare(a.reason, b.reason), cmp.Compare(a.resources, b.resources))
	}) {
		// A few hundred users an event keeps it well within the bus's
		// 256 KB.
		for chunk := range slices.Chunk(notices[g], usersPerEvent) {
			ids, why := []string{}, []string{}
			for _, n := range chunk {
				ids, why = append(ids, n.UserID), append(why, n.Causes...)
			}
			slices.Sort(ids)
			slices.Sort(why)
			d := broker.CredentialsRevokedDetail{
				SchemaVersion: broker.AuditSchemaVersion, UserIDs: slices.Compact(ids), IssuedBefore: g.before,
				Scope: g.scope, Reason: g.reason, Causes: slices.Compact(why),
				DenyListUsers: l.UsersListed(), DenyListVersion: l.Version,
			}
			if g.resources != "" {
				d.Resources = strings.Split(g.resources, "\x00")
			}
			events = append(events, broker.AuditEvent{Source: broker.SourceRevoker, DetailType: broker.DetailCredentialsRevoked, Time: now, Detail: d})
		}
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

// lists reports whether l holds the entries of n: every tag it revoked,
// or, when it named none, the user's entry, at least as late.
func (l List) lists(n Notice) bool {
	if len(n.Tags) > 0 {
		return !slices.ContainsFunc(n.Tags, func(tag string) bool { _, ok := l.Revoked[tag]; return !ok })
	}
	u, ok := l.Users[n.UserID]
	return ok && !ceilSecond(u.IssuedBefore).Before(ceilSecond(n.Before))
}

// usersPerEvent bounds the users of one CredentialsRevoked event.
const usersPerEvent = 250

// forget removes announced notices from the stored list.
func (s *Service) forget(ctx context.Context, sent []Notice) error {
	// By user first: a batch sends a thousand notices, and comparing each
	// to each took most of a run.
	byUser := map[string][]Notice{}
	for _, m := range sent {
		byUser[m.UserID] = append(byUser[m.UserID], normalNotice(m))
	}
	attempts := cmp.Or(s.Attempts, 8)
	for attempt := 1; ; attempt++ {
		cur, err := s.Store.LoadDenyList(ctx)
		if err != nil {
			return err
		}
		next := cur
		next.Version++
		next.Unannounced = slices.DeleteFunc(slices.Clone(cur.Unannounced), func(n Notice) bool {
			n = normalNotice(n)
			return slices.ContainsFunc(byUser[n.UserID], func(m Notice) bool { return reflect.DeepEqual(n, m) })
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
