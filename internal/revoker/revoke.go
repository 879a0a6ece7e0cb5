// Package revoke keeps the deny list that cuts off credentials issued before
// a user's grants narrowed, and renders it into the IAM policies attached to
// the base role (docs/security.md "Revocation"). It is pure Go: the durable list and
// the role's policies are adapters' business.
//
// AWS evaluates the base role's policies on every request a session makes.
// Every session carries two tags (broker.UserTagKey, broker.CutoffTagKey):
// its user's, and the cutoff of the policy item it was minted from. A
// narrowing moves the user's item from cutoff C to C', so a Deny of the
// sessions tagged with C's tag stops exactly the sessions minted from the
// item before it, for every action, within IAM's propagation delay; the
// sessions minted from the new item carry C”s tag, which no entry names
// until a later narrowing revokes it, so they work at once, whenever the
// revoker gets to the narrowing. No time enters that deny: an entry costs
// one short tag. A revocation whose previous cutoff is unknown (an
// operator's, a narrowing of an unreadable item) denies instead the user's
// sessions issued before a time but those tagged with the user's latest
// cutoff. Entries leave once no session they can match is alive. The list
// spreads over pages: page 0 is the role's inline policy, the others
// customer managed policies attached to the role (Limits.Budgets). When it
// no longer fits them all, it falls back to denying every session issued
// before a time, what the revocations took away or everything.
package revoker

import (
	"cmp"
	"encoding/json"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
)

// List is the deny list. The zero value is empty.
type List struct {
	// Version counts the list's updates, for optimistic concurrency.
	Version int64 `json:"version"`
	// Generation counts the updates that changed what the list denies. The
	// inline page carries it, so that a run can tell from that page alone
	// that the list it loaded is older than what the role enforces.
	Generation int64 `json:"generation,omitempty"`
	// Revoked maps a revoked cutoff tag (broker.CutoffTag) to its entry:
	// every session that carries the tag is denied, whenever issued.
	Revoked map[string]Cutoff `json:"revoked,omitempty"`
	// Users maps a user to an entry that denies the user's sessions issued
	// before its IssuedBefore, but those tagged with its Before's tag (the
	// user's latest cutoff known): for revocations whose previous cutoff
	// is unknown, and for the sessions of cutoffs older than a narrowing's
	// previous one while the list has not seen them revoked (Apply). A key
	// "#" and a user's tag is an entry put back from the role's pages.
	Users map[string]Cutoff `json:"users,omitempty"`
	// All, when its Before is not zero, denies every session issued before
	// it, whoever its user: the fallback for entries that do not fit and
	// whose revocations name no resources.
	All Cutoff `json:"all,omitzero"`
	// Resource maps an S3 resource (an ARN pattern) to a cutoff that
	// denies it to every session issued before: the fallback for entries
	// that do not fit and whose revocations name what they took away.
	Resource map[string]Cutoff `json:"resource,omitempty"`
	// Unannounced are the revocations saved but not yet announced by a
	// CredentialsRevoked event: whichever run next puts a list at least as
	// new on the role announces them (Service), so a revocation that
	// another run applied is announced all the same.
	Unannounced []Notice `json:"unannounced,omitempty"`
}

// Notice is a revocation to announce.
type Notice struct {
	UserID string `json:"userId"`
	// Before bounds the issue times of the sessions it revokes.
	Before time.Time `json:"before"`
	Reason string    `json:"reason"`
	Causes []string  `json:"causes,omitempty"`
	// Tags are the cutoff tags it revoked; none for a revocation whose
	// previous cutoff was unknown (an entry of List.Users).
	Tags []string `json:"tags,omitempty"`
	// Resources are what the revocation took away, when it can name it.
	Resources []string `json:"resources,omitempty"`
	// Version is the version of the list that first held it: it is
	// announced once a list at least that new is on the role.
	Version int64 `json:"version"`
	// Noted is when it was saved: the run that saved it announces it; any
	// run announces it once OrphanAge has passed (that run failed).
	Noted time.Time `json:"noted"`
}

// OrphanAge is how long a notice waits for the run that saved it (Lambda
// stops a revoker run after 60 s) before any run announces it.
const OrphanAge = 2 * time.Minute

// Cutoff is an entry of the list. Any may go after Until, when every
// session it can match has expired by the session duration of whoever
// added it (so that a revoker configured with shorter sessions cannot
// prune it early).
type Cutoff struct {
	// Before is, for an entry of List.Revoked, the cutoff of the narrowing
	// that revoked the tag (zero when put back from the role's pages):
	// every session that carries the tag was issued before it. For an
	// entry of List.Users, the user's latest cutoff known, to the
	// millisecond: the entry spares the sessions tagged with it. For a
	// fallback, the time before which sessions are denied, rounded up to
	// the second.
	Before time.Time `json:"before"`
	// IssuedBefore is, for an entry of List.Users, the time before which
	// the user's sessions are denied, rounded up to the second. An entry
	// of the revoker before the revoked tags has none: it denied every
	// session of the user not tagged with Before's tag (Apply bounds it).
	IssuedBefore time.Time `json:"issuedBefore,omitzero"`
	Until        time.Time `json:"until"`
	// Causes name the revocations it enforces (changeIds, operators'
	// request ids): a request delivered again whose causes are all here
	// was noted already, and is not announced twice.
	Causes []string `json:"causes,omitempty"`
	// Page is the page that lists the entry (0, the inline policy, for
	// the fallback). An entry stays on its page, so that a change rewrites
	// only the pages it touches.
	Page int `json:"page,omitempty"`
	// User is, for an entry of List.Revoked, the user whose tag it is (""
	// when put back from the role's pages).
	User string `json:"user,omitempty"`
	// Tag, when set, is the cutoff tag an entry of List.Users spares: for
	// an entry put back from the role's pages whose user is unknown (its
	// key is then "#" and the user's tag).
	Tag string `json:"tag,omitempty"`
	// Resources are what the revocations took away (S3 ARN patterns),
	// unless Unnamed: one of them could not name it.
	Resources []string `json:"resources,omitempty"`
	Unnamed   bool     `json:"unnamed,omitempty"`
}

// widen returns a cutoff that denies at least what c and d deny, as long,
// and enforces the causes of both; it stays on c's page.
func (c Cutoff) widen(d Cutoff) Cutoff {
	causes := slices.Concat(c.Causes, d.Causes)
	slices.Sort(causes)
	w := Cutoff{Before: latest(c.Before, d.Before), IssuedBefore: laterBound(c.IssuedBefore, d.IssuedBefore), Until: latest(c.Until, d.Until),
		Causes: slices.Clip(slices.Compact(causes)), Page: c.Page, User: cmp.Or(c.User, d.User), Tag: c.Tag, Unnamed: c.Unnamed || d.Unnamed}
	if d.Before.After(c.Before) {
		w.Tag = d.Tag
	}
	if !w.Unnamed {
		w.Resources = slices.Concat(c.Resources, d.Resources)
		slices.Sort(w.Resources)
		w.Resources = slices.Clip(slices.Compact(w.Resources))
	}
	return w
}

// laterBound is the later of two IssuedBefore bounds; zero (an entry of
// the previous format, unbounded) is later than any.
func laterBound(a, b time.Time) time.Time {
	if a.IsZero() || b.IsZero() {
		return time.Time{}
	}
	return latest(a, b)
}

// rawPrefix marks the key of an entry whose user is known only by tag.
const rawPrefix = "#"

// tags returns the user's tag and the cutoff tag an entry of List.Users
// spares.
func tags(key string, c Cutoff) (user, cutoff string) {
	if u, raw := strings.CutPrefix(key, rawPrefix); raw {
		return u, c.Tag
	}
	return broker.UserTag(key), broker.CutoffTag(key, c.Before)
}

// enforces reports whether every one of causes is among c's.
func (c Cutoff) enforces(causes []string) bool {
	for _, cause := range causes {
		if !slices.Contains(c.Causes, cause) {
			return false
		}
	}
	return len(causes) > 0
}

// Entry asks that sessions of the user minted before Before, the user's
// new cutoff, be denied. Reason and Causes are what its announcement says;
// Resources, when the revocation can name them, what it took away (S3 ARN
// patterns): should the list overflow, those resources alone are denied
// to everyone.
type Entry struct {
	UserID string
	Before time.Time
	// Revoked, when the revocation knows them, are the cutoff tags of the
	// sessions it revokes (a narrowing: the tag of the cutoff the item
	// had), and Previous the earliest of those cutoffs (zero for none):
	// every session of an earlier cutoff was issued before it. Without
	// Revoked, every session of the user issued before IssuedBefore (or
	// Before, if later) is denied but those tagged with Before's tag.
	Revoked      []string
	Previous     time.Time
	IssuedBefore time.Time
	Reason       string
	Causes       []string
	Resources    []string
}

// bound is the time before which every session the entry revokes was
// issued.
func (e Entry) bound() time.Time {
	if len(e.Revoked) > 0 {
		return e.Before
	}
	return latest(e.Before, e.IssuedBefore)
}

// Limits bound the list.
type Limits struct {
	// MaxSession is the longest session the endpoint issues: an entry
	// added now stays until MaxSession (plus Margin) has passed since its
	// cutoff, whatever the Limits of later calls.
	MaxSession time.Duration
	// Margin covers the clocks of STS, IAM and the revoker.
	Margin time.Duration
	// Budgets are how many characters (IAM counts all but white space)
	// each page may take: Budgets[0] the inline policy, the others the
	// managed policies the role may have. Entries fill them in order.
	Budgets []int
}

// Capacity is how many revoked tags (one per narrowing) fit pages of the
// budgets, besides the fallback: the figure docs/security.md "Size, pages
// and capacity" quotes.
func Capacity(budgets []int) int {
	n := 0
	for i, b := range budgets {
		n += max(b-pageBase(i)-revokedStmtCost, 0) / tagCost
	}
	return n
}

// Change is what Apply did.
type Change struct {
	// Added are the entries now in force that were not before.
	Added []Entry
	// FellBack is set when some entries did not fit and a fallback took
	// their place.
	FellBack bool
	// Pages lists the pages whose document changed.
	Pages []int
	// Pruned counts the entries that expired.
	Pruned int
	// Noted counts the notices added.
	Noted int
	// Covered counts the narrowings whose previous cutoff the list did not
	// know, for which it denies the user's sessions issued before it.
	Covered int
}

// ref names an entry: of List.Users when user is set, else of List.Revoked.
type ref struct {
	user bool
	key  string
}

func (l *List) entry(r ref) Cutoff {
	if r.user {
		return l.Users[r.key]
	}
	return l.Revoked[r.key]
}

func (l *List) set(r ref, c Cutoff) {
	if r.user {
		l.Users[r.key] = c
	} else {
		l.Revoked[r.key] = c
	}
}

func (l *List) remove(r ref) {
	if r.user {
		delete(l.Users, r.key)
	} else {
		delete(l.Revoked, r.key)
	}
}

// refs lists every entry.
func (l *List) refs() []ref {
	out := make([]ref, 0, len(l.Revoked)+len(l.Users))
	for k := range l.Revoked {
		out = append(out, ref{key: k})
	}
	for k := range l.Users {
		out = append(out, ref{user: true, key: k})
	}
	return out
}

// empty reports whether the list denies nothing.
func (l List) empty() bool {
	return len(l.Revoked) == 0 && len(l.Users) == 0 && l.All.Before.IsZero() && len(l.Resource) == 0
}

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
		l.All = l.All.widen(Cutoff{Until: c.Until, Causes: c.Causes})
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
		l.All = l.All.widen(Cutoff{Until: c.Until, Causes: c.Causes})
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
				l.All = l.All.widen(fallback)
			} else {
				if l.Resource == nil {
					l.Resource = map[string]Cutoff{}
				}
				for _, res := range c.Resources {
					l.Resource[res] = l.Resource[res].widen(fallback)
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
	if len(l.Resource) > 0 && Size(string(mustJSON(fallbackDenies(*l)))) > fallbackReserve {
		for _, c := range l.Resource {
			l.All = l.All.widen(Cutoff{Before: c.Before, Until: c.Until, Causes: c.Causes})
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
	revokedStmtCost = Size(string(mustJSON(revokedDeny([]string{}, farAhead)))) + 1
	usersStmtCost   = Size(string(mustJSON(usersDeny(List{}, []string{}, farAhead, farAhead)))) + 1
	firstPageBase   = Size(string(mustJSON(document{Version: policyVersion, Statement: []statement{untaggedDeny(1 << 40)}})))
	otherPageBase   = Size(string(mustJSON(document{Version: policyVersion, Statement: []statement{}})))
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
// everything, and those for named resources, about a dozen buckets' worth.
const fallbackReserve = 1000

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only strings, numbers and maps of them: cannot fail
	}
	return b
}

// Fallback is the latest cutoff of the list's fallbacks, for everything or
// for named resources (zero when there is none): credentials issued before
// it may be denied whatever their user, so caches must not serve them.
func (l List) Fallback() time.Time {
	at := l.All.Before
	for _, c := range l.Resource {
		at = latest(at, c.Before)
	}
	return at
}
