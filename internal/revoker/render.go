package revoker

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
)

const policyVersion = "2012-10-17"

// The kinds of a page's statements for entries.
const (
	kindRevoked = "revoked" // the revoked tags
	kindUsers   = "users"   // entries of List.Users of one issue time
)

// stmt is one statement for entries: its page, its kind, for kindUsers
// the second its entries deny sessions issued before, the latest time its
// entries stay, and their keys.
type stmt struct {
	page         int
	kind         string
	issuedBefore time.Time
	until        time.Time
	keys         []string
}

// statements groups the list's entries into the statements that render
// them, in the order of the pages: on each page, the revoked tags, then
// the users' entries by issue time.
func (l List) statements(pages int) []stmt {
	type key struct {
		page         int
		kind         string
		issuedBefore time.Time
	}
	groups := map[key]*stmt{}
	at := func(k key) *stmt {
		if groups[k] == nil {
			groups[k] = &stmt{page: k.page, kind: k.kind, issuedBefore: k.issuedBefore}
		}
		return groups[k]
	}
	for tag, c := range l.Revoked {
		s := at(key{min(c.Page, pages-1), kindRevoked, time.Time{}})
		s.keys, s.until = append(s.keys, tag), latest(s.until, c.Until)
	}
	for u, c := range l.Users {
		s := at(key{min(c.Page, pages-1), kindUsers, ceilSecond(c.IssuedBefore)})
		s.keys, s.until = append(s.keys, u), latest(s.until, c.Until)
	}
	out := make([]stmt, 0, len(groups))
	for _, s := range groups {
		slices.Sort(s.keys)
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b stmt) int {
		return cmp.Or(cmp.Compare(a.page, b.page), cmp.Compare(a.kind, b.kind), a.issuedBefore.Compare(b.issuedBefore))
	})
	return out
}

// Render writes the list's pages as policy documents without white space,
// pages of them ("" for a page that denies nothing). Page 0 holds the
// statement that denies sessions without the user's tag (minted before
// the endpoint tagged every session, or by something else), stamped with
// the list's generation, and the fallbacks'; each page a statement for its
// revoked tags and one for its users' entries of each issue time, each
// stamped with the latest time its entries stay.
func Render(l List, pages int) []string {
	pages = max(pages, 1)
	sts := make([][]statement, pages)
	if !l.empty() {
		sts[0] = append([]statement{untaggedDeny(l.Generation)}, fallbackDenies(l)...)
	}
	for _, s := range l.statements(pages) {
		if s.kind == kindRevoked {
			sts[s.page] = append(sts[s.page], revokedDeny(s.keys, s.until))
		} else {
			sts[s.page] = append(sts[s.page], usersDeny(l, s.keys, s.issuedBefore, s.until))
		}
	}
	out := make([]string, pages)
	for i, page := range sts {
		if len(page) > 0 {
			out[i] = string(mustJSON(document{Version: policyVersion, Statement: page}))
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

// The Sids of the statements: letters and digits only, as IAM wants, and
// each one of its own within a page.
const (
	untaggedSid = "Untagged"  // + the list's generation
	allSid      = "All"       // + the Unix second the fallback stays until
	resourceSid = "Resources" // + the Unix second its last resource stays until
	revokedSid  = "Revoked"   // + the Unix second its last entry stays until
	issuedSid   = "Issued"    // + the Unix second it denies sessions before, "Until", and the one its last entry stays until
	// legacyUsersSid is the previous revoker's statement of users' entries
	// (+ the Unix second its last entry stays until): the users' tags and
	// the cutoff tags they spare, with no time. ParseEnforced reads it.
	legacyUsersSid = "Users"
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

// revokedDeny denies every session tagged with one of the revoked cutoff
// tags. A cutoff tag names its user, so one statement serves every user.
func revokedDeny(revoked []string, until time.Time) statement {
	return statement{Sid: revokedSid + strconv.FormatInt(until.Unix(), 10), Effect: "Deny", Action: "*", Resource: "*",
		Condition: map[string]map[string]any{"StringEquals": {"aws:PrincipalTag/" + broker.CutoffTagKey: revoked}}}
}

// usersDeny denies the sessions of the users (by their tags) issued before
// a second that carry none of the cutoff tags their entries spare. A
// user's cutoff tag names the user, so one statement for many users spares
// each one's own sessions only. IAM holds StringNotEquals true when the
// key is absent.
func usersDeny(l List, keys []string, issuedBefore, until time.Time) statement {
	type pair struct{ user, cutoff string }
	pairs := make([]pair, len(keys))
	for i, k := range keys {
		pairs[i].user, pairs[i].cutoff = tags(k, l.Users[k])
	}
	// The i-th cutoff tag is the i-th user's: IAM reads both as sets, and
	// a recovery reads them back in pairs.
	slices.SortFunc(pairs, func(a, b pair) int { return cmp.Or(cmp.Compare(a.user, b.user), cmp.Compare(a.cutoff, b.cutoff)) })
	users, cutoffs := make([]string, len(pairs)), make([]string, len(pairs))
	for i, p := range pairs {
		users[i], cutoffs[i] = p.user, p.cutoff
	}
	return statement{Sid: issuedSid + strconv.FormatInt(issuedBefore.Unix(), 10) + "Until" + strconv.FormatInt(until.Unix(), 10),
		Effect: "Deny", Action: "*", Resource: "*",
		Condition: map[string]map[string]any{
			"StringEquals":    {"aws:PrincipalTag/" + broker.UserTagKey: users},
			"StringNotEquals": {"aws:PrincipalTag/" + broker.CutoffTagKey: cutoffs},
			"DateLessThan":    {"aws:TokenIssueTime": issuedBefore.UTC().Format(time.RFC3339)},
		}}
}

// Enforced is what the role's pages deny, as far as it can be read back:
// the generation stamped on page 0, the revoked tags, each user tag with
// the cutoff tag it spares, and the fallbacks; each with how long it stays.
type Enforced struct {
	Generation int64
	Revoked    []Revocation
	Pairs      []Pair
	All        Cutoff
	Resource   map[string]Cutoff
}

// Revocation is a revoked tag as a page shows it, with (its statement's)
// the latest time it stays.
type Revocation struct {
	Tag   string
	Until time.Time
	// Page is the page it was read from.
	Page int
}

// Pair is an entry of List.Users as a page shows it: the user's tag, the
// cutoff tag it spares, the second before which it denies (zero in a page
// of the previous revoker: whenever issued), and (its statement's) the
// latest time it stays.
type Pair struct {
	User, Cutoff string
	IssuedBefore time.Time
	Until        time.Time
	// Page is the page it was read from.
	Page int
}

// ParseEnforced reads pages that Render wrote, or the previous revoker's
// ("" is an empty one), pages[i] being page i. A document of any other shape is an error: the
// revoker cannot tell what it denies, so it must not replace it.
func ParseEnforced(pages []string) (Enforced, error) {
	var e Enforced
	for p, doc := range pages {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		revoked, pairs := len(e.Revoked), len(e.Pairs)
		if err := e.parse(doc); err != nil {
			return Enforced{}, fmt.Errorf("page %d of the role's revocation policies: %w", p, err)
		}
		for i := revoked; i < len(e.Revoked); i++ {
			e.Revoked[i].Page = p
		}
		for i := pairs; i < len(e.Pairs); i++ {
			e.Pairs[i].Page = p
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
		issued := func() (time.Time, error) {
			var s string
			if err := json.Unmarshal(st.Condition["DateLessThan"]["aws:TokenIssueTime"], &s); err != nil {
				return time.Time{}, fmt.Errorf("statement %d: no issue time", i)
			}
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return time.Time{}, fmt.Errorf("statement %d: %w", i, err)
			}
			return t.UTC(), nil
		}
		if until, ok := stamp(resourceSid); ok && st.Effect == "Deny" && st.Action == "s3:*" {
			var resources []string
			if json.Unmarshal(st.Resource, &resources) != nil {
				return fmt.Errorf("statement %d: not the resources' deny the revoker wrote", i)
			}
			before, err := issued()
			if err != nil {
				return err
			}
			if e.Resource == nil {
				e.Resource = map[string]Cutoff{}
			}
			for _, r := range resources {
				e.Resource[r] = e.Resource[r].widen(Cutoff{Before: before, Until: time.Unix(until, 0).UTC()})
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
			before, err := issued()
			if err != nil {
				return fmt.Errorf("statement %d is not a deny the revoker wrote", i)
			}
			e.All = e.All.widen(Cutoff{Before: before, Until: before.Add(legacyLife)})
			continue
		}
		if until, ok := stamp(allSid); ok {
			before, err := issued()
			if err != nil {
				return err
			}
			e.All = e.All.widen(Cutoff{Before: before, Until: time.Unix(until, 0).UTC()})
			continue
		}
		if until, ok := stamp(revokedSid); ok {
			var revoked []string
			if json.Unmarshal(st.Condition["StringEquals"]["aws:PrincipalTag/"+broker.CutoffTagKey], &revoked) != nil {
				return fmt.Errorf("statement %d lists no revoked cutoff tags", i)
			}
			for _, tag := range revoked {
				e.Revoked = append(e.Revoked, Revocation{Tag: tag, Until: time.Unix(until, 0).UTC()})
			}
			continue
		}
		var before time.Time
		until, ok := stamp(legacyUsersSid)
		if rest, isUsers := strings.CutPrefix(st.Sid, issuedSid); isUsers {
			second, last, found := strings.Cut(rest, "Until")
			s, err1 := strconv.ParseInt(second, 10, 64)
			u, err2 := strconv.ParseInt(last, 10, 64)
			t, err := issued()
			if !found || err1 != nil || err2 != nil || err != nil || t.Unix() != s {
				return fmt.Errorf("statement %d (Sid %q) is not the users' deny the revoker wrote", i, st.Sid)
			}
			before, until, ok = t, u, true
		}
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
			e.Pairs = append(e.Pairs, Pair{User: u, Cutoff: cutoffs[j], IssuedBefore: before, Until: time.Unix(until, 0).UTC()})
		}
	}
	return nil
}
