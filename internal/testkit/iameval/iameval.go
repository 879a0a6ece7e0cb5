// Package iameval evaluates the small subset of IAM policy grammar that the
// policy compiler emits, so that tests can check what a compiled session
// policy allows without AWS. It is deliberately strict: any element outside
// the subset is a parse error, never silently ignored.
//
// Supported: Version, Statement (object or list) with Effect Allow|Deny,
// Action and Resource (string or list, '*' and '?' wildcards; actions match
// case-insensitively), Sid, and Condition with StringEquals, StringLike,
// StringNotEquals, Bool, DateLessThan (RFC 3339 times) and Null ("true"
// holds when the key is absent, "false" when present); several keys are
// ANDed, the values of one key ORed; a key absent from the request fails
// its condition, except StringNotEquals, which holds when the key is absent
// or equals none of the values, as IAM's negated operators do, and Null. An
// explicit Deny wins over any Allow. Session evaluates a role session: the
// role's policies and the session policy together; Role adds the role's
// permissions boundary.
package iameval

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Request is one API call to authorize.
type Request struct {
	Action   string            // e.g. "s3:GetObject"
	Resource string            // e.g. "arn:aws:s3:::bucket/key"
	Context  map[string]string // condition keys, e.g. "s3:prefix"
}

// Policy is a parsed policy document.
type Policy struct {
	Statements []Statement
}

// Statement is one parsed statement.
type Statement struct {
	Effect     string
	Actions    []string
	Resources  []string
	Conditions []Condition
}

// Condition is one operator/key pair with its alternative values.
type Condition struct {
	Operator string
	Key      string
	Values   []string
}

type rawDoc struct {
	Version   string          `json:"Version"`
	Statement json.RawMessage `json:"Statement"`
}

type rawStatement struct {
	Sid       string                                `json:"Sid"`
	Effect    string                                `json:"Effect"`
	Action    json.RawMessage                       `json:"Action"`
	Resource  json.RawMessage                       `json:"Resource"`
	Condition map[string]map[string]json.RawMessage `json:"Condition"`
}

// Parse parses a policy document in the supported subset.
func Parse(doc string) (Policy, error) {
	var raw rawDoc
	if err := strictDecode([]byte(doc), &raw); err != nil {
		return Policy{}, fmt.Errorf("policy: %w", err)
	}
	if raw.Version != "2012-10-17" {
		return Policy{}, fmt.Errorf("policy: Version %q, want 2012-10-17", raw.Version)
	}
	var raws []rawStatement
	if bytes.HasPrefix(bytes.TrimSpace(raw.Statement), []byte("{")) {
		var one rawStatement
		if err := strictDecode(raw.Statement, &one); err != nil {
			return Policy{}, fmt.Errorf("statement: %w", err)
		}
		raws = []rawStatement{one}
	} else if err := strictDecode(raw.Statement, &raws); err != nil {
		return Policy{}, fmt.Errorf("statements: %w", err)
	}
	var p Policy
	for i, rs := range raws {
		st := Statement{Effect: rs.Effect}
		if st.Effect != "Allow" && st.Effect != "Deny" {
			return Policy{}, fmt.Errorf("statement %d: Effect %q", i, rs.Effect)
		}
		var err error
		if st.Actions, err = stringOrList(rs.Action); err != nil || len(st.Actions) == 0 {
			return Policy{}, fmt.Errorf("statement %d: Action: %v", i, orEmpty(err))
		}
		if st.Resources, err = stringOrList(rs.Resource); err != nil || len(st.Resources) == 0 {
			return Policy{}, fmt.Errorf("statement %d: Resource: %v", i, orEmpty(err))
		}
		for op, keys := range rs.Condition {
			if !slices.Contains([]string{"StringEquals", "StringLike", "StringNotEquals", "Bool", "DateLessThan", "Null"}, op) {
				return Policy{}, fmt.Errorf("statement %d: unsupported condition operator %q", i, op)
			}
			for key, rawVals := range keys {
				vals, err := stringOrList(rawVals)
				if err != nil || len(vals) == 0 {
					return Policy{}, fmt.Errorf("statement %d: condition %s %s: %v", i, op, key, orEmpty(err))
				}
				st.Conditions = append(st.Conditions, Condition{Operator: op, Key: key, Values: vals})
			}
		}
		p.Statements = append(p.Statements, st)
	}
	return p, nil
}

func orEmpty(err error) error {
	if err == nil {
		return fmt.Errorf("empty")
	}
	return err
}

func strictDecode(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return fmt.Errorf("trailing data")
	}
	return nil
}

func stringOrList(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, fmt.Errorf("want a string or a list of strings")
	}
	return many, nil
}

// Allows reports whether the policy allows the request: some Allow statement
// matches and no Deny statement does.
func (p Policy) Allows(r Request) bool {
	allowed := false
	for _, st := range p.Statements {
		if !st.matches(r) {
			continue
		}
		if st.Effect == "Deny" {
			return false
		}
		allowed = true
	}
	return allowed
}

func (st Statement) matches(r Request) bool {
	if !anyMatch(st.Actions, r.Action, true) || !anyMatch(st.Resources, r.Resource, false) {
		return false
	}
	for _, c := range st.Conditions {
		v, ok := r.Context[c.Key]
		if c.Operator == "Null" {
			// "true": the key is absent; "false": it is present.
			if !slices.ContainsFunc(c.Values, func(w string) bool { return strings.EqualFold(w, strconv.FormatBool(!ok)) }) {
				return false
			}
			continue
		}
		if c.Operator == "StringNotEquals" {
			if ok && slices.Contains(c.Values, v) {
				return false
			}
			continue
		}
		if !ok {
			return false
		}
		switch c.Operator {
		case "StringLike":
			if !anyMatch(c.Values, v, false) {
				return false
			}
		case "StringEquals":
			if !slices.Contains(c.Values, v) {
				return false
			}
		case "Bool":
			if !slices.ContainsFunc(c.Values, func(w string) bool { return strings.EqualFold(w, v) }) {
				return false
			}
		case "DateLessThan":
			if !slices.ContainsFunc(c.Values, func(w string) bool { return before(v, w) }) {
				return false
			}
		}
	}
	return true
}

// before reports whether time a is before time b, both RFC 3339; an
// unparsable time matches nothing.
func before(a, b string) bool {
	ta, err1 := time.Parse(time.RFC3339, a)
	tb, err2 := time.Parse(time.RFC3339, b)
	return err1 == nil && err2 == nil && ta.Before(tb)
}

// Session reports whether a role session may make the request: no Deny of
// the role's policies or of the session policy matches, and both some Allow
// of the role's policies and some Allow of the session policy do (the
// session's permissions are the intersection).
func Session(role []Policy, session Policy, r Request) bool {
	for _, p := range append(slices.Clone(role), session) {
		for _, st := range p.Statements {
			if st.Effect == "Deny" && st.matches(r) {
				return false
			}
		}
	}
	roleAllows := slices.ContainsFunc(role, func(p Policy) bool { return p.Allows(r) })
	return roleAllows && session.Allows(r)
}

// Role is what IAM evaluates for a role's sessions besides the session
// policy: the role's permissions policies (managed and inline alike) and its
// permissions boundary.
type Role struct {
	Policies []Policy
	// Boundary, when set, grants nothing but caps Policies: a request must
	// be allowed by both, and a Deny in it wins like any other.
	Boundary *Policy
}

// ParseRole parses a role's boundary ("" for none) and its permissions
// policies.
func ParseRole(boundary string, policies ...string) (Role, error) {
	var r Role
	if boundary != "" {
		b, err := Parse(boundary)
		if err != nil {
			return Role{}, fmt.Errorf("boundary: %w", err)
		}
		r.Boundary = &b
	}
	for i, doc := range policies {
		p, err := Parse(doc)
		if err != nil {
			return Role{}, fmt.Errorf("policy %d: %w", i, err)
		}
		r.Policies = append(r.Policies, p)
	}
	return r, nil
}

// Allows reports whether a session of the role with the session policy may
// make the request: Session, within the boundary.
func (ro Role) Allows(session Policy, r Request) bool {
	if ro.Boundary != nil && !ro.Boundary.Allows(r) {
		return false
	}
	return Session(ro.Policies, session, r)
}

func anyMatch(patterns []string, s string, fold bool) bool {
	for _, p := range patterns {
		if glob(p, s, fold) {
			return true
		}
	}
	return false
}

// Glob matches s against an IAM pattern: '*' is any run of characters
// (including none and '/'), '?' is exactly one character.
func Glob(pattern, s string) bool { return glob(pattern, s, false) }

// glob is Glob, case-insensitive when fold is set (as IAM matches actions).
// ASCII input, which is all a policy of ours holds, is matched byte by byte
// without allocating: the property tests judge millions of requests, and
// converting to runes and lower case dominated their time.
func glob(pattern, s string, fold bool) bool {
	if isASCII(pattern) && isASCII(s) {
		eq := func(a, b byte) bool { return a == b || fold && lowerASCII(a) == lowerASCII(b) }
		return globSeq([]byte(pattern), []byte(s), eq)
	}
	if fold {
		pattern, s = strings.ToLower(pattern), strings.ToLower(s)
	}
	return globSeq([]rune(pattern), []rune(s), func(a, b rune) bool { return a == b })
}

// globSeq is the matcher itself, over bytes or runes: on a mismatch after a
// '*', it lets the star take one more character and tries again.
func globSeq[C byte | rune](p, q []C, eq func(a, b C) bool) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(q) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] != '*' && eq(p[pi], q[si])):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
