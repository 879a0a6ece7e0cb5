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
	"fmt"
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

// Cutoff denies the sessions issued before Before (in milliseconds; the
// deny counts whole seconds, rounding up), except, for a user's cutoff,
// those tagged with its broker.CutoffTag. It may go after Until,
// when every session it can match has expired by the session duration of
// whoever added it (so that a revoker or an operator configured with
// shorter sessions cannot prune it early).
type Cutoff struct {
	Before time.Time `json:"before"`
	Until  time.Time `json:"until"`
	// Causes name the revocations it enforces (changeIds, operators'
	// request ids): a request delivered again whose causes are all here
	// was noted already, and is not announced twice.
	Causes []string `json:"causes,omitempty"`
}

// widen returns a cutoff that denies at least what c and d deny, as long,
// and enforces the causes of both.
func (c Cutoff) widen(d Cutoff) Cutoff {
	causes := slices.Concat(c.Causes, d.Causes)
	slices.Sort(causes)
	return Cutoff{Before: latest(c.Before, d.Before), Until: latest(c.Until, d.Until), Causes: slices.Clip(slices.Compact(causes))}
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

// Entry asks that the user's sessions issued before Before be denied.
// Reason and Causes are what its announcement says.
type Entry struct {
	UserID string
	Before time.Time
	Reason string
	Causes []string
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
	// Noted counts the notices added.
	Noted int
}

// Apply adds entries to l (a later cutoff for a user replaces an earlier
// one, never the reverse), prunes the expired ones at now, and falls back to
// All when the result does not fit lim.Budget. It returns the new list (its
// version one higher), the policy document ("" when nothing is denied: the
// role's revocation policy is then removed), and what changed.
func Apply(l List, add []Entry, now time.Time, lim Limits) (List, string, Change) {
	next := List{Version: l.Version + 1, Users: maps.Clone(l.Users), All: l.All, Unannounced: slices.Clone(l.Unannounced)}
	if next.Users == nil {
		next.Users = map[string]Cutoff{}
	}
	life := lim.MaxSession + lim.Margin // of the entries this call adds
	var ch Change
	for _, e := range add {
		e.Before = e.Before.UTC().Truncate(time.Millisecond) // as the policy item keeps it
		c := Cutoff{Before: e.Before, Until: e.Before.Add(life), Causes: e.Causes}
		cur, listed := next.Users[e.UserID]
		var noted bool
		switch {
		case !c.Before.After(next.All.Before):
			// The fallback covers it; it must last as long.
			noted = next.All.enforces(e.Causes)
			next.All = next.All.widen(Cutoff{Until: c.Until, Causes: c.Causes})
		case listed && !c.Before.After(cur.Before):
			noted = cur.enforces(e.Causes)
			next.Users[e.UserID] = cur.widen(c)
		default:
			next.Users[e.UserID] = cur.widen(c)
			ch.Added = append(ch.Added, e)
		}
		if !noted {
			next.Unannounced = append(next.Unannounced, Notice{UserID: e.UserID, Before: e.Before, Reason: e.Reason, Causes: e.Causes, Version: next.Version, Noted: now})
			ch.Noted++
		}
	}
	for u, c := range next.Users {
		switch {
		case now.After(c.Until):
		case !c.Before.After(next.All.Before):
			next.All = next.All.widen(Cutoff{Until: c.Until, Causes: c.Causes})
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

// Enforced is what a rendered policy denies, as far as it can be read back:
// each listed user's cutoff and the fallback's, in whole seconds (the tags
// it spares are digests, and cannot be read back).
type Enforced struct {
	Users map[string]time.Time
	All   time.Time
}

// ParseEnforced reads a policy document that Render wrote ("" is an empty
// one). A document of any other shape is an error: the revoker cannot tell
// what it denies, so it must not replace it.
func ParseEnforced(doc string) (Enforced, error) {
	e := Enforced{Users: map[string]time.Time{}}
	if strings.TrimSpace(doc) == "" {
		return e, nil
	}
	var d struct {
		Statement []struct {
			Effect, Action, Resource string
			Condition                map[string]map[string]json.RawMessage
		}
	}
	if err := json.Unmarshal([]byte(doc), &d); err != nil {
		return Enforced{}, fmt.Errorf("the role's revocation policy is not JSON: %w", err)
	}
	for i, st := range d.Statement {
		var issued string
		if err := json.Unmarshal(st.Condition["DateLessThan"]["aws:TokenIssueTime"], &issued); err != nil || st.Effect != "Deny" || st.Action != "*" || st.Resource != "*" {
			return Enforced{}, fmt.Errorf("statement %d of the role's revocation policy is not a deny the revoker wrote", i)
		}
		before, err := time.Parse(time.RFC3339, issued)
		if err != nil {
			return Enforced{}, fmt.Errorf("statement %d of the role's revocation policy: %w", i, err)
		}
		raw, listed := st.Condition["StringEquals"]["aws:SourceIdentity"]
		if !listed {
			e.All = latest(e.All, before)
			continue
		}
		var users []string
		if err := json.Unmarshal(raw, &users); err != nil {
			var one string
			if err := json.Unmarshal(raw, &one); err != nil {
				return Enforced{}, fmt.Errorf("statement %d of the role's revocation policy names no users", i)
			}
			users = []string{one}
		}
		for _, u := range users {
			e.Users[u] = latest(e.Users[u], before.UTC())
		}
	}
	return e, nil
}

// Lost returns what e enforces and l does not (nor its fallback) and that
// can still match a live session at now, sessions living up to life: what
// a lost, unreadable or restored-from-backup deny-list item no longer holds.
func (l List) Lost(e Enforced, now time.Time, life time.Duration) Enforced {
	lost := Enforced{Users: map[string]time.Time{}}
	covered := func(before time.Time, c Cutoff) bool {
		return !c.Before.IsZero() && !ceilSecond(c.Before).Before(before)
	}
	for u, before := range e.Users {
		if now.After(before.Add(life)) || covered(before, l.Users[u]) || covered(before, l.All) {
			continue
		}
		lost.Users[u] = before
	}
	if !e.All.IsZero() && !now.After(e.All.Add(life)) && !covered(e.All, l.All) {
		lost.All = e.All
	}
	return lost
}

// Restore puts back what was lost: each user's entry at before (a cutoff
// whose deny is the lost one, or later), the fallback at lost.All, each
// kept for life from its second.
func (l List) Restore(users map[string]time.Time, all time.Time, life time.Duration) List {
	l.Users = maps.Clone(l.Users)
	if l.Users == nil {
		l.Users = map[string]Cutoff{}
	}
	for u, before := range users {
		l.Users[u] = l.Users[u].widen(Cutoff{Before: before, Until: ceilSecond(before).Add(life)})
	}
	if !all.IsZero() {
		l.All = l.All.widen(Cutoff{Before: all, Until: ceilSecond(all).Add(life)})
	}
	return l
}
