package policy

import (
	"strings"
	"time"
	"unicode/utf8"
)

// A session policy is laid out as at most four kinds of statement, so that
// every grant in a set shares statements with the others. The actions of
// each access level (docs/contract.md "Access levels") appear in the statement
// openings below and nowhere else:
//
//	read objects   {"Effect":"Allow","Action":"s3:GetObject","Resource":[...]}
//	write objects  {"Effect":"Allow","Action":[Get,Put,Delete,Abort],"Resource":[...]}
//	whole listing  {"Effect":"Allow","Action":"s3:ListBucket","Resource":[...]}
//	prefix listing {"Effect":"Allow","Action":"s3:ListBucket","Resource":[...],
//	                "Condition":{"StringLike":{"s3:prefix":["raw/*",...]}}}
//
// There is one prefix-listing statement per distinct set of prefixes, shared by
// every bucket listed under exactly that set; a condition list is never shared
// by buckets whose grants differ, since that would let one bucket be listed
// under another's prefixes.
//
// Time-bounded grants (docs/contract.md "Source records", expiresAt) get the same four
// kinds of statement once per expiry, each with the bound as a condition, so
// every grant ending at the same instant shares them:
//
//	{"Effect":"Allow","Action":"s3:GetObject","Resource":[...],
//	 "Condition":{"DateLessThan":{"aws:CurrentTime":"2026-12-31T18:00:00Z"}}}
//	{... "Condition":{"StringLike":{"s3:prefix":[...]},"DateLessThan":{"aws:CurrentTime":"..."}}}
//
// Grants with no expiry come first, as they were before expiries existed.
//
// The packer needs the size of a set before it renders it, so sizes are
// computed from counts (see listLen) and checked against the rendering in tests.
const (
	docOpen  = `{"Version":"2012-10-17","Statement":[`
	docClose = `]}`

	readOpen   = `{"Effect":"Allow","Action":"s3:GetObject","Resource":`
	writeOpen  = `{"Effect":"Allow","Action":["s3:GetObject","s3:PutObject","s3:DeleteObject","s3:AbortMultipartUpload"],"Resource":`
	listOpen   = `{"Effect":"Allow","Action":"s3:ListBucket","Resource":`
	stmtClose  = `}`
	condOpen   = `,"Condition":{"StringLike":{"s3:prefix":`
	condClose  = `}}`
	docOverLen = len(docOpen) + len(docClose)

	dateOpen  = `,"Condition":{"DateLessThan":{"aws:CurrentTime":"` // a bound alone
	dateJoin  = `},"DateLessThan":{"aws:CurrentTime":"`             // a bound after a StringLike
	dateClose = `"}}`
)

// expiryText is an expiry as the policy writes it: UTC, to the second
// (2026-12-31T18:00:00Z); "" for none. Callers truncate, never round up.
func expiryText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// dateLens are what a bound until expiry ("" for none) adds to a statement
// with no other condition (over) and to a prefix-listing one (extra).
func dateLens(expiry string) (over, extra int) {
	if expiry == "" {
		return 0, 0
	}
	return len(dateOpen) + len(expiry) + len(dateClose), len(dateJoin) + len(expiry) + len(dateClose) - len(condClose)
}

// list is a JSON string list as a policy writes it: a bare string when it has
// one element, an array otherwise. n is the element count and sum the total
// length of the encoded elements with their quotes.
type list struct{ n, sum int }

func (l list) len() int {
	switch l.n {
	case 0:
		return 0
	case 1:
		return l.sum
	default:
		return l.sum + (l.n - 1) + 2 // commas and brackets
	}
}

func (l list) plus(o list) list { return list{l.n + o.n, l.sum + o.sum} }

// quotedLen is the length of s as a JSON string, quotes included, as
// writeQuoted writes it.
func quotedLen(s string) int {
	n := 2
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			n += 2
		case r < utf8.RuneSelf:
			n++
		case r <= 0xFFFF:
			n += 6
		default:
			n += 12 // surrogate pair
		}
	}
	return n
}

// writeEscaped writes s as the inside of a JSON string using only printable
// ASCII: IAM's policy grammar accepts characters up to U+00FF only, so
// everything beyond ASCII is written as \u escapes. Input never holds
// control characters (validation refuses them). quotedLen counts exactly
// what this writes, plus two quotes.
func writeEscaped(b *strings.Builder, s string) {
	const hex = "0123456789abcdef"
	u4 := func(r rune) {
		b.WriteString(`\u`)
		b.WriteByte(hex[r>>12&0xF])
		b.WriteByte(hex[r>>8&0xF])
		b.WriteByte(hex[r>>4&0xF])
		b.WriteByte(hex[r&0xF])
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c == '"' || c == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if r <= 0xFFFF {
			u4(r)
		} else {
			r -= 0x10000
			u4(0xD800 + r>>10)
			u4(0xDC00 + r&0x3FF)
		}
	}
}
