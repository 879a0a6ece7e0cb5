// Package revoke keeps the deny list that cuts off credentials issued before
// a user's grants narrowed, and renders it into the IAM policies attached to
// the base role (docs/security.md "Revocation"). It is pure Go: the durable list and
// the role's policies are adapters' business.
//
// AWS evaluates the base role's policies on every request a session makes.
// Every session carries two tags (broker.UserTagKey, broker.CutoffTagKey):
// its user's, and the cutoff of the policy item it was minted from. A
// revocation gives the user a new cutoff, so a Deny of the sessions that
// carry the user's tag but not the new cutoff's stops exactly the user's
// sessions minted before it, for every action, within IAM's propagation
// delay; the sessions minted after it carry the new tag and work at once.
// No time enters that deny: an entry costs two short tags. Entries leave
// once no session they can match is alive. The list spreads over pages:
// page 0 is the role's inline policy, the others customer managed policies
// attached to the role (Limits.Budgets). When it no longer fits them all,
// it falls back to one cutoff for everyone: all sessions issued before it
// are denied and every client fetches again.
package revoke

import (
	"cmp"
	"encoding/json"
	"fmt"
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
	// Users maps a user to the cutoff of that user's sessions.
	Users map[string]Cutoff `json:"users,omitempty"`
	// All, when its Before is not zero, denies every session issued before
	// it, whoever its user: the fallback for users that do not fit and
	// whose revocations name no resources.
	All Cutoff `json:"all,omitzero"`
	// Resource maps an S3 resource (an ARN pattern) to a cutoff that
	// denies it to every session issued before: the fallback for users
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
	UserID string    `json:"userId"`
	Before time.Time `json:"before"`
	Reason string    `json:"reason"`
	Causes []string  `json:"causes,omitempty"`
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

// Cutoff is a user's entry: it denies the user's sessions not tagged with
// the broker.CutoffTag of Before (Before in milliseconds). The fallback's
// (List.All) denies every session issued before Before, rounded up to the
// second. Either may go after Until, when every session it can match has
// expired by the session duration of whoever added it (so that a revoker
// configured with shorter sessions cannot prune it early).
type Cutoff struct {
	Before time.Time `json:"before"`
	Until  time.Time `json:"until"`
	// Causes name the revocations it enforces (changeIds, operators'
	// request ids): a request delivered again whose causes are all here
	// was noted already, and is not announced twice.
	Causes []string `json:"causes,omitempty"`
	// Page is the page that lists the entry (0, the inline policy, for
	// the fallback). An entry stays on its page, so that a change rewrites
	// only the pages it touches.
	Page int `json:"page,omitempty"`
	// Tag, when set, is the cutoff tag the entry spares: for an entry put
	// back from the role's policy whose user is unknown (its key is then
	// "#" and the user's tag).
	Tag string `json:"tag,omitempty"`
	// Resources are what the user's revocations took away (S3 ARN
	// patterns), unless Unnamed: one of them could not name it.
	Resources []string `json:"resources,omitempty"`
	Unnamed   bool     `json:"unnamed,omitempty"`
}

// widen returns a cutoff that denies at least what c and d deny, as long,
// and enforces the causes of both; it stays on c's page.
func (c Cutoff) widen(d Cutoff) Cutoff {
	causes := slices.Concat(c.Causes, d.Causes)
	slices.Sort(causes)
	w := Cutoff{Before: latest(c.Before, d.Before), Until: latest(c.Until, d.Until), Causes: slices.Clip(slices.Compact(causes)), Page: c.Page, Tag: c.Tag,
		Unnamed: c.Unnamed || d.Unnamed}
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

// rawPrefix marks the key of an entry whose user is known only by tag.
const rawPrefix = "#"

// tags returns the user's tag and the cutoff tag an entry spares.
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

// Entry asks that the user's sessions minted before Before be denied.
// Reason and Causes are what its announcement says; Resources, when the
// revocation can name them, what it took away (S3 ARN patterns): should
// the list overflow, those resources alone are denied to everyone.
type Entry struct {
	UserID    string
	Before    time.Time
	Reason    string
	Causes    []string
	Resources []string
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

// Capacity is how many entries fit pages of the budgets, besides the
// fallback: the figure docs/security.md "Size, pages and capacity" quotes.
func Capacity(budgets []int) int {
	n := 0
	for i, b := range budgets {
		if i == 0 {
			b -= fallbackReserve
		}
		n += max(b-pageBase(i), 0) / entryCost
	}
	return n
}

// Change is what Apply did.
type Change struct {
	// Added are the entries now in force, by cutoff.
	Added []Entry
	// FellBack is set when some users did not fit and All took their
	// place.
	FellBack bool
	// Pages lists the pages whose document changed.
	Pages []int
	// Pruned counts the entries that expired.
	Pruned int
	// Noted counts the notices added.
	Noted int
}

// Apply adds entries to l (a later cutoff for a user replaces an earlier
// one, never the reverse), prunes the expired ones at now, puts each new
// entry on the first page with room, and falls back to All for those that
// fit none. It returns the new list (its version one higher), its pages'
// documents (len(lim.Budgets) of them; "" for a page that denies nothing),
// and what changed.
func Apply(l List, add []Entry, now time.Time, lim Limits) (List, []string, Change) {
	pages := max(len(lim.Budgets), 1)
	before := l.fingerprints(pages)
	next := List{Version: l.Version + 1, Generation: l.Generation, Users: maps.Clone(l.Users), All: l.All, Resource: maps.Clone(l.Resource), Unannounced: slices.Clone(l.Unannounced)}
	if next.Users == nil {
		next.Users = map[string]Cutoff{}
	}
	life := lim.MaxSession + lim.Margin // of the entries this call adds
	var ch Change
	placed := map[string]bool{}
	for u := range next.Users {
		placed[u] = next.Users[u].Page < pages
	}
	for _, e := range add {
		e.Before = e.Before.UTC().Truncate(time.Millisecond) // as the policy item keeps it
		c := Cutoff{Before: e.Before, Until: clamp(e.Before, now).Add(life), Causes: e.Causes, Resources: e.Resources, Unnamed: len(e.Resources) == 0}
		cur, listed := next.Users[e.UserID]
		var noted bool
		switch {
		case listed && !c.Before.After(cur.Before):
			noted = cur.enforces(e.Causes)
			next.Users[e.UserID] = cur.widen(c)
		case !c.Before.After(next.All.Before) && !listed:
			// The fallback covers every session the entry would deny that
			// can still be alive; it must last as long.
			noted = next.All.enforces(e.Causes)
			next.All = next.All.widen(Cutoff{Until: c.Until, Causes: c.Causes})
		default:
			next.Users[e.UserID] = cur.widen(c)
			placed[e.UserID] = listed && placed[e.UserID]
			ch.Added = append(ch.Added, e)
		}
		if !noted {
			next.Unannounced = append(next.Unannounced, Notice{UserID: e.UserID, Before: e.Before, Reason: e.Reason, Causes: e.Causes, Resources: e.Resources, Version: next.Version, Noted: now})
			ch.Noted++
		}
	}
	for u, c := range next.Users {
		if now.After(c.Until) {
			delete(next.Users, u)
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
	ch.FellBack = next.place(placed, lim.Budgets, now)
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
	for k, c := range l.Users {
		p := min(c.Page, len(out)-1)
		out[p] += digest(k, strconv.FormatInt(c.Before.UnixMilli(), 10), strconv.FormatInt(c.Until.Unix(), 10), c.Tag)
	}
	if !l.All.Before.IsZero() || len(l.Users) > 0 || len(l.Resource) > 0 {
		out[0] += digest("all", strconv.FormatInt(ceilSecond(l.All.Before).Unix(), 10), strconv.FormatInt(l.All.Until.Unix(), 10))
	}
	for r, c := range l.Resource {
		out[0] += digest("resource", r, strconv.FormatInt(ceilSecond(c.Before).Unix(), 10), strconv.FormatInt(c.Until.Unix(), 10))
	}
	return out
}

// place puts the entries not placed yet on the first page with room,
// in the order of their cutoffs; entries on a page over its budget (the
// budgets shrank) are placed again. Those that fit no page go to the
// fallback. It reports whether any did.
func (l *List) place(placed map[string]bool, budgets []int, now time.Time) bool {
	if len(budgets) == 0 {
		budgets = []int{0}
	}
	used := make([]int, len(budgets))
	count := make([]int, len(budgets))
	for u, c := range l.Users {
		if placed[u] {
			count[c.Page]++
		}
	}
	for i := range budgets {
		used[i] = pageBase(i) + count[i]*entryCost
		if i == 0 {
			used[i] += fallbackReserve
		}
		if used[i] > budgets[i] && count[i] > 0 {
			for u, c := range l.Users {
				if placed[u] && c.Page == i {
					placed[u] = false
				}
			}
			used[i] = pageBase(i)
			if i == 0 {
				// Page 0 keeps room for the fallbacks' statements, so that
				// a fallback always fits.
				used[i] += fallbackReserve
			}
		}
	}
	waiting := slices.SortedFunc(func(yield func(string) bool) {
		for u := range l.Users {
			if !placed[u] && !yield(u) {
				return
			}
		}
	}, func(a, b string) int { return cmp.Or(l.Users[a].Before.Compare(l.Users[b].Before), cmp.Compare(a, b)) })
	fell := false
	for _, u := range waiting {
		c := l.Users[u]
		page := -1
		for i, b := range budgets {
			if used[i]+entryCost <= b {
				page = i
				break
			}
		}
		if page < 0 {
			// No room: every session issued before its cutoff is denied
			// what the revocation took away, or, when it cannot name it,
			// everything.
			fallback := Cutoff{Before: clamp(c.Before, now), Until: c.Until, Causes: c.Causes}
			if c.Unnamed || len(c.Resources) == 0 {
				l.All = l.All.widen(fallback)
			} else {
				if l.Resource == nil {
					l.Resource = map[string]Cutoff{}
				}
				for _, r := range c.Resources {
					l.Resource[r] = l.Resource[r].widen(fallback)
				}
			}
			delete(l.Users, u)
			fell = true
			continue
		}
		c.Page = page
		l.Users[u] = c
		used[page] += entryCost
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
// rendering: entryCost is one entry's two tags, quoted, with their commas
// (the last ones have none, so it never counts short); firstPageBase and
// pageBase, page 0 and any other page with its statements but no entry.
var (
	entryCost     = len(broker.UserTag("u")) + len(broker.CutoffTag("u", time.Time{})) + 6
	firstPageBase = emptyPageSize(0)
	otherPageBase = emptyPageSize(1)
)

func pageBase(i int) int {
	if i == 0 {
		return firstPageBase
	}
	return otherPageBase
}

// emptyPageSize renders page i with one entry and takes the entry away.
func emptyPageSize(i int) int {
	one := List{Users: map[string]Cutoff{"u": {Page: i, Until: time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)}}, Generation: 1 << 40}
	return Size(Render(one, i+1)[i]) - entryCost + 2
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

// Render writes the list's pages as policy documents without white space,
// pages of them ("" for a page that denies nothing). Page 0 holds the
// statement that denies sessions without the user's tag (minted before
// the endpoint tagged every session, or by something else), stamped with
// the list's generation, and the fallback's; each page one statement for
// its entries, stamped with the latest time its entries stay.
func Render(l List, pages int) []string {
	out := make([]string, max(pages, 1))
	byPage := make([][]string, len(out))
	for u, c := range l.Users {
		p := min(c.Page, len(out)-1)
		byPage[p] = append(byPage[p], u)
	}
	for i, users := range byPage {
		var sts []statement
		if i == 0 && (len(l.Users) > 0 || !l.All.Before.IsZero() || len(l.Resource) > 0) {
			sts = append(sts, untaggedDeny(l.Generation))
			sts = append(sts, fallbackDenies(l)...)
		}
		if len(users) > 0 {
			sts = append(sts, usersDeny(l, users))
		}
		if len(sts) > 0 {
			out[i] = string(mustJSON(document{Version: "2012-10-17", Statement: sts}))
		}
	}
	return out
}

type document struct {
	Version   string      `json:"Version"`
	Statement []statement `json:"Statement"`
}

type statement struct {
	Sid       string                    `json:"Sid"`
	Effect    string                    `json:"Effect"`
	Action    string                    `json:"Action"`
	Resource  any                       `json:"Resource"` // "*" or a list of ARNs
	Condition map[string]map[string]any `json:"Condition"`
}

// The Sids of the statements: letters and digits only, as IAM wants.
const (
	untaggedSid = "Untagged"  // + the list's generation
	allSid      = "All"       // + the Unix second the fallback stays until
	usersSid    = "Users"     // + the Unix second its last entry stays until
	resourceSid = "Resources" // + the Unix second its last resource stays until
)

// fallbackDenies are the fallbacks' statements: one for everything, one
// per cutoff second of the named resources.
func fallbackDenies(l List) []statement {
	var sts []statement
	if !l.All.Before.IsZero() {
		sts = append(sts, allDeny(ceilSecond(l.All.Before), l.All.Until))
	}
	bySecond := map[time.Time][]string{}
	until := map[time.Time]time.Time{}
	for r, c := range l.Resource {
		s := ceilSecond(c.Before)
		bySecond[s] = append(bySecond[s], r)
		until[s] = latest(until[s], c.Until)
	}
	for _, s := range slices.SortedFunc(maps.Keys(bySecond), func(a, b time.Time) int { return a.Compare(b) }) {
		rs := bySecond[s]
		slices.Sort(rs)
		sts = append(sts, statement{Sid: resourceSid + strconv.FormatInt(until[s].Unix(), 10), Effect: "Deny", Action: "s3:*", Resource: rs,
			Condition: map[string]map[string]any{"DateLessThan": {"aws:TokenIssueTime": s.Format(time.RFC3339)}}})
	}
	return sts
}

// untaggedDeny denies every session without the user's tag. IAM's Null
// condition holds when the key is absent.
func untaggedDeny(generation int64) statement {
	return statement{Sid: untaggedSid + strconv.FormatInt(generation, 10), Effect: "Deny", Action: "*", Resource: "*",
		Condition: map[string]map[string]any{"Null": {"aws:PrincipalTag/" + broker.UserTagKey: "true"}}}
}

// allDeny denies every session issued before the cutoff, a whole second.
func allDeny(before, until time.Time) statement {
	return statement{Sid: allSid + strconv.FormatInt(until.Unix(), 10), Effect: "Deny", Action: "*", Resource: "*",
		Condition: map[string]map[string]any{"DateLessThan": {"aws:TokenIssueTime": before.UTC().Format(time.RFC3339)}}}
}

// usersDeny denies the sessions of the users (by their tags) that carry
// none of their current cutoffs' tags. A user's cutoff tag names the user,
// so one statement for many users spares each one's own sessions only.
// IAM holds StringNotEquals true when the key is absent.
func usersDeny(l List, keys []string) statement {
	type pair struct{ user, cutoff string }
	pairs := make([]pair, len(keys))
	var until time.Time
	for i, k := range keys {
		pairs[i].user, pairs[i].cutoff = tags(k, l.Users[k])
		until = latest(until, l.Users[k].Until)
	}
	// The i-th cutoff tag is the i-th user's: IAM reads both as sets, and
	// a recovery reads them back in pairs.
	slices.SortFunc(pairs, func(a, b pair) int { return cmp.Or(cmp.Compare(a.user, b.user), cmp.Compare(a.cutoff, b.cutoff)) })
	users, cutoffs := make([]string, len(pairs)), make([]string, len(pairs))
	for i, p := range pairs {
		users[i], cutoffs[i] = p.user, p.cutoff
	}
	return statement{Sid: usersSid + strconv.FormatInt(until.Unix(), 10), Effect: "Deny", Action: "*", Resource: "*",
		Condition: map[string]map[string]any{
			"StringEquals":    {"aws:PrincipalTag/" + broker.UserTagKey: users},
			"StringNotEquals": {"aws:PrincipalTag/" + broker.CutoffTagKey: cutoffs},
		}}
}

// Size is the length IAM counts for a policy document: every character but
// white space.
func Size(doc string) int {
	return len(strings.Join(strings.Fields(doc), ""))
}

// Enforced is what the role's pages deny, as far as it can be read back:
// the generation stamped on page 0, each user tag with the cutoff tag it
// spares and how long it stays, and the fallback.
type Enforced struct {
	Generation int64
	Pairs      []Pair
	All        Cutoff
	Resource   map[string]Cutoff
}

// Pair is an entry as a page shows it: the user's tag, the cutoff tag it
// spares, and (its statement's) the latest time it stays.
type Pair struct {
	User, Cutoff string
	Until        time.Time
}

// ParseEnforced reads pages that Render wrote ("" is an empty one). A
// document of any other shape is an error: the revoker cannot tell what
// it denies, so it must not replace it.
func ParseEnforced(pages []string) (Enforced, error) {
	var e Enforced
	for p, doc := range pages {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		if err := e.parse(doc); err != nil {
			return Enforced{}, fmt.Errorf("page %d of the role's revocation policies: %w", p, err)
		}
	}
	return e, nil
}

func (e *Enforced) parse(doc string) error {
	var d struct {
		Statement []struct {
			Sid, Effect, Action string
			Resource            json.RawMessage
			Condition           map[string]map[string]json.RawMessage
		}
	}
	if err := json.Unmarshal([]byte(doc), &d); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	for i, st := range d.Statement {
		stamp := func(prefix string) (int64, bool) {
			rest, ok := strings.CutPrefix(st.Sid, prefix)
			n, err := strconv.ParseInt(rest, 10, 64)
			return n, ok && err == nil
		}
		if until, ok := stamp(resourceSid); ok && st.Effect == "Deny" && st.Action == "s3:*" {
			var resources []string
			var issued string
			if json.Unmarshal(st.Resource, &resources) != nil || json.Unmarshal(st.Condition["DateLessThan"]["aws:TokenIssueTime"], &issued) != nil {
				return fmt.Errorf("statement %d: not the resources' deny the revoker wrote", i)
			}
			before, err := time.Parse(time.RFC3339, issued)
			if err != nil {
				return fmt.Errorf("statement %d: %w", i, err)
			}
			if e.Resource == nil {
				e.Resource = map[string]Cutoff{}
			}
			for _, r := range resources {
				e.Resource[r] = e.Resource[r].widen(Cutoff{Before: before.UTC(), Until: time.Unix(until, 0).UTC()})
			}
			continue
		}
		var resource string
		if st.Effect != "Deny" || st.Action != "*" || json.Unmarshal(st.Resource, &resource) != nil || resource != "*" {
			return fmt.Errorf("statement %d is not a deny the revoker wrote", i)
		}
		if g, ok := stamp(untaggedSid); ok {
			e.Generation = max(e.Generation, g)
			continue
		}
		if st.Sid == "" {
			// The revoker before the tags wrote one statement per cutoff
			// second, without a Sid. Every session it denied was minted
			// before the endpoint tagged sessions with their user, so the
			// deny of untagged sessions covers it while anything is listed;
			// should the list be lost, it counts as everyone's, for as
			// long as the longest session.
			var issued string
			if err := json.Unmarshal(st.Condition["DateLessThan"]["aws:TokenIssueTime"], &issued); err != nil {
				return fmt.Errorf("statement %d is not a deny the revoker wrote", i)
			}
			before, err := time.Parse(time.RFC3339, issued)
			if err != nil {
				return fmt.Errorf("statement %d: %w", i, err)
			}
			e.All = e.All.widen(Cutoff{Before: before.UTC(), Until: before.UTC().Add(legacyLife)})
			continue
		}
		if until, ok := stamp(allSid); ok {
			var issued string
			if err := json.Unmarshal(st.Condition["DateLessThan"]["aws:TokenIssueTime"], &issued); err != nil {
				return fmt.Errorf("statement %d: no issue time", i)
			}
			before, err := time.Parse(time.RFC3339, issued)
			if err != nil {
				return fmt.Errorf("statement %d: %w", i, err)
			}
			e.All = e.All.widen(Cutoff{Before: before.UTC(), Until: time.Unix(until, 0).UTC()})
			continue
		}
		until, ok := stamp(usersSid)
		if !ok {
			return fmt.Errorf("statement %d (Sid %q) is not one the revoker wrote", i, st.Sid)
		}
		var users, cutoffs []string
		if json.Unmarshal(st.Condition["StringEquals"]["aws:PrincipalTag/"+broker.UserTagKey], &users) != nil ||
			json.Unmarshal(st.Condition["StringNotEquals"]["aws:PrincipalTag/"+broker.CutoffTagKey], &cutoffs) != nil ||
			len(users) != len(cutoffs) {
			return fmt.Errorf("statement %d does not pair user and cutoff tags", i)
		}
		for j, u := range users {
			e.Pairs = append(e.Pairs, Pair{User: u, Cutoff: cutoffs[j], Until: time.Unix(until, 0).UTC()})
		}
	}
	return nil
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

// Gap is what a list lacks of what the role's pages enforce.
type Gap struct {
	// Missing are the pairs whose user tag no entry of the list has.
	Missing []Pair
	// Differ are the users whose entry spares another cutoff tag than the
	// role's pages do for their tag: the user's current cutoff decides.
	Differ []string
	// All is the role's fallback, when the list's is older.
	All Cutoff
	// Resource are the role's resource fallbacks the list lacks.
	Resource map[string]Cutoff
}

// Empty reports whether nothing is lacking.
func (g Gap) Empty() bool {
	return len(g.Missing) == 0 && len(g.Differ) == 0 && g.All.Before.IsZero() && len(g.Resource) == 0
}

// Lost returns what e enforces and l lacks, of what can still match a live
// session at now: what a lost, unreadable or restored-from-backup deny-list
// item no longer holds.
func (l List) Lost(e Enforced, now time.Time) Gap {
	byTag := map[string][]string{}
	for k, c := range l.Users {
		u, _ := tags(k, c)
		byTag[u] = append(byTag[u], k)
	}
	var g Gap
	differ := map[string]bool{}
	for _, p := range e.Pairs {
		if now.After(p.Until) {
			continue
		}
		keys := byTag[p.User]
		if slices.ContainsFunc(keys, func(k string) bool { _, c := tags(k, l.Users[k]); return c == p.Cutoff }) {
			continue
		}
		if len(keys) == 0 {
			g.Missing = append(g.Missing, p)
			continue
		}
		for _, k := range keys {
			if !strings.HasPrefix(k, rawPrefix) {
				differ[k] = true
			}
		}
	}
	g.Differ = slices.Sorted(maps.Keys(differ))
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

// Restore puts back into l what g says it lost: the missing pairs as they
// are (under "#" and the user tag), each differing user at its current
// cutoff (cutoffs; the latest there is, so that the entry spares the
// sessions minted under it and denies every other), and the fallback.
func (l List) Restore(g Gap, cutoffs map[string]time.Time) List {
	l.Users = maps.Clone(l.Users)
	if l.Users == nil {
		l.Users = map[string]Cutoff{}
	}
	for _, p := range g.Missing {
		k := rawPrefix + p.User
		c := l.Users[k]
		c.Tag, c.Until, c.Unnamed = p.Cutoff, latest(c.Until, p.Until), true
		l.Users[k] = c
	}
	for _, u := range g.Differ {
		c := l.Users[u]
		if cut := cutoffs[u]; cut.After(c.Before) {
			c.Before = cut.UTC().Truncate(time.Millisecond)
		}
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
