// Package revoke keeps the deny list that cuts off credentials issued before
// a user's grants narrowed, and renders it into the IAM policy attached to
// the base role (README "Revocation"). It is pure Go: the durable list and
// the role's policies are adapters' business.
//
// AWS evaluates the base role's policies on every request a session makes,
// so a Deny on the role whose conditions match a user's SourceIdentity and a
// TokenIssueTime before a cutoff stops exactly that user's older sessions,
// for every action, within IAM's propagation delay. The deny spares the
// sessions tagged with the cutoff's own tag (broker.CutoffTag): those were
// minted from the narrowed item, so the user need not wait for the cutoff.
// Entries leave the list once no session they can match is alive. When the
// list no longer fits the role's inline policy budget, it falls back to one
// cutoff for everyone: all sessions issued before it are denied and every
// client fetches again.
package revoke

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
)

// List is the deny list. The zero value is empty.
type List struct {
	// Version counts the list's updates, for optimistic concurrency.
	Version int64 `json:"version"`
	// Users maps a user to the cutoff of that user's sessions.
	Users map[string]Cutoff `json:"users,omitempty"`
	// All, when its Before is not zero, denies every session issued before
	// it, whoever its user: the fallback when the users do not fit.
	All Cutoff `json:"all,omitzero"`
}

// Cutoff denies the sessions issued before Before (in milliseconds; the
// deny counts whole seconds, rounding up), except, for a user's cutoff,
// those tagged with its broker.CutoffTag. It may go after Until,
// when every session it can match has expired by the session duration of
// whoever added it (so that a revoker or an operator configured with
// shorter sessions cannot prune it early).
type Cutoff struct {
	Before time.Time `json:"before"`
	Until  time.Time `json:"until"`
}

// widen returns a cutoff that denies at least what c and d deny, as long.
func (c Cutoff) widen(d Cutoff) Cutoff {
	return Cutoff{Before: latest(c.Before, d.Before), Until: latest(c.Until, d.Until)}
}

// Entry asks that the user's sessions issued before Before be denied.
type Entry struct {
	UserID string
	Before time.Time
}

// Limits bound the list.
type Limits struct {
	// MaxSession is the longest session the endpoint issues: an entry
	// added now stays until MaxSession (plus Margin) has passed since its
	// cutoff, whatever the Limits of later calls.
	MaxSession time.Duration
	// Margin covers the clocks of STS, IAM and the revoker.
	Margin time.Duration
	// Budget is how many characters (IAM counts all but white space) the
	// rendered policy may take.
	Budget int
}

// Change is what Apply did.
type Change struct {
	// Added are the entries now in force, by cutoff.
	Added []Entry
	// FellBack is set when the users did not fit and All took their place.
	FellBack bool
	// Pruned counts the entries that expired.
	Pruned int
}

// Apply adds entries to l (a later cutoff for a user replaces an earlier
// one, never the reverse), prunes the expired ones at now, and falls back to
// All when the result does not fit lim.Budget. It returns the new list (its
// version one higher), the policy document ("" when nothing is denied: the
// role's revocation policy is then removed), and what changed.
func Apply(l List, add []Entry, now time.Time, lim Limits) (List, string, Change) {
	next := List{Version: l.Version + 1, Users: maps.Clone(l.Users), All: l.All}
	if next.Users == nil {
		next.Users = map[string]Cutoff{}
	}
	life := lim.MaxSession + lim.Margin // of the entries this call adds
	var ch Change
	for _, e := range add {
		e.Before = e.Before.UTC().Truncate(time.Millisecond) // as the policy item keeps it
		c := Cutoff{Before: e.Before, Until: e.Before.Add(life)}
		cur, listed := next.Users[e.UserID]
		switch {
		case !c.Before.After(next.All.Before):
			// The fallback covers it; it must last as long.
			next.All.Until = latest(next.All.Until, c.Until)
		case listed && !c.Before.After(cur.Before):
			next.Users[e.UserID] = cur.widen(c)
		default:
			next.Users[e.UserID] = cur.widen(c)
			ch.Added = append(ch.Added, e)
		}
	}
	for u, c := range next.Users {
		switch {
		case now.After(c.Until):
		case !c.Before.After(next.All.Before):
			next.All = next.All.widen(Cutoff{Until: c.Until})
		default:
			continue
		}
		delete(next.Users, u)
		ch.Pruned++
	}
	if !next.All.Before.IsZero() && now.After(next.All.Until) {
		next.All = Cutoff{}
		ch.Pruned++
	}
	doc := Render(next)
	if Size(doc) > lim.Budget {
		for _, c := range next.Users {
			next.All = next.All.widen(c)
		}
		clear(next.Users)
		ch.FellBack = true
		doc = Render(next)
	}
	return next, doc, ch
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

// Render writes the list as a policy document without white space: one
// Deny statement per distinct cutoff second, naming every user revoked in
// it and sparing their cutoffs' tags, and one for All, which spares
// nobody. It returns "" for an empty list.
func Render(l List) string {
	bySecond := map[time.Time][]string{}
	for u, c := range l.Users {
		s := ceilSecond(c.Before)
		bySecond[s] = append(bySecond[s], u)
	}
	var statements []statement
	if !l.All.Before.IsZero() {
		statements = append(statements, deny(nil, nil, ceilSecond(l.All.Before)))
	}
	for _, before := range slices.SortedFunc(maps.Keys(bySecond), func(a, b time.Time) int { return a.Compare(b) }) {
		users := bySecond[before]
		slices.Sort(users)
		tags := make([]string, len(users))
		for i, u := range users {
			tags[i] = broker.CutoffTag(u, l.Users[u].Before)
		}
		slices.Sort(tags)
		statements = append(statements, deny(users, tags, before))
	}
	if len(statements) == 0 {
		return ""
	}
	b, err := json.Marshal(document{Version: "2012-10-17", Statement: statements})
	if err != nil {
		panic(err) // only strings and maps of strings: cannot fail
	}
	return string(b)
}

type document struct {
	Version   string      `json:"Version"`
	Statement []statement `json:"Statement"`
}

type statement struct {
	Effect    string                    `json:"Effect"`
	Action    string                    `json:"Action"`
	Resource  string                    `json:"Resource"`
	Condition map[string]map[string]any `json:"Condition"`
}

// deny denies every action to the sessions of users (all sessions when
// users is nil) issued before the cutoff, a whole second, except those
// tagged with one of tags. A session without the tag is denied: IAM holds a
// negated condition true when the key is absent, and false when the value
// equals any of those listed.
func deny(users, tags []string, before time.Time) statement {
	cond := map[string]map[string]any{
		"DateLessThan": {"aws:TokenIssueTime": before.UTC().Format(time.RFC3339)},
	}
	if users != nil {
		cond["StringEquals"] = map[string]any{"aws:SourceIdentity": users}
	}
	if len(tags) > 0 {
		cond["StringNotEquals"] = map[string]any{"aws:PrincipalTag/" + broker.CutoffTagKey: tags}
	}
	return statement{Effect: "Deny", Action: "*", Resource: "*", Condition: cond}
}

// Size is the length IAM counts for a policy document: every character but
// white space.
func Size(doc string) int {
	return len(strings.Join(strings.Fields(doc), ""))
}
