// Package broker holds the domain of the credential broker: who may reach which
// bucket, at which access level, and the interfaces the rest of the program
// implements. It imports nothing from AWS; adapters live in sibling packages
// named after what they adapt (ddbstore, stsissuer, ebaudit, ...).
package broker

import (
	"maps"
	"slices"
	"strings"
	"time"
)

// Access is the level a membership grants on a project's buckets.
type Access string

const (
	Read  Access = "read"
	Write Access = "write"
)

// Covers reports whether a covers b: write covers read, every level covers itself.
func (a Access) Covers(b Access) bool { return a == b || (a == Write && b == Read) }

// Valid reports whether a is one of the two contract levels.
func (a Access) Valid() bool { return a == Read || a == Write }

// Grant is one reachable place: a bucket, or a folder of it, at one access
// level, with the projects that grant it. Prefix is "" (whole bucket) or a
// normalized folder ending in "/".
//
// ExpiresAt, when not zero, is the instant the grant ends: only time-bounded
// memberships give it, and it is the latest of their expiries (a grant that
// an unbounded membership also gives has none). The session policy bounds
// the grant with aws:CurrentTime at that instant.
type Grant struct {
	Bucket    string    `json:"bucket"`
	Prefix    string    `json:"prefix"`
	Access    Access    `json:"access"`
	Projects  []string  `json:"projects"`
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
}

// LiveAt reports whether g still grants anything at t.
func (g Grant) LiveAt(t time.Time) bool { return Outlives(g.ExpiresAt, t) }

// Outlives reports whether an expiry (zero: none) is after t.
func Outlives(expiry, t time.Time) bool { return expiry.IsZero() || expiry.After(t) }

// Lasts reports whether an expiry a (zero: none) ends no earlier than b.
func Lasts(a, b time.Time) bool { return a.IsZero() || !b.IsZero() && !a.Before(b) }

// LaterExpiry is the expiry of a grant given by two memberships: none if
// either has none, else the later one (the union rule).
func LaterExpiry(a, b time.Time) time.Time {
	if a.IsZero() || b.IsZero() {
		return time.Time{}
	}
	if a.After(b) {
		return a
	}
	return b
}

// Covers reports whether g reaches everything o reaches, for at least as
// long.
func (g Grant) Covers(o Grant) bool {
	return g.Place().Covers(o.Place()) && Lasts(g.ExpiresAt, o.ExpiresAt)
}

// LiveGrants returns the grants of gs that still grant something at t.
func LiveGrants(gs []Grant, t time.Time) []Grant {
	return slices.DeleteFunc(slices.Clone(gs), func(g Grant) bool { return !g.LiveAt(t) })
}

// Place is a grant without its provenance; it identifies a grant in diffs.
type Place struct {
	Bucket string `json:"bucket"`
	Prefix string `json:"prefix"`
	Access Access `json:"access"`
}

// Place returns g without its projects.
func (g Grant) Place() Place { return Place{Bucket: g.Bucket, Prefix: g.Prefix, Access: g.Access} }

// Covers reports whether p reaches everything q reaches: the same bucket,
// the same or a wider folder, the same or a higher access level (the rule
// by which the compiler drops covered grants).
func (p Place) Covers(q Place) bool {
	return p.Bucket == q.Bucket && strings.HasPrefix(q.Prefix, p.Prefix) && p.Access.Covers(q.Access)
}

// Narrows reports whether going from prev to next takes anything away: a
// grant of prev that no grant of next covers, for as long. Raising read to
// write, replacing a folder with its whole bucket, or lengthening or
// removing an expiry does not narrow; giving a grant an expiry, or an
// earlier one, does (sessions already issued carry no bound or a later
// one). Callers pass prev's grants live at the change (LiveGrants): a grant
// whose expiry has passed is no loss, the credentials stopped at it.
func Narrows(prev, next []Grant) bool {
	for _, g := range prev {
		if !slices.ContainsFunc(next, func(n Grant) bool { return n.Covers(g) }) {
			return true
		}
	}
	return false
}

// Membership is a validated membership record: the user belongs to the
// project at the given access level.
type Membership struct {
	UserID    string
	ProjectID string
	Access    Access
	// ExpiresAt, when not zero, is the instant the membership stops
	// granting anything (docs/contract.md "Source records").
	ExpiresAt time.Time
}

// LiveAt reports whether m grants anything at t.
func (m Membership) LiveAt(t time.Time) bool { return Outlives(m.ExpiresAt, t) }

// ProjectBucket is a validated bucket record: the project owns the bucket, or
// only the folder Prefix of it when Prefix is not "".
type ProjectBucket struct {
	ProjectID string
	Bucket    string
	Prefix    string
}

// PolicySet is one session policy and the grants (indexes into
// UserPolicy.Grants) it reaches. Each grant is in exactly one set.
type PolicySet struct {
	Policy string `json:"policy"`
	Grants []int  `json:"grants"`
}

// UserPolicy is the materialized answer for one user: everything the
// credential endpoint needs, read in one GetItem.
type UserPolicy struct {
	UserID string
	// Version changes whenever the grants change; it is a content hash, so the
	// same grants always give the same version.
	Version string
	// Grants is the normalized union over all projects, sorted.
	Grants []Grant
	// Sets are the precompiled session policies covering Grants.
	Sets []PolicySet
	// ByProject holds each project's own grants, for ?project= answers.
	ByProject map[string][]Place
	// Expires holds the expiry of each time-bounded project of ByProject.
	Expires   map[string]time.Time
	UpdatedAt time.Time
	// RevokedBefore, when not zero, is the user's latest revocation cutoff
	// (docs/security.md "Revocation"): the endpoint tags every session it
	// mints from this item with its CutoffTag, which the next narrowing of
	// the user revokes; every session of an earlier cutoff was issued
	// before it.
	RevokedBefore time.Time
}

// NextExpiry is the earliest project expiry after t, or zero when there is
// none: when the user's item must next be recomputed (every grant's expiry
// is one of its projects').
func (p UserPolicy) NextExpiry(t time.Time) time.Time {
	var next time.Time
	for _, e := range p.Expires {
		if e.After(t) && (next.IsZero() || e.Before(next)) {
			next = e
		}
	}
	return next
}

// Empty reports whether the policy grants nothing (no item, or a tombstone).
func (p UserPolicy) Empty() bool { return len(p.Grants) == 0 }

// Projects returns the user's projects that grant at least one place, sorted.
func (p UserPolicy) Projects() []string {
	out := make([]string, 0, len(p.ByProject))
	for id := range p.ByProject {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// Credentials are temporary AWS credentials for one policy set.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	Expiration      time.Time
}

// SameContent reports whether p and o hold the same policy: version,
// grants, sets (policy text included) and per-project places. The version
// alone is not enough: an item edited by hand can keep its version while
// its policies change, and the endpoint sends the stored policies to STS.
func (p UserPolicy) SameContent(o UserPolicy) bool {
	return p.Version == o.Version &&
		slices.EqualFunc(p.Grants, o.Grants, func(a, b Grant) bool {
			return a.Place() == b.Place() && slices.Equal(a.Projects, b.Projects) && a.ExpiresAt.Equal(b.ExpiresAt)
		}) &&
		maps.EqualFunc(p.Expires, o.Expires, time.Time.Equal) &&
		slices.EqualFunc(p.Sets, o.Sets, func(a, b PolicySet) bool {
			return a.Policy == b.Policy && slices.Equal(a.Grants, b.Grants)
		}) &&
		maps.EqualFunc(p.ByProject, o.ByProject, func(a, b []Place) bool { return slices.Equal(a, b) })
}
