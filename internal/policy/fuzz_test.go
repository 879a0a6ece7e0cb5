package policy

import (
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/testkit/iameval"
)

// FuzzCompile feeds arbitrary bucket names, prefixes and a membership's
// expiresAt through the same validation a source record gets, then
// compiles what passes. Whatever the input: every policy is within the size
// limit and ASCII, every wildcard in it is one the compiler placed (the '*'
// ending an object ARN or a listing condition), so input can never widen
// access, and a bound in it is the membership's expiry, never later.
// Run longer with: go test -fuzz=FuzzCompile ./internal/policy
func FuzzCompile(f *testing.F) {
	f.Add("alpha", "raw/2024", "beta", "", true, "")
	f.Add("alpha", "*", "alpha", "?", false, "")
	f.Add("al*pha", "${aws:userid}/", "beta", "raw/*/", true, "")
	f.Add("192.168.1.1", "/etc", "xn--bucket", "a\x00b", false, "")
	f.Add("alpha", "日本/\"q\\", "alpha", strings.Repeat("z", 1100), true, "")
	f.Add("a.b-c", "raw\u2028/", "abc", "raw/\U0001F600/", false, "")
	f.Add("alpha", "\u202e/", "alpha", "a\x7fb", true, "2026-12-31T18:00:00Z")
	f.Add("alpha", "raw/", "beta", "", false, "2026-12-31T19:00:00.999+01:00")
	f.Add("alpha", "raw/", "beta", "", false, `2026-12-31T18:00:00Z"},"Bool":{"x":"`)
	f.Add("alpha", strings.Repeat("r", 800), "beta", "", true, "9999-12-31T23:59:59-23:59")
	f.Fuzz(func(t *testing.T, b1, p1, b2, p2 string, write bool, expiresAt string) {
		c := Compiler{}
		membership := broker.SourceItem{PK: "USER#alice", SK: "PROJECT#p1", ExpiresAt: broker.StringAttr(expiresAt)}
		if expiresAt == "" {
			membership.ExpiresAt = broker.Attr{}
		}
		m, err := membership.Parse()
		if err != nil {
			return // an invalid membership grants nothing
		}
		expiry := m.Membership.ExpiresAt
		access := broker.Read
		if write {
			access = broker.Write
		}
		var places []broker.Place
		for _, bp := range [][2]string{{b1, p1}, {b2, p2}} {
			item := broker.SourceItem{PK: "PROJECT#p1", SK: "BUCKET#" + bp[0], Prefix: broker.StringAttr(bp[1])}
			parsed, err := item.Parse()
			if err != nil {
				continue
			}
			checkValidated(t, parsed.Bucket.Bucket, parsed.Bucket.Prefix)
			if !c.FitsAlone(parsed.Bucket.Bucket, parsed.Bucket.Prefix) {
				continue
			}
			places = append(places, broker.Place{Bucket: parsed.Bucket.Bucket, Prefix: parsed.Bucket.Prefix, Access: access})
		}
		res, err := c.CompileBounded(map[string][]broker.Place{"p1": places}, map[string]time.Time{"p1": expiry})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res.Rejected {
			// Only the bound may push a valid folder over the limit.
			if expiry.IsZero() || !strings.Contains(r.Reason, "time-bounded") {
				t.Fatalf("validated place rejected: %+v", r)
			}
		}
		assertPartition(t, res)
		for _, s := range res.Sets {
			checkPolicy(t, s.Policy, places)
			checkBound(t, s.Policy, expiry)
		}
	})
}

func checkValidated(t *testing.T, bucket, prefix string) {
	t.Helper()
	if strings.ContainsAny(bucket+prefix, "*?$") {
		t.Fatalf("validation passed a wildcard: %q %q", bucket, prefix)
	}
	for _, r := range prefix {
		if unicode.IsControl(r) {
			t.Fatalf("validation passed a control character: %q", prefix)
		}
	}
	if prefix != "" && (!strings.HasSuffix(prefix, "/") || strings.HasPrefix(prefix, "/")) {
		t.Fatalf("prefix %q is not a normalized folder", prefix)
	}
}

// checkPolicy parses a policy and checks each resource and condition value
// against the places it may come from.
func checkPolicy(t *testing.T, doc string, places []broker.Place) {
	t.Helper()
	if len(doc) > MaxPolicyBytes {
		t.Fatalf("policy is %d bytes", len(doc))
	}
	for i := 0; i < len(doc); i++ {
		if doc[i] < 0x20 || doc[i] > 0x7e {
			t.Fatalf("policy has a non-printable or non-ASCII byte %#x", doc[i])
		}
	}
	if strings.Contains(doc, "$") || strings.Contains(doc, "?") {
		t.Fatalf("policy holds '$' or '?': %s", doc)
	}
	p, err := iameval.Parse(doc)
	if err != nil {
		t.Fatalf("policy does not parse: %v", err)
	}
	allowedRes := map[string]bool{}
	allowedCond := map[string]bool{}
	for _, pl := range places {
		allowedRes["arn:aws:s3:::"+pl.Bucket] = true
		allowedRes["arn:aws:s3:::"+pl.Bucket+"/"+pl.Prefix+"*"] = true
		allowedCond[pl.Prefix+"*"] = true
	}
	for _, st := range p.Statements {
		if st.Effect != "Allow" {
			t.Fatalf("unexpected effect %s", st.Effect)
		}
		for _, a := range st.Actions {
			if strings.ContainsAny(a, "*?") {
				t.Fatalf("wildcard action %q", a)
			}
		}
		for _, r := range st.Resources {
			if !allowedRes[r] {
				t.Fatalf("resource %q does not come from a place", r)
			}
		}
		for _, c := range st.Conditions {
			if c.Operator == "DateLessThan" && c.Key == "aws:CurrentTime" {
				continue // checkBound
			}
			if c.Operator != "StringLike" || c.Key != "s3:prefix" {
				t.Fatalf("unexpected condition %+v", c)
			}
			for _, v := range c.Values {
				if !allowedCond[v] || strings.Count(v, "*") != 1 {
					t.Fatalf("condition value %q does not come from a place", v)
				}
			}
		}
	}
}

// checkBound checks that every statement of a policy compiled for a
// membership ending at expiry (zero: never) carries exactly that bound.
func checkBound(t *testing.T, doc string, expiry time.Time) {
	t.Helper()
	p, err := iameval.Parse(doc)
	if err != nil {
		t.Fatalf("policy does not parse: %v", err)
	}
	for _, st := range p.Statements {
		var bounds []string
		for _, c := range st.Conditions {
			if c.Operator == "DateLessThan" {
				bounds = append(bounds, c.Values...)
			}
		}
		switch {
		case expiry.IsZero() && len(bounds) > 0:
			t.Fatalf("unbounded grants carry a bound %v: %s", bounds, doc)
		case !expiry.IsZero() && (len(bounds) != 1 || bounds[0] != expiry.UTC().Format(time.RFC3339)):
			t.Fatalf("statement bounds %v, want exactly %s: %s", bounds, expiry.UTC().Format(time.RFC3339), doc)
		}
	}
}
