package policy

import (
	"strings"
	"testing"
	"unicode"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/testkit/iameval"
)

// FuzzCompile feeds arbitrary bucket names and prefixes through the same
// validation a source record gets, then compiles what passes. Whatever the
// input: every policy is within the size limit and ASCII, and every wildcard
// in it is one the compiler placed (the '*' ending an object ARN or a listing
// condition), so input can never widen access.
// Run longer with: go test -fuzz=FuzzCompile ./internal/policy
func FuzzCompile(f *testing.F) {
	f.Add("alpha", "raw/2024", "beta", "", true)
	f.Add("alpha", "*", "alpha", "?", false)
	f.Add("al*pha", "${aws:userid}/", "beta", "raw/*/", true)
	f.Add("192.168.1.1", "/etc", "xn--bucket", "a\x00b", false)
	f.Add("alpha", "日本/\"q\\", "alpha", strings.Repeat("z", 1100), true)
	f.Add("a.b-c", "raw\u2028/", "abc", "raw/\U0001F600/", false)
	f.Add("alpha", "\u202e/", "alpha", "a\x7fb", true)
	f.Fuzz(func(t *testing.T, b1, p1, b2, p2 string, write bool) {
		c := Compiler{}
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
		res, err := c.Compile(map[string][]broker.Place{"p1": places})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Rejected) != 0 {
			t.Fatalf("validated places rejected: %+v", res.Rejected)
		}
		assertPartition(t, res)
		for _, s := range res.Sets {
			checkPolicy(t, s.Policy, places)
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
