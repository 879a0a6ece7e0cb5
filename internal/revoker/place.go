package revoker

import (
	"cmp"
	"encoding/json"
	"hash/fnv"
	"slices"
	"strconv"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
)

// fingerprints sums, page by page, a digest of everything that page
// renders but the generation: a page whose sum is unchanged renders the
// same, and Apply need not render a list twice to tell which pages changed.
func (l List) fingerprints(pages int) []uint64 {
	out := make([]uint64, max(pages, 1))
	digest := func(parts ...string) uint64 {
		h := fnv.New64a()
		for _, p := range parts {
			h.Write([]byte(p))
			h.Write([]byte{0})
		}
		return h.Sum64()
	}
	unix := func(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }
	for _, st := range l.statements(len(out)) {
		out[st.page] += digest("statement", st.kind, unix(st.issuedBefore), unix(st.until))
		for _, k := range st.keys {
			if st.kind == kindRevoked {
				out[st.page] += digest(k)
			} else {
				u, c := tags(k, l.Users[k])
				out[st.page] += digest(u, c)
			}
		}
	}
	if !l.empty() {
		out[0] += digest("all", unix(ceilSecond(l.All.Before)), unix(l.All.Until))
	}
	for r, c := range l.Resource {
		out[0] += digest("resource", r, unix(ceilSecond(c.Before)), unix(c.Until))
	}
	return out
}

// placement tracks what the entries placed so far take of each page.
type placement struct {
	budgets []int
	used    []int
	tags    []bool               // a page has the statement of revoked tags
	groups  []map[time.Time]bool // the issue times of a page's users' statements
	count   []int                // entries placed on a page
}

func newPlacement(budgets []int) *placement {
	p := &placement{budgets: budgets, used: make([]int, len(budgets)), tags: make([]bool, len(budgets)),
		groups: make([]map[time.Time]bool, len(budgets)), count: make([]int, len(budgets))}
	for i := range budgets {
		p.reset(i)
	}
	return p
}

// reset empties page i but for its statements without entries; page 0
// keeps room for the fallbacks' statements, so that a fallback always fits.
func (p *placement) reset(i int) {
	p.used[i], p.tags[i], p.groups[i], p.count[i] = pageBase(i), false, map[time.Time]bool{}, 0
}

// cost is what an entry adds to page i: its tags, and its statement if
// the page has none for it yet.
func (p *placement) cost(i int, r ref, c Cutoff) int {
	if !r.user {
		if p.tags[i] {
			return tagCost
		}
		return tagCost + revokedStmtCost
	}
	if p.groups[i][ceilSecond(c.IssuedBefore)] {
		return userCost
	}
	return userCost + usersStmtCost
}

func (p *placement) put(i int, r ref, c Cutoff) {
	p.used[i] += p.cost(i, r, c)
	p.count[i]++
	if r.user {
		p.groups[i][ceilSecond(c.IssuedBefore)] = true
	} else {
		p.tags[i] = true
	}
}

// place puts the entries not placed yet on the first page with room, in
// the order of their cutoffs; entries on a page over its budget (the
// budgets shrank) are placed again. Those that fit no page go to the
// fallback. It reports whether any did.
func (l *List) place(placed map[ref]bool, budgets []int, now time.Time) bool {
	if len(budgets) == 0 {
		budgets = []int{0}
	}
	p := newPlacement(budgets)
	all := l.refs()
	for _, r := range all {
		if placed[r] {
			c := l.entry(r)
			p.put(c.Page, r, c)
		}
	}
	for i := range budgets {
		if p.used[i] > budgets[i] && p.count[i] > 0 {
			for _, r := range all {
				if placed[r] && l.entry(r).Page == i {
					placed[r] = false
				}
			}
			p.reset(i)
		}
	}
	var waiting []ref
	for _, r := range all {
		if !placed[r] {
			waiting = append(waiting, r)
		}
	}
	slices.SortFunc(waiting, func(a, b ref) int {
		return cmp.Or(l.bound(a, now).Compare(l.bound(b, now)), cmpBool(a.user, b.user), cmp.Compare(a.key, b.key))
	})
	fell := false
	for _, r := range waiting {
		c := l.entry(r)
		page := -1
		for i, b := range budgets {
			if p.used[i]+p.cost(i, r, c) <= b {
				page = i
				break
			}
		}
		if page < 0 {
			// No room: every session issued before its bound is denied
			// what the revocation took away, or, when it cannot name it,
			// everything.
			fallback := Cutoff{Before: l.bound(r, now), Until: c.Until, Causes: c.Causes}
			if c.Unnamed || len(c.Resources) == 0 {
				l.All = l.All.absorb(fallback)
			} else {
				if l.Resource == nil {
					l.Resource = map[string]Cutoff{}
				}
				for _, res := range c.Resources {
					l.Resource[res] = l.Resource[res].absorb(fallback)
				}
			}
			l.remove(r)
			fell = true
			continue
		}
		c.Page = page
		l.set(r, c)
		p.put(page, r, c)
	}
	// The fallbacks share page 0's reserve; past it, the resources'
	// cutoffs give way to one for everything.
	if len(l.Resource) > 0 && broker.PolicySize(string(mustJSON(fallbackDenies(*l)))) > fallbackReserve {
		for _, c := range l.Resource {
			l.All = l.All.absorb(Cutoff{Before: c.Before, Until: c.Until, Causes: c.Causes})
		}
		l.Resource = nil
	}
	return fell
}

// bound is the time before which every session an entry denies was
// issued: for a revoked tag put back from the role's pages, whose
// narrowing is unknown, any session was issued before now's revocation.
func (l *List) bound(r ref, now time.Time) time.Time {
	c := l.entry(r)
	switch {
	case r.user:
		return c.IssuedBefore
	case c.Before.IsZero():
		return broker.RevokeBefore(now)
	}
	return clamp(c.Before, now)
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// clamp bounds a cutoff to the revoker's clock: no session of the grants
// a narrowing took away was issued after the narrowing reached the
// revoker, whatever the clock of the projector that set the cutoff says.
func clamp(cutoff, now time.Time) time.Time {
	if limit := broker.RevokeBefore(now); cutoff.After(limit) {
		return limit
	}
	return cutoff
}

func ceilSecond(t time.Time) time.Time {
	t = t.UTC()
	if d := t.Truncate(time.Second); !d.Equal(t) {
		return d.Add(time.Second)
	}
	return t
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// The sizes IAM counts of the rendered pages, for placing entries without
// rendering. tagCost is a revoked tag, quoted, with its comma; userCost an
// entry of List.Users's two tags. revokedStmtCost and usersStmtCost are a
// statement of each kind without entries, with its comma (the last ones
// have none, so they never count short); pageBase, a page with none of
// them (page 0 with the deny of untagged sessions and the fallbacks'
// reserve).
var (
	tagCost         = len(broker.CutoffTag("u", time.Time{})) + 3
	userCost        = len(broker.UserTag("u")) + 3 + tagCost
	farAhead        = time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	revokedStmtCost = broker.PolicySize(string(mustJSON(revokedDeny([]string{}, farAhead)))) + 1
	usersStmtCost   = broker.PolicySize(string(mustJSON(usersDeny(List{}, []string{}, farAhead, farAhead)))) + 1
	firstPageBase   = broker.PolicySize(string(mustJSON(document{Version: policyVersion, Statement: []statement{untaggedDeny(1 << 40)}})))
	otherPageBase   = broker.PolicySize(string(mustJSON(document{Version: policyVersion, Statement: []statement{}})))
)

func pageBase(i int) int {
	if i == 0 {
		return firstPageBase + fallbackReserve
	}
	return otherPageBase
}

// legacyLife is how long a deny of the revoker before the tags may still
// match a session: the longest session the base role allows, and a margin.
const legacyLife = time.Hour + time.Minute

// fallbackReserve is the room page 0 keeps for the fallbacks: the one for
// everything, and those for named resources, a statement per cutoff
// second: four buckets removed at seconds of their own, a dozen in one.
const fallbackReserve = 1000

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only strings, numbers and maps of them: cannot fail
	}
	return b
}
