// Package revoker keeps the deny list that cuts off credentials issued before
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
	"slices"
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

// absorb is widen for a fallback, which may take in a hundred thousand
// revocations: it keeps at most fallbackCauses of their causes, so that
// the list stays within its item and a run's work within its batch's. A
// revocation delivered again whose cause it did not keep is announced
// again (delivery is at least once; consumers dedupe on causes).
func (c Cutoff) absorb(d Cutoff) Cutoff {
	if len(c.Causes) >= fallbackCauses {
		d.Causes = nil
	}
	w := c.widen(d)
	w.Causes = slices.Clip(w.Causes[:min(len(w.Causes), fallbackCauses)])
	return w
}

// fallbackCauses bounds the causes a fallback keeps.
const fallbackCauses = 64

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
