package revoker

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
)

// Gap is what a list lacks of what the role's pages enforce.
type Gap struct {
	// Revoked are the revoked tags the list lacks.
	Revoked []Revocation
	// Missing are the pairs that no entry of List.Users covers and whose
	// user the list knows only by tag, if at all.
	Missing []Pair
	// Differ are the users whose entry does not cover the role's pair for
	// their tag (it spares another cutoff tag, or denies sessions issued
	// before an earlier time), with that pair: the user's current cutoff
	// decides what is spared.
	Differ map[string]Pair
	// All is the role's fallback, when the list's is older.
	All Cutoff
	// Resource are the role's resource fallbacks the list lacks.
	Resource map[string]Cutoff
}

// Empty reports whether nothing is lacking.
func (g Gap) Empty() bool {
	return len(g.Revoked) == 0 && len(g.Missing) == 0 && len(g.Differ) == 0 && g.All.Before.IsZero() && len(g.Resource) == 0
}

// covers reports whether an entry of List.Users denies what the pair
// does. A pair of the previous revoker (no time) is what the list's own
// entry of the previous format became, bounded when the list was.
func (c Cutoff) covers(key string, p Pair) bool {
	if _, spared := tags(key, c); spared != p.Cutoff {
		return false
	}
	return c.IssuedBefore.IsZero() || p.IssuedBefore.IsZero() || !ceilSecond(c.IssuedBefore).Before(p.IssuedBefore)
}

// Lost returns what e enforces and l lacks, of what can still match a live
// session at now: what a lost, unreadable or restored-from-backup deny-list
// item no longer holds.
func (l List) Lost(e Enforced, now time.Time) Gap {
	var g Gap
	for _, r := range e.Revoked {
		if _, ok := l.Revoked[r.Tag]; !ok && !now.After(r.Until) {
			g.Revoked = append(g.Revoked, r)
		}
	}
	byTag := map[string][]string{}
	for k, c := range l.Users {
		u, _ := tags(k, c)
		byTag[u] = append(byTag[u], k)
	}
	for _, p := range e.Pairs {
		if now.After(p.Until) {
			continue
		}
		keys := byTag[p.User]
		if slices.ContainsFunc(keys, func(k string) bool { return l.Users[k].covers(k, p) }) {
			continue
		}
		own := slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return strings.HasPrefix(k, rawPrefix) })
		if len(own) == 0 {
			g.Missing = append(g.Missing, p)
			continue
		}
		if g.Differ == nil {
			g.Differ = map[string]Pair{}
		}
		for _, k := range own {
			d, seen := g.Differ[k]
			if seen {
				p.IssuedBefore, p.Until = laterBound(d.IssuedBefore, p.IssuedBefore), latest(d.Until, p.Until)
			}
			g.Differ[k] = p
		}
	}
	if !e.All.Before.IsZero() && !now.After(e.All.Until) && ceilSecond(l.All.Before).Before(e.All.Before) {
		g.All = e.All
	}
	for r, c := range e.Resource {
		if !now.After(c.Until) && ceilSecond(l.Resource[r].Before).Before(c.Before) && ceilSecond(l.All.Before).Before(c.Before) {
			if g.Resource == nil {
				g.Resource = map[string]Cutoff{}
			}
			g.Resource[r] = c
		}
	}
	return g
}

// Restore puts back into l what g says it lost: the revoked tags and the
// missing pairs as they are (a pair under "#" and the user tag, sparing
// the page's cutoff tag), each differing user's entry widened to the
// role's pair and sparing the user's current cutoff (cutoffs; the latest
// there is, so that the entry spares the sessions minted under it and
// denies every other), and the fallbacks. A pair without a time (the
// previous revoker's) comes back without one: Apply bounds it.
func (l List) Restore(g Gap, cutoffs map[string]time.Time) List {
	l.Revoked = maps.Clone(l.Revoked)
	if l.Revoked == nil {
		l.Revoked = map[string]Cutoff{}
	}
	// What comes back stays on the page it was read from, so that putting
	// the pages moves nothing from one to another.
	for _, r := range g.Revoked {
		c, listed := l.Revoked[r.Tag]
		if !listed {
			c.Page = r.Page
		}
		c.Until, c.Unnamed = latest(c.Until, r.Until), true
		l.Revoked[r.Tag] = c
	}
	l.Users = maps.Clone(l.Users)
	if l.Users == nil {
		l.Users = map[string]Cutoff{}
	}
	for _, p := range g.Missing {
		k := rawPrefix + p.User
		c, listed := l.Users[k]
		if !listed {
			c.IssuedBefore, c.Page = p.IssuedBefore, p.Page
		}
		c.Tag, c.IssuedBefore, c.Until, c.Unnamed = p.Cutoff, laterBound(c.IssuedBefore, p.IssuedBefore), latest(c.Until, p.Until), true
		l.Users[k] = c
	}
	for u, p := range g.Differ {
		c := l.Users[u]
		if cut := cutoffs[u]; cut.After(c.Before) {
			c.Before = cut.UTC().Truncate(time.Millisecond)
		}
		c.IssuedBefore, c.Until = laterBound(c.IssuedBefore, p.IssuedBefore), latest(c.Until, p.Until)
		l.Users[u] = c
	}
	if !g.All.Before.IsZero() {
		l.All = l.All.widen(g.All)
	}
	if len(g.Resource) > 0 {
		l.Resource = maps.Clone(l.Resource)
		if l.Resource == nil {
			l.Resource = map[string]Cutoff{}
		}
		for r, c := range g.Resource {
			l.Resource[r] = l.Resource[r].widen(c)
		}
	}
	return l
}

// RawOf returns the key of the entry put back for userID's tag, if any.
func (l List) RawOf(userID string) (string, bool) {
	k := rawPrefix + broker.UserTag(userID)
	_, ok := l.Users[k]
	return k, ok
}
