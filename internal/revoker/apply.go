package revoker

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
)

// Apply adds entries to l, prunes the expired ones at now, puts each new
// entry on the first page with room, and falls back for those that fit
// none. It returns the new list (its version one higher), its pages'
// documents (len(lim.Budgets) of them; "" for a page that denies nothing),
// and what changed.
//
// A narrowing's entry revokes the tags it names. The sessions of still
// earlier cutoffs were revoked by the user's earlier narrowings, which the
// list knows when one of them brought the user to the narrowing's previous
// cutoff; when none did (it is delayed, or was lost), the user's entry in
// List.Users denies them by issue time until those narrowings arrive. That
// entry, like every entry of List.Users, spares the latest cutoff the list
// knows of the user, so that it denies no session minted from a newer item.
func Apply(l List, add []Entry, now time.Time, lim Limits) (List, []string, Change) {
	pages := max(len(lim.Budgets), 1)
	before := l.fingerprints(pages)
	next := List{Version: l.Version + 1, Generation: l.Generation, Revoked: maps.Clone(l.Revoked), Users: maps.Clone(l.Users),
		All: l.All, Resource: maps.Clone(l.Resource), Unannounced: slices.Clone(l.Unannounced)}
	if next.Revoked == nil {
		next.Revoked = map[string]Cutoff{}
	}
	if next.Users == nil {
		next.Users = map[string]Cutoff{}
	}
	for k, c := range next.Users {
		if c.IssuedBefore.IsZero() {
			// An entry of the previous format denied the sessions not
			// tagged with its cutoff, whenever issued. Every session it
			// must deny was minted from an item read before the list was
			// saved, so before now: the bound of a revocation now holds.
			c.IssuedBefore = broker.RevokeBefore(now)
			next.Users[k] = c
		}
	}
	a := applier{l: &next, now: now, life: lim.MaxSession + lim.Margin, placed: map[ref]bool{}, latest: next.latestCutoffs()}
	for _, r := range next.refs() {
		a.placed[r] = next.entry(r).Page < pages
	}
	// In the order of their cutoffs, so that a batch that holds two
	// narrowings of a user knows the first's cutoff when it reads the
	// second's previous one.
	sorted := slices.Clone(add)
	slices.SortStableFunc(sorted, func(x, y Entry) int { return x.Before.Compare(y.Before) })
	for _, e := range sorted {
		a.add(e)
	}
	ch := a.ch
	for _, r := range next.refs() {
		if now.After(next.entry(r).Until) {
			next.remove(r)
			ch.Pruned++
		}
	}
	if !next.All.Before.IsZero() && now.After(next.All.Until) {
		next.All = Cutoff{}
		ch.Pruned++
	}
	for r, c := range next.Resource {
		if now.After(c.Until) {
			delete(next.Resource, r)
			ch.Pruned++
		}
	}
	ch.FellBack = next.place(a.placed, lim.Budgets, now)
	after := next.fingerprints(pages)
	for i := range after {
		if after[i] != before[i] {
			ch.Pages = append(ch.Pages, i)
		}
	}
	if len(ch.Pages) > 0 {
		// Page 0 carries the generation: it changes with any page.
		next.Generation++
		if ch.Pages[0] != 0 {
			ch.Pages = append([]int{0}, ch.Pages...)
		}
	}
	return next, Render(next, pages), ch
}

// applier adds entries to a list.
type applier struct {
	l      *List
	now    time.Time
	life   time.Duration
	placed map[ref]bool
	latest map[string]time.Time // each user's latest cutoff the list knows
	ch     Change
}

func (a *applier) add(e Entry) {
	e.Before = e.Before.UTC().Truncate(time.Millisecond) // as the policy item keeps it
	e.Previous = e.Previous.UTC().Truncate(time.Millisecond)
	noted, added := true, false
	if len(e.Revoked) > 0 {
		c := Cutoff{Before: e.Before, Until: clamp(e.Before, a.now).Add(a.life), Causes: e.Causes, Resources: e.Resources,
			Unnamed: len(e.Resources) == 0, User: e.UserID}
		for _, tag := range e.Revoked {
			n, ad := a.revoke(tag, c)
			noted, added = noted && n, added || ad
		}
		if a.unknown(e.UserID, e.Previous) {
			// The narrowings that revoked the cutoffs before the previous
			// one are not in the list: deny the sessions they revoke, all
			// issued before the previous cutoff, until they arrive. What
			// they took away is unknown: should the entry overflow, its
			// fallback is everything.
			prev := clamp(e.Previous, a.now)
			a.deny(e.UserID, Cutoff{Before: e.Before, IssuedBefore: prev, Until: prev.Add(a.life), Causes: e.Causes, Unnamed: true})
			a.ch.Covered++
		}
	} else {
		at := clamp(e.bound(), a.now)
		noted, added = a.deny(e.UserID, Cutoff{Before: e.Before, IssuedBefore: at, Until: at.Add(a.life), Causes: e.Causes,
			Resources: e.Resources, Unnamed: len(e.Resources) == 0})
	}
	a.know(e.UserID, e.Before)
	if added {
		a.ch.Added = append(a.ch.Added, e)
	}
	if !noted {
		a.l.Unannounced = append(a.l.Unannounced, Notice{UserID: e.UserID, Before: e.bound(), Reason: e.Reason, Causes: e.Causes,
			Tags: e.Revoked, Resources: e.Resources, Version: a.l.Version, Noted: a.now})
		a.ch.Noted++
	}
}

// revoke lists a revoked tag; it reports whether the tag's entry already
// enforced the causes, and whether the list denies more than before.
func (a *applier) revoke(tag string, c Cutoff) (noted, added bool) {
	l := a.l
	cur, listed := l.Revoked[tag]
	switch {
	case listed:
		l.Revoked[tag] = cur.widen(c)
		return cur.enforces(c.Causes), false
	case !c.Before.After(l.All.Before):
		// The fallback covers every session the entry would deny that
		// can still be alive; it must last as long.
		noted = l.All.enforces(c.Causes)
		l.All = l.All.absorb(Cutoff{Until: c.Until, Causes: c.Causes})
		return noted, false
	default:
		l.Revoked[tag] = c
		a.placed[ref{key: tag}] = false
		return false, true
	}
}

// deny gives the user an entry of List.Users that denies at least what c
// does, sparing the user's latest cutoff known.
func (a *applier) deny(user string, c Cutoff) (noted, added bool) {
	l := a.l
	c.Before = latest(c.Before, a.latest[user])
	cur, listed := l.Users[user]
	switch {
	case listed && !c.IssuedBefore.After(cur.IssuedBefore):
		l.Users[user] = cur.widen(c)
		return cur.enforces(c.Causes), false
	case !listed && !c.IssuedBefore.After(l.All.Before):
		noted = l.All.enforces(c.Causes)
		l.All = l.All.absorb(Cutoff{Until: c.Until, Causes: c.Causes})
		return noted, false
	default:
		if listed {
			c = cur.widen(c)
		}
		l.Users[user] = c
		a.placed[ref{user: true, key: user}] = listed && a.placed[ref{user: true, key: user}]
		return false, true
	}
}

// unknown reports whether the list may lack the revocations of the user's
// cutoffs before prev: none of its entries brought the user to prev, none
// denies the user's sessions issued before prev, and such sessions may
// still be alive. A prev of zero (none) has nothing before it.
func (a *applier) unknown(user string, prev time.Time) bool {
	if prev.IsZero() || a.now.After(clamp(prev, a.now).Add(a.life)) || !prev.After(a.l.All.Before) {
		return false
	}
	if u, ok := a.l.Users[user]; ok && !u.IssuedBefore.Before(prev) {
		return false
	}
	for _, c := range a.l.Revoked {
		if c.User == user && c.Before.Equal(prev) {
			return false
		}
	}
	return true
}

// know records that cutoff is one of the user's: the user's entry of
// List.Users spares the latest.
func (a *applier) know(user string, cutoff time.Time) {
	if !cutoff.After(a.latest[user]) {
		return
	}
	a.latest[user] = cutoff
	if u, ok := a.l.Users[user]; ok && cutoff.After(u.Before) {
		u.Before = cutoff
		a.l.Users[user] = u
	}
}

// latestCutoffs returns each user's latest cutoff the list knows: what
// its narrowings brought the user to, and what its entry spares.
func (l List) latestCutoffs() map[string]time.Time {
	out := map[string]time.Time{}
	for _, c := range l.Revoked {
		if c.User != "" {
			out[c.User] = latest(out[c.User], c.Before)
		}
	}
	for u, c := range l.Users {
		if !strings.HasPrefix(u, rawPrefix) {
			out[u] = latest(out[u], c.Before)
		}
	}
	return out
}

// LatestCutoff is the user's latest cutoff the list knows (zero when none).
func (l List) LatestCutoff(user string) time.Time {
	at := l.Users[user].Before
	for _, c := range l.Revoked {
		if c.User == user {
			at = latest(at, c.Before)
		}
	}
	return at
}

// UsersListed counts the users the entries name (an entry put back from
// the role's pages counts as one of its own).
func (l List) UsersListed() int {
	seen := map[string]bool{}
	for k, c := range l.Revoked {
		seen[cmp.Or(c.User, rawPrefix+k)] = true
	}
	for k := range l.Users {
		seen[k] = true
	}
	return len(seen)
}
