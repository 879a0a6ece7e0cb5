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

// unit is what the packer places: the grants of one bucket (or, for a bucket
// too large for one policy, a chunk of them). Keeping a bucket together lets
// its listing statement serve all its prefixes. Units hold lengths only; the
// strings are built once, when a set is rendered.
type unit struct {
	bucket string
	grants []int // indexes into the compiled grants

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
	*u = unit{bucket: grants[idx[0]].Bucket, grants: idx}
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
	read, write, whole list
	groups             []list // prefix-listing resources by unit group
	body, stmts        int
	chunked            map[string]bool // buckets with a chunk in this set
	units              []*unit
}

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
	db, ds := stmtDelta(s.read, u.read, readOver)
	body, stmts = body+db, stmts+ds
	db, ds = stmtDelta(s.write, u.write, writeOver)
	body, stmts = body+db, stmts+ds
	var group list
	if u.whole {
		db, ds = stmtDelta(s.whole, u.arn, listOver)
	} else {
		if u.group < len(s.groups) {
			group = s.groups[u.group]
		}
		db, ds = stmtDelta(group, u.arn, listOver+condOver+u.condLen)
	}
	body, stmts = body+db, stmts+ds
	if commit {
		s.read, s.write = s.read.plus(u.read), s.write.plus(u.write)
		if u.whole {
			s.whole = s.whole.plus(u.arn)
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
		idx := allIdx[start:end:end]
		store = append(store, unit{})
		if u := c.fillUnit(&store[len(store)-1], grants, idx); u.alone <= limit {
			units = append(units, u)
		} else {
			units = append(units, c.chunks(grants, idx, limit)...)
		}
		start = end
	}
	// Intern prefix sets in order of first appearance (deterministic).
	groupOf := map[string]int{}
	var groupKeys []string
	for _, u := range units {
		if u.whole {
			continue
		}
		g, ok := groupOf[u.condKey]
		if !ok {
			g = len(groupKeys)
			groupOf[u.condKey] = g
			groupKeys = append(groupKeys, u.condKey)
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
		ps := c.render(s, grants, groupKeys)
		if want := docOverLen + s.body + max(s.stmts-1, 0); len(ps.Policy) != want || want > limit {
			return nil, broker.Errorf(broker.Internal, "compile policy", "set %d renders %d bytes, size model says %d (limit %d)", i, len(ps.Policy), want, limit)
		}
		out[i] = ps
	}
	return out, nil
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
func (c Compiler) render(s *packSet, grants []broker.Grant, groupKeys []string) broker.PolicySet {
	idx := make([]int, 0, 8)
	for _, u := range s.units {
		idx = append(idx, u.grants...)
	}
	slices.Sort(idx)
	units := slices.Clone(s.units)
	slices.SortFunc(units, func(a, b *unit) int { return cmp.Compare(a.grants[0], b.grants[0]) })

	arnPrefix := "arn:" + c.partition() + ":s3:::"
	var b strings.Builder
	b.Grow(docOverLen + s.body + s.stmts)
	b.WriteString(docOpen)
	n := 0
	open := func(head string) {
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		b.WriteString(head)
	}
	// items writes a resource list of count elements from write(i, sep).
	items := func(count int, each func(func(arn, prefix string, object bool))) {
		if count > 1 {
			b.WriteByte('[')
		}
		first := true
		each(func(bucket, prefix string, object bool) {
			if !first {
				b.WriteByte(',')
			}
			first = false
			b.WriteByte('"')
			b.WriteString(arnPrefix)
			b.WriteString(bucket)
			if object {
				b.WriteByte('/')
				writeEscaped(&b, prefix)
				b.WriteByte('*')
			}
			b.WriteByte('"')
		})
		if count > 1 {
			b.WriteByte(']')
		}
	}
	objects := func(head string, l list, access broker.Access) {
		if l.n == 0 {
			return
		}
		open(head)
		items(l.n, func(emit func(string, string, bool)) {
			for _, i := range idx {
				if grants[i].Access == access {
					emit(grants[i].Bucket, grants[i].Prefix, true)
				}
			}
		})
		b.WriteString(stmtClose)
	}
	objects(readOpen, s.read, broker.Read)
	objects(writeOpen, s.write, broker.Write)
	if s.whole.n > 0 {
		open(listOpen)
		items(s.whole.n, func(emit func(string, string, bool)) {
			for _, u := range units {
				if u.whole {
					emit(u.bucket, "", false)
				}
			}
		})
		b.WriteString(stmtClose)
	}
	var groups []int
	for g, l := range s.groups {
		if l.n > 0 {
			groups = append(groups, g)
		}
	}
	slices.SortFunc(groups, func(a, b int) int { return strings.Compare(groupKeys[a], groupKeys[b]) })
	for _, g := range groups {
		key := groupKeys[g]
		open(listOpen)
		items(s.groups[g].n, func(emit func(string, string, bool)) {
			for _, u := range units {
				if !u.whole && u.group == g {
					emit(u.bucket, "", false)
				}
			}
		})
		b.WriteString(condOpen)
		conds := strings.Split(key, "\x00")
		if len(conds) > 1 {
			b.WriteByte('[')
		}
		for i, p := range conds {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('"')
			writeEscaped(&b, p)
			b.WriteString(`*"`)
		}
		if len(conds) > 1 {
			b.WriteByte(']')
		}
		b.WriteString(condClose)
		b.WriteString(stmtClose)
	}
	b.WriteString(docClose)
	return broker.PolicySet{Policy: b.String(), Grants: idx}
}
