// Package policy compiles a user's grants into the fewest AssumeRole session
// policies that reach exactly those grants. It is pure Go: no AWS SDK.
package policy

import (
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
)

// MaxPolicyBytes is AWS's limit on the plain text of a session policy passed
// to AssumeRole (2,048 characters). Policies are ASCII, so bytes are
// characters.
const MaxPolicyBytes = 2048

// Compiler turns grants into session policies. The zero value is ready to use.
type Compiler struct {
	// Partition is the ARN partition of the buckets ("aws" when empty).
	Partition string
	// MaxBytes bounds each policy (MaxPolicyBytes when zero). Tests lower it
	// to exercise packing with few grants.
	MaxBytes int
}

// Rejection is a place the compiler refused, with the reason. The projector
// validates records before they reach the compiler, so a rejection here
// means a bug upstream; it is reported, and the place grants nothing.
type Rejection struct {
	Project string
	Place   broker.Place
	Reason  string
}

// Result is a compiled policy.
type Result struct {
	// Grants is the normalized union of all projects' places, sorted by
	// bucket, prefix and access.
	Grants []broker.Grant
	// Sets cover Grants: each grant index is in exactly one set.
	Sets []broker.PolicySet
	// ByProject is the validated input, deduplicated and sorted; projects
	// left with no place are dropped.
	ByProject map[string][]broker.Place
	// Expires holds the expiry of each time-bounded project of ByProject,
	// in UTC to the second.
	Expires map[string]time.Time
	// Version is a content hash of all of the above.
	Version  string
	Rejected []Rejection
}

func (c Compiler) partition() string { return cmp.Or(c.Partition, "aws") }
func (c Compiler) maxBytes() int     { return cmp.Or(c.MaxBytes, MaxPolicyBytes) }

// Compile validates, normalizes and packs the places each project grants.
// The same input in any order gives the same Result, byte for byte.
func (c Compiler) Compile(byProject map[string][]broker.Place) (Result, error) {
	return c.CompileBounded(byProject, nil)
}

// CompileBounded is Compile for projects some of which grant only until an
// instant (expires; a project absent from it, or zero, has no bound). Each
// grant carries the latest expiry of the projects giving it, none if any
// is unbounded (the union rule), and the session policy allows it only
// while aws:CurrentTime is before that expiry, truncated to the second.
// Whether an expiry has passed is the caller's to judge: a past one here
// still compiles, into a grant no request can use.
func (c Compiler) CompileBounded(byProject map[string][]broker.Place, expires map[string]time.Time) (Result, error) {
	var res Result
	res.ByProject = make(map[string][]broker.Place, len(byProject))
	total := 0
	for _, places := range byProject {
		total += len(places)
	}
	all := make([]broker.Grant, 0, total)
	runs := []int{0} // all[runs[i]:runs[i+1]] is one project's sorted grants
	projects := slices.Sorted(maps.Keys(byProject))
	for _, project := range projects {
		if err := broker.ValidateProjectID(project); err != nil {
			for _, pl := range byProject[project] {
				res.Rejected = append(res.Rejected, Rejection{project, pl, broker.MessageOf(err)})
			}
			continue
		}
		// The project's grants are built and normalized in place at the
		// end of all. They share one Projects slice: normalize copies
		// before it appends to one.
		attribution := []string{project}
		expiry := expires[project]
		if !expiry.IsZero() {
			expiry = expiry.UTC().Truncate(time.Second)
		}
		start := len(all)
		for _, pl := range byProject[project] {
			if reason := c.check(pl, expiry); reason != "" {
				res.Rejected = append(res.Rejected, Rejection{project, pl, reason})
				continue
			}
			all = append(all, broker.Grant{Bucket: pl.Bucket, Prefix: pl.Prefix, Access: pl.Access, Projects: attribution, ExpiresAt: expiry})
		}
		grants := normalize(all[start:])
		all = all[:start+len(grants)]
		if len(grants) == 0 {
			continue
		}
		places := make([]broker.Place, len(grants))
		for i, g := range grants {
			places[i] = g.Place()
		}
		res.ByProject[project] = places
		if !expiry.IsZero() {
			if res.Expires == nil {
				res.Expires = map[string]time.Time{}
			}
			res.Expires[project] = expiry
		}
		runs = append(runs, len(all))
	}
	slices.SortFunc(res.Rejected, func(a, b Rejection) int {
		return cmp.Or(cmp.Compare(a.Project, b.Project), cmp.Compare(a.Place.Bucket, b.Place.Bucket),
			cmp.Compare(a.Place.Prefix, b.Place.Prefix), cmp.Compare(a.Place.Access, b.Place.Access))
	})
	res.Grants = dedupe(mergeRuns(all, runs))
	sets, err := c.pack(res.Grants)
	if err != nil {
		return Result{}, err
	}
	res.Sets = sets
	res.Version = c.version(res, projects)
	return res, nil
}

// check returns why a place cannot be granted until expiry (zero: for
// ever), or "".
func (c Compiler) check(pl broker.Place, expiry time.Time) string {
	if err := broker.ValidateBucketName(pl.Bucket); err != nil {
		return broker.MessageOf(err)
	}
	if norm, err := broker.NormalizePrefix(pl.Prefix); err != nil {
		return broker.MessageOf(err)
	} else if norm != pl.Prefix {
		return "prefix is not normalized"
	}
	if !pl.Access.Valid() {
		return "unknown access level"
	}
	if !c.FitsAlone(pl.Bucket, pl.Prefix) {
		return "prefix too long: one grant of it would not fit in a session policy"
	}
	// The bound repeats in each statement of the grant: a folder near the
	// limit fits for ever but not for a while.
	if !expiry.IsZero() && c.aloneSize(pl.Bucket, pl.Prefix, broker.Write, expiryText(expiry)) > c.maxBytes() {
		return "prefix too long for a time-bounded grant: one grant of it with its expiry would not fit in a session policy"
	}
	return ""
}

// FitsAlone reports whether a write grant on bucket/prefix fits in a session
// policy on its own. A source record that fails this grants nothing: the
// contract allows 1,024-character prefixes, but a prefix appears twice in a
// policy (object ARN and listing condition) under a 2,048-character limit.
func (c Compiler) FitsAlone(bucket, prefix string) bool {
	return c.aloneSize(bucket, prefix, broker.Write, "") <= c.maxBytes()
}

// aloneSize is the size of a policy holding one grant, bounded until expiry
// (expiryText; "" for none): what unitOf computes for a one-grant unit,
// without building one.
func (c Compiler) aloneSize(bucket, prefix string, a broker.Access, expiry string) int {
	dateOver, dateExtra := dateLens(expiry)
	arnLen := c.arnPrefixLen() + len(bucket)
	obj := list{1, arnLen + 1 + quotedLen(prefix) + 1}
	body, stmts := stmtDelta(list{}, obj, readOver+dateOver)
	if a == broker.Write {
		body, stmts = stmtDelta(list{}, obj, writeOver+dateOver)
	}
	listing := listOver + dateOver
	if prefix != "" {
		listing = listOver + condOver + quotedLen(prefix) + 1 + dateExtra
	}
	lb, ls := stmtDelta(list{}, list{1, arnLen + 2}, listing)
	return docOverLen + body + lb + (stmts + ls - 1)
}

// normalize merges grants of the same place (union of projects) and drops
// every grant that another grant of the same bucket covers: same or wider
// prefix at the same or higher access. It works in place (the input is
// sorted and overwritten) and returns the result sorted.
func normalize(grants []broker.Grant) []broker.Grant {
	// The projector passes a project's buckets in DynamoDB's sort-key
	// order, so the sort is mostly a check.
	if !slices.IsSortedFunc(grants, compareGrants) {
		slices.SortFunc(grants, compareGrants)
	}
	return dedupe(grants)
}

// mergeRuns merges the sorted runs all[runs[i]:runs[i+1]] into one sorted
// slice, pairwise: O(n log k) comparisons for k projects instead of a sort's
// O(n log n).
func mergeRuns(all []broker.Grant, runs []int) []broker.Grant {
	if len(runs) <= 2 {
		return all
	}
	src, dst := all, make([]broker.Grant, len(all))
	for len(runs) > 2 {
		next := []int{0}
		for i := 0; i+1 < len(runs); i += 2 {
			lo, mid := runs[i], runs[i+1]
			hi := mid
			if i+2 < len(runs) {
				hi = runs[i+2]
			}
			a, b, k := lo, mid, lo
			for a < mid && b < hi {
				if compareGrants(src[b], src[a]) < 0 {
					dst[k], b = src[b], b+1
				} else {
					dst[k], a = src[a], a+1
				}
				k++
			}
			k += copy(dst[k:], src[a:mid])
			copy(dst[k:], src[b:hi])
			next = append(next, hi)
		}
		runs, src, dst = next, dst, src
	}
	return src
}

// dedupe is normalize on grants already sorted.
func dedupe(grants []broker.Grant) []broker.Grant {
	merged := grants[:0]
	for _, g := range grants {
		if n := len(merged); n > 0 && merged[n-1].Place() == g.Place() {
			// Clip so that appending never writes into an input's slice.
			merged[n-1].Projects = append(slices.Clip(merged[n-1].Projects), g.Projects...)
			merged[n-1].ExpiresAt = broker.LaterExpiry(merged[n-1].ExpiresAt, g.ExpiresAt)
			continue
		}
		merged = append(merged, g)
	}
	out := merged[:0]
	var drop []bool
	for start := 0; start < len(merged); {
		end := start + 1
		for end < len(merged) && merged[end].Bucket == merged[start].Bucket {
			end++
		}
		// Decide for the whole run before writing: out may overwrite it.
		run := merged[start:end]
		drop = drop[:0]
		for i := range run {
			drop = append(drop, covered(i, run))
		}
		for i, g := range run {
			if drop[i] {
				continue
			}
			if len(g.Projects) > 1 {
				slices.Sort(g.Projects)
				g.Projects = slices.Compact(g.Projects)
			}
			out = append(out, g)
		}
		start = end
	}
	return out
}

// covered reports whether another grant of the same bucket covers run[i],
// for at least as long.
func covered(i int, run []broker.Grant) bool {
	g := run[i]
	for j, o := range run {
		if j != i && strings.HasPrefix(g.Prefix, o.Prefix) && o.Access.Covers(g.Access) && broker.Lasts(o.ExpiresAt, g.ExpiresAt) {
			return true
		}
	}
	return false
}

func compareGrants(a, b broker.Grant) int {
	if c := strings.Compare(a.Bucket, b.Bucket); c != 0 {
		return c
	}
	if c := strings.Compare(a.Prefix, b.Prefix); c != 0 {
		return c
	}
	return strings.Compare(string(a.Access), string(b.Access))
}

// compilerVersion names the policy layout. The policies are a function of
// the grants, the partition, the size limit and this layout, so the version
// hashes those instead of the policy text; change it whenever the layout
// changes, so that every user's version (and cached credential) changes too.
const compilerVersion = "credbroker/policy/v1"

// version hashes everything the result depends on; projects are the keys
// of r.ByProject (or a superset), sorted.
func (c Compiler) version(r Result, projects []string) string {
	h := sha256.New()
	b := make([]byte, 0, 512) // one line at a time, written to the hash
	flush := func() { h.Write(b); b = b[:0] }
	b = append(b, compilerVersion...)
	b = append(append(append(b, 0), c.partition()...), 0)
	b = strconv.AppendInt(b, int64(c.maxBytes()), 10)
	b = append(b, '\n')
	flush()
	for _, g := range r.Grants {
		b = appendPlace(b, g.Place())
		for _, p := range g.Projects {
			b = append(append(b, p...), 1)
		}
		// Only a bound adds to the hash: unbounded grants keep the
		// versions they had before expiries existed.
		if !g.ExpiresAt.IsZero() {
			b = append(strconv.AppendInt(append(b, 2), g.ExpiresAt.Unix(), 10), 2)
		}
		b = append(b, '\n')
		flush()
	}
	for _, p := range projects {
		places, ok := r.ByProject[p]
		if !ok {
			continue
		}
		b = append(b, p...)
		if e, ok := r.Expires[p]; ok {
			b = strconv.AppendInt(append(b, 2), e.Unix(), 10)
		}
		b = append(b, '\n')
		for _, pl := range places {
			b = append(appendPlace(b, pl), '\n')
			flush()
		}
	}
	var sum [sha256.Size]byte
	return "v1." + base64.RawURLEncoding.EncodeToString(h.Sum(sum[:0])[:15])
}

func appendPlace(b []byte, pl broker.Place) []byte {
	b = append(append(b, pl.Bucket...), 0)
	b = append(append(b, pl.Prefix...), 0)
	return append(append(b, pl.Access...), 0)
}
