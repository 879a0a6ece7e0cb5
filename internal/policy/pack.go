package policy

import (
	"cmp"
	"slices"
	"strings"

	"github.com/credbroker/credbroker/internal/broker"
)

// Statement overheads: everything in a statement but its resource list.
var (
	readOver  = len(readOpen) + len(stmtClose)
	writeOver = len(writeOpen) + len(stmtClose)
	listOver  = len(listOpen) + len(stmtClose)
	condOver  = len(condOpen) + len(condClose)
)

// unit is what the packer places: the grants of one bucket that end at the
// same instant, or never (or, for such grants too large for one policy, a
// chunk of them). Keeping them together lets their listing statement serve
// all their prefixes. Units hold lengths only; the strings are built once,
// when a set is rendered.
type unit struct {
	bucket string
	grants []int // indexes into the compiled grants

	// expiry is the grants' bound as the policy writes it ("" for none);
	// class is its index among the expiries of the compile (interned by
	// pack; 0 for a unit sized alone). dateOver and dateExtra are what the
	// bound adds to each statement (dateLens).
	expiry              string
	class               int
	dateOver, dateExtra int

	read, write list // object ARNs by access level
	arn         list // the bucket ARN as one list element
	// whole: listed without condition. Otherwise listed under the prefixes
	// in condKey (joined by NUL), which identifies that exact prefix set so
	// that buckets with the same set share a statement.
	whole   bool
	condKey string
	condLen int
	// group is condKey interned by pack (an index into its key list), so
	// that sizing a unit against a set costs no string hashing.
	group int
	// chunk marks part of a bucket split over sets.
	chunk bool

	alone int // size of a policy holding only this unit
}

func (c Compiler) arnPrefixLen() int { return len("arn:") + len(c.partition()) + len(":s3:::") }

func (c Compiler) unitOf(grants []broker.Grant, idx []int) *unit {
	return c.fillUnit(&unit{}, grants, idx)
}

// fillUnit computes u for the grants idx (the packer allocates units in
// one slice).
func (c Compiler) fillUnit(u *unit, grants []broker.Grant, idx []int) *unit {
	*u = unit{bucket: grants[idx[0]].Bucket, grants: idx, expiry: expiryText(grants[idx[0]].ExpiresAt)}
	u.dateOver, u.dateExtra = dateLens(u.expiry)
	arnLen := c.arnPrefixLen() + len(u.bucket) // bucket names need no escaping
	u.arn = list{1, arnLen + 2}
	var prefixes []string
	for _, i := range idx {
		g := grants[i]
		// "<arn>/<prefix>*" quoted: the prefix's quoted length already counts the quotes.
		obj := list{1, arnLen + 1 + quotedLen(g.Prefix) + 1}
		if g.Access == broker.Write {
			u.write = u.write.plus(obj)
		} else {
			u.read = u.read.plus(obj)
		}
		if g.Prefix == "" {
			u.whole = true
		}
		prefixes = append(prefixes, g.Prefix)
	}
	if !u.whole {
		slices.Sort(prefixes)
		prefixes = slices.Compact(prefixes)
		var cl list
		for _, p := range prefixes {
			cl = cl.plus(list{1, quotedLen(p) + 1}) // p + "*"
		}
		u.condLen = cl.len()
		if len(prefixes) == 1 {
			u.condKey = prefixes[0]
		} else {
			u.condKey = strings.Join(prefixes, "\x00")
		}
	}
	u.alone = (&packSet{}).sizeWith(u)
	return u
}

// packSet is one policy being filled, kept as counts so that the size of
// adding a unit costs O(1).
type packSet struct {
	classes     []classLists // by unit class (expiry)
	groups      []list       // prefix-listing resources by unit group
	body, stmts int
	chunked     map[string]bool // buckets with a chunk in this set
	units       []*unit
}

// classLists are the resources of the statements of one expiry class.
type classLists struct{ read, write, whole list }

// stmtDelta is what adding inc to a statement's resource list cur costs.
func stmtDelta(cur, inc list, over int) (body, stmts int) {
	switch {
	case inc.n == 0:
		return 0, 0
	case cur.n == 0:
		return over + inc.len(), 1
	default:
		return cur.plus(inc).len() - cur.len(), 0
	}
}

func (s *packSet) apply(u *unit, commit bool) int {
	body, stmts := s.body, s.stmts
	var cls classLists
	if u.class < len(s.classes) {
		cls = s.classes[u.class]
	}
	db, ds := stmtDelta(cls.read, u.read, readOver+u.dateOver)
	body, stmts = body+db, stmts+ds
	db, ds = stmtDelta(cls.write, u.write, writeOver+u.dateOver)
	body, stmts = body+db, stmts+ds
	var group list
	if u.whole {
		db, ds = stmtDelta(cls.whole, u.arn, listOver+u.dateOver)
	} else {
		if u.group < len(s.groups) {
			group = s.groups[u.group]
		}
		db, ds = stmtDelta(group, u.arn, listOver+condOver+u.condLen+u.dateExtra)
	}
	body, stmts = body+db, stmts+ds
	if commit {
		if u.class >= len(s.classes) {
			s.classes = append(s.classes, make([]classLists, u.class+1-len(s.classes))...)
		}
		c := &s.classes[u.class]
		c.read, c.write = c.read.plus(u.read), c.write.plus(u.write)
		if u.whole {
			c.whole = c.whole.plus(u.arn)
		} else {
			if u.group >= len(s.groups) {
				s.groups = append(s.groups, make([]list, u.group+1-len(s.groups))...)
			}
			s.groups[u.group] = group.plus(u.arn)
		}
		s.body, s.stmts = body, stmts
		if u.chunk {
			if s.chunked == nil {
				s.chunked = map[string]bool{}
			}
			s.chunked[u.bucket] = true
		}
		s.units = append(s.units, u)
	}
	return docOverLen + body + max(stmts-1, 0)
}

func (s *packSet) sizeWith(u *unit) int { return s.apply(u, false) }
func (s *packSet) add(u *unit)          { s.apply(u, true) }

// pack places units first-fit in decreasing size order. When everything fits
// in one policy this yields one set, because a policy only grows as units
// are added. Bin packing is NP-hard; first-fit decreasing uses at most
// 11/9 of the optimal number of sets plus one.
func (c Compiler) pack(grants []broker.Grant) ([]broker.PolicySet, error) {
	limit := c.maxBytes()
	var units []*unit
	store := make([]unit, 0, len(grants)) // one allocation for all plain units
	allIdx := make([]int, len(grants))
	for i := range allIdx {
		allIdx[i] = i
	}
	for start := 0; start < len(grants); {
		end := start + 1
		for end < len(grants) && grants[end].Bucket == grants[start].Bucket {
			end++
		}
		place := func(idx []int) {
			store = append(store, unit{})
			if u := c.fillUnit(&store[len(store)-1], grants, idx); u.alone <= limit {
				units = append(units, u)
			} else {
				units = append(units, c.chunks(grants, idx, limit)...)
			}
		}
		if idx := allIdx[start:end:end]; oneExpiry(grants, idx) {
			place(idx)
		} else {
			for _, idx := range byExpiry(grants, idx) {
				place(idx)
			}
		}
		start = end
	}
	// Intern expiries in time order, none first (class 0, whether or not a
	// unit has none), and prefix sets (with their expiry: a bound is part
	// of the statement) in order of first appearance: both deterministic.
	classKeys := []string{""}
	for _, u := range units {
		if u.expiry != "" {
			classKeys = append(classKeys, u.expiry)
		}
	}
	if len(classKeys) > 1 {
		slices.Sort(classKeys)
		classKeys = slices.Compact(classKeys)
	}
	groupOf := map[string]int{}
	var groupKeys []string
	for _, u := range units {
		if u.expiry != "" {
			u.class, _ = slices.BinarySearch(classKeys, u.expiry)
		}
		if u.whole {
			continue
		}
		key := u.condKey
		if u.expiry != "" {
			key = u.expiry + "\x01" + u.condKey
		}
		g, ok := groupOf[key]
		if !ok {
			g = len(groupKeys)
			groupOf[key] = g
			groupKeys = append(groupKeys, key)
		}
		u.group = g
	}
	// alone, then the first grant: a total order, so the result does not
	// depend on the sort's stability.
	slices.SortFunc(units, func(a, b *unit) int {
		return cmp.Or(cmp.Compare(b.alone, a.alone), cmp.Compare(a.grants[0], b.grants[0]))
	})
	var sets []*packSet
	for _, u := range units {
		i := slices.IndexFunc(sets, func(s *packSet) bool { return !(u.chunk && s.chunked[u.bucket]) && s.sizeWith(u) <= limit })
		if i < 0 {
			sets = append(sets, &packSet{})
			i = len(sets) - 1
		}
		sets[i].add(u)
	}
	out := make([]broker.PolicySet, len(sets))
	for i, s := range sets {
		ps := c.render(s, grants, classKeys, groupKeys)
		if want := docOverLen + s.body + max(s.stmts-1, 0); len(ps.Policy) != want || want > limit {
			return nil, broker.Errorf(broker.Internal, "compile policy", "set %d renders %d bytes, size model says %d (limit %d)", i, len(ps.Policy), want, limit)
		}
		out[i] = ps
	}
	return out, nil
}

// oneExpiry reports whether the grants idx all end at the same instant,
// or never (the common case, which byExpiry need not split).
func oneExpiry(grants []broker.Grant, idx []int) bool {
	first := grants[idx[0]].ExpiresAt
	return !slices.ContainsFunc(idx, func(i int) bool { return !grants[i].ExpiresAt.Equal(first) })
}

// byExpiry splits the indexes of one bucket's grants by expiry, in time
// order (none first).
func byExpiry(grants []broker.Grant, idx []int) [][]int {
	sorted := slices.Clone(idx)
	slices.SortStableFunc(sorted, func(a, b int) int {
		return cmp.Compare(expiryText(grants[a].ExpiresAt), expiryText(grants[b].ExpiresAt))
	})
	var out [][]int
	for start := 0; start < len(sorted); {
		end := start + 1
		for end < len(sorted) && grants[sorted[end]].ExpiresAt.Equal(grants[sorted[start]].ExpiresAt) {
			end++
		}
		out = append(out, sorted[start:end:end])
		start = end
	}
	return out
}

// chunks splits the grants of one bucket that do not fit in one policy into
// units that each do; the packer keeps chunks of a bucket in separate sets.
func (c Compiler) chunks(grants []broker.Grant, idx []int, limit int) []*unit {
	var out []*unit
	var cur []int
	for _, i := range idx {
		next := append(slices.Clone(cur), i)
		if len(cur) > 0 && c.unitOf(grants, next).alone > limit {
			out = append(out, c.unitOf(grants, cur))
			next = []int{i}
		}
		cur = next
	}
	out = append(out, c.unitOf(grants, cur))
	for _, u := range out {
		u.chunk = true
	}
	return out
}

// render writes a set's policy. Lists follow the canonical order of the
// grants (bucket, prefix, access) and prefix-listing statements the order
// of their prefix sets, so equal sets render equal bytes; ARNs are written
// straight into the policy, never built as strings.
func (c Compiler) render(s *packSet, grants []broker.Grant, classKeys, groupKeys []string) broker.PolicySet {
	idx := make([]int, 0, 8)
	for _, u := range s.units {
		idx = append(idx, u.grants...)
	}
	slices.Sort(idx)
	units := slices.Clone(s.units)
	slices.SortFunc(units, func(a, b *unit) int { return cmp.Compare(a.grants[0], b.grants[0]) })

	w := &policyWriter{arnPrefix: "arn:" + c.partition() + ":s3:::"}
	w.b.Grow(docOverLen + s.body + s.stmts)
	w.b.WriteString(docOpen)
	for class, cl := range s.classes {
		if cl == (classLists{}) {
			continue
		}
		expiry := classKeys[class]
		for _, level := range []struct {
			head   string
			access broker.Access
		}{{readOpen, broker.Read}, {writeOpen, broker.Write}} {
			refs := w.refs[:0]
			for _, i := range idx {
				if grants[i].Access == level.access && expiryText(grants[i].ExpiresAt) == expiry {
					refs = append(refs, resource{bucket: grants[i].Bucket, prefix: grants[i].Prefix, object: true})
				}
			}
			w.statement(level.head, refs, nil, expiry)
		}
		refs := w.refs[:0]
		for _, u := range units {
			if u.whole && u.class == class {
				refs = append(refs, resource{bucket: u.bucket})
			}
		}
		w.statement(listOpen, refs, nil, expiry)
	}

	var groups []int
	for g, l := range s.groups {
		if l.n > 0 {
			groups = append(groups, g)
		}
	}
	slices.SortFunc(groups, func(a, b int) int { return strings.Compare(groupKeys[a], groupKeys[b]) })
	for _, g := range groups {
		refs := w.refs[:0]
		for _, u := range units {
			if !u.whole && u.group == g {
				refs = append(refs, resource{bucket: u.bucket})
			}
		}
		// Prefixes hold no control character (validation): a key with
		// "\x01" is a bounded group's.
		expiry, prefixes, bounded := strings.Cut(groupKeys[g], "\x01")
		if !bounded {
			expiry, prefixes = "", groupKeys[g]
		}
		w.statement(listOpen, refs, strings.Split(prefixes, "\x00"), expiry)
	}
	w.b.WriteString(docClose)
	return broker.PolicySet{Policy: w.b.String(), Grants: idx}
}

// resource is one ARN of a statement's list: a bucket, or (object) the
// objects under prefix in it.
type resource struct {
	bucket, prefix string
	object         bool
}

// policyWriter writes a policy document one statement at a time.
type policyWriter struct {
	b         strings.Builder
	arnPrefix string
	n         int        // statements written
	refs      []resource // scratch space for one statement's resources
}

// statement writes one statement of refs, if there are any, with a
// condition on the listed prefixes when prefixes is not nil and one on
// aws:CurrentTime when expiry is not "". A list of one is written as a bare
// string, as the size model counts it.
func (w *policyWriter) statement(head string, refs []resource, prefixes []string, expiry string) {
	w.refs = refs
	if len(refs) == 0 {
		return
	}
	if w.n > 0 {
		w.b.WriteByte(',')
	}
	w.n++
	w.b.WriteString(head)
	w.list(len(refs), func(i int) {
		w.b.WriteString(w.arnPrefix)
		w.b.WriteString(refs[i].bucket)
		if refs[i].object {
			w.b.WriteByte('/')
			writeEscaped(&w.b, refs[i].prefix)
			w.b.WriteByte('*')
		}
	})
	switch {
	case prefixes != nil:
		w.b.WriteString(condOpen)
		w.list(len(prefixes), func(i int) {
			writeEscaped(&w.b, prefixes[i])
			w.b.WriteByte('*')
		})
		if expiry == "" {
			w.b.WriteString(condClose)
			break
		}
		w.b.WriteString(dateJoin)
		w.b.WriteString(expiry)
		w.b.WriteString(dateClose)
	case expiry != "":
		w.b.WriteString(dateOpen)
		w.b.WriteString(expiry)
		w.b.WriteString(dateClose)
	}
	w.b.WriteString(stmtClose)
}

// list writes n quoted strings, each written by item, as a JSON list.
func (w *policyWriter) list(n int, item func(i int)) {
	if n > 1 {
		w.b.WriteByte('[')
	}
	for i := range n {
		if i > 0 {
			w.b.WriteByte(',')
		}
		w.b.WriteByte('"')
		item(i)
		w.b.WriteByte('"')
	}
	if n > 1 {
		w.b.WriteByte(']')
	}
}
