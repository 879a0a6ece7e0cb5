package policy

import (
	"cmp"
	"maps"
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

	alone int // size of a policy holding only this unit
}

func (c Compiler) arnPrefixLen() int { return len("arn:") + len(c.partition()) + len(":s3:::") }

func (c Compiler) unitOf(grants []broker.Grant, idx []int) *unit {
	u := &unit{bucket: grants[idx[0]].Bucket, grants: idx}
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
		u.condKey = strings.Join(prefixes, "\x00")
	}
	u.alone = (&packSet{}).sizeWith(u)
	return u
}

// packSet is one policy being filled, kept as counts so that the size of
// adding a unit costs O(1).
type packSet struct {
	read, write, whole list
	groups             map[string]list // prefix-listing resources by condKey
	body, stmts        int
	buckets            map[string]bool
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
	step := func(cur *list, inc list, over int) {
		db, ds := stmtDelta(*cur, inc, over)
		body, stmts = body+db, stmts+ds
		if commit {
			*cur = cur.plus(inc)
		}
	}
	step(&s.read, u.read, readOver)
	step(&s.write, u.write, writeOver)
	if u.whole {
		step(&s.whole, u.arn, listOver)
	} else {
		g := s.groups[u.condKey]
		step(&g, u.arn, listOver+condOver+u.condLen)
		if commit {
			if s.groups == nil {
				s.groups = map[string]list{}
			}
			s.groups[u.condKey] = g
		}
	}
	if commit {
		s.body, s.stmts = body, stmts
		if s.buckets == nil {
			s.buckets = map[string]bool{}
		}
		s.buckets[u.bucket] = true
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
	for start := 0; start < len(grants); {
		end := start + 1
		for end < len(grants) && grants[end].Bucket == grants[start].Bucket {
			end++
		}
		idx := make([]int, end-start)
		for i := range idx {
			idx[i] = start + i
		}
		if u := c.unitOf(grants, idx); u.alone <= limit {
			units = append(units, u)
		} else {
			units = append(units, c.chunks(grants, idx, limit)...)
		}
		start = end
	}
	slices.SortStableFunc(units, func(a, b *unit) int {
		return cmp.Or(cmp.Compare(b.alone, a.alone), cmp.Compare(a.grants[0], b.grants[0]))
	})
	var sets []*packSet
	for _, u := range units {
		i := slices.IndexFunc(sets, func(s *packSet) bool { return !s.buckets[u.bucket] && s.sizeWith(u) <= limit })
		if i < 0 {
			sets = append(sets, &packSet{})
			i = len(sets) - 1
		}
		sets[i].add(u)
	}
	out := make([]broker.PolicySet, len(sets))
	for i, s := range sets {
		ps := c.render(s, grants)
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
	return append(out, c.unitOf(grants, cur))
}

// render writes a set's policy with every list sorted, so equal sets render
// equal bytes.
func (c Compiler) render(s *packSet, grants []broker.Grant) broker.PolicySet {
	arnPrefix := "arn:" + c.partition() + ":s3:::"
	var read, write, whole []string
	groups := map[string][]string{}
	var idx []int
	for _, u := range s.units {
		bucketARN := arnPrefix + u.bucket
		for _, i := range u.grants {
			obj := bucketARN + "/" + grants[i].Prefix + "*"
			if grants[i].Access == broker.Write {
				write = append(write, obj)
			} else {
				read = append(read, obj)
			}
		}
		if u.whole {
			whole = append(whole, bucketARN)
		} else {
			groups[u.condKey] = append(groups[u.condKey], bucketARN)
		}
		idx = append(idx, u.grants...)
	}
	var b strings.Builder
	b.Grow(docOverLen + s.body + s.stmts)
	b.WriteString(docOpen)
	n := 0
	stmt := func(open string, res []string, conds []string) {
		if len(res) == 0 {
			return
		}
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		slices.Sort(res)
		b.WriteString(open)
		writeList(&b, res)
		if conds != nil {
			b.WriteString(condOpen)
			writeList(&b, conds)
			b.WriteString(condClose)
		}
		b.WriteString(stmtClose)
	}
	stmt(readOpen, read, nil)
	stmt(writeOpen, write, nil)
	stmt(listOpen, whole, nil)
	for _, key := range slices.Sorted(maps.Keys(groups)) {
		conds := strings.Split(key, "\x00")
		for i := range conds {
			conds[i] += "*"
		}
		stmt(listOpen, groups[key], conds)
	}
	b.WriteString(docClose)
	slices.Sort(idx)
	return broker.PolicySet{Policy: b.String(), Grants: idx}
}
