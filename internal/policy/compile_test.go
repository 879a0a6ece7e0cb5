package policy

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/testkit/iameval"
)

func gr(bucket, prefix string, a broker.Access, projects ...string) broker.Grant {
	return broker.Grant{Bucket: bucket, Prefix: prefix, Access: a, Projects: projects}
}

func pl(bucket, prefix string, a broker.Access) broker.Place {
	return broker.Place{Bucket: bucket, Prefix: prefix, Access: a}
}

func TestCompileTables(t *testing.T) {
	const r, w = broker.Read, broker.Write
	tests := []struct {
		name       string
		in         map[string][]broker.Place
		wantGrants []broker.Grant
		wantPolicy []string // one per set
	}{
		{
			name:       "whole-bucket read gets GetObject on objects and unconditional listing",
			in:         map[string][]broker.Place{"p1": {pl("alpha", "", r)}},
			wantGrants: []broker.Grant{gr("alpha", "", r, "p1")},
			wantPolicy: []string{`{"Version":"2012-10-17","Statement":[` +
				`{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::alpha/*"},` +
				`{"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::alpha"}]}`},
		},
		{
			name:       "prefix write gets object actions under the folder and listing limited by s3:prefix",
			in:         map[string][]broker.Place{"p1": {pl("alpha", "raw/2024/", w)}},
			wantGrants: []broker.Grant{gr("alpha", "raw/2024/", w, "p1")},
			wantPolicy: []string{`{"Version":"2012-10-17","Statement":[` +
				`{"Effect":"Allow","Action":["s3:GetObject","s3:PutObject","s3:DeleteObject","s3:AbortMultipartUpload"],"Resource":"arn:aws:s3:::alpha/raw/2024/*"},` +
				`{"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::alpha","Condition":{"StringLike":{"s3:prefix":"raw/2024/*"}}}]}`},
		},
		{
			name: "same bucket from two projects is granted once with the union of projects",
			in: map[string][]broker.Place{
				"p2": {pl("alpha", "", r)},
				"p1": {pl("alpha", "", r)},
			},
			wantGrants: []broker.Grant{gr("alpha", "", r, "p1", "p2")},
			wantPolicy: []string{`{"Version":"2012-10-17","Statement":[` +
				`{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::alpha/*"},` +
				`{"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::alpha"}]}`},
		},
		{
			name: "write covers read and a whole bucket covers its prefixes",
			in: map[string][]broker.Place{
				"p1": {pl("alpha", "", r)},
				"p2": {pl("alpha", "", w)},
				"p3": {pl("alpha", "raw/", r), pl("alpha", "raw/", w)},
			},
			wantGrants: []broker.Grant{gr("alpha", "", w, "p2")},
			wantPolicy: []string{`{"Version":"2012-10-17","Statement":[` +
				`{"Effect":"Allow","Action":["s3:GetObject","s3:PutObject","s3:DeleteObject","s3:AbortMultipartUpload"],"Resource":"arn:aws:s3:::alpha/*"},` +
				`{"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::alpha"}]}`},
		},
		{
			name: "write on a folder of a readable bucket keeps both grants",
			in: map[string][]broker.Place{
				"p1": {pl("alpha", "", r)},
				"p2": {pl("alpha", "raw/", w)},
			},
			wantGrants: []broker.Grant{gr("alpha", "", r, "p1"), gr("alpha", "raw/", w, "p2")},
			wantPolicy: []string{`{"Version":"2012-10-17","Statement":[` +
				`{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::alpha/*"},` +
				`{"Effect":"Allow","Action":["s3:GetObject","s3:PutObject","s3:DeleteObject","s3:AbortMultipartUpload"],"Resource":"arn:aws:s3:::alpha/raw/*"},` +
				`{"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::alpha"}]}`},
		},
		{
			name: "buckets with the same prefixes share one listing statement, others get their own",
			in: map[string][]broker.Place{
				"p1": {pl("alpha", "raw/", r), pl("beta", "raw/", r), pl("gamma", "out/", r)},
			},
			wantGrants: []broker.Grant{gr("alpha", "raw/", r, "p1"), gr("beta", "raw/", r, "p1"), gr("gamma", "out/", r, "p1")},
			wantPolicy: []string{`{"Version":"2012-10-17","Statement":[` +
				`{"Effect":"Allow","Action":"s3:GetObject","Resource":["arn:aws:s3:::alpha/raw/*","arn:aws:s3:::beta/raw/*","arn:aws:s3:::gamma/out/*"]},` +
				`{"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::gamma","Condition":{"StringLike":{"s3:prefix":"out/*"}}},` +
				`{"Effect":"Allow","Action":"s3:ListBucket","Resource":["arn:aws:s3:::alpha","arn:aws:s3:::beta"],"Condition":{"StringLike":{"s3:prefix":"raw/*"}}}]}`},
		},
		{
			name:       "non-ASCII and quotes in a prefix are escaped to printable ASCII",
			in:         map[string][]broker.Place{"p1": {pl("alpha", "日本/\"q\"/", r)}},
			wantGrants: []broker.Grant{gr("alpha", "日本/\"q\"/", r, "p1")},
			wantPolicy: []string{`{"Version":"2012-10-17","Statement":[` +
				`{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::alpha/\u65e5\u672c/\"q\"/*"},` +
				`{"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::alpha","Condition":{"StringLike":{"s3:prefix":"\u65e5\u672c/\"q\"/*"}}}]}`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Compiler{}.Compile(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantGrants, res.Grants); diff != "" {
				t.Errorf("grants (-want +got):\n%s", diff)
			}
			var got []string
			for _, s := range res.Sets {
				got = append(got, s.Policy)
				if !json.Valid([]byte(s.Policy)) {
					t.Errorf("policy is not JSON: %s", s.Policy)
				}
			}
			if diff := cmp.Diff(tt.wantPolicy, got); diff != "" {
				t.Errorf("policies (-want +got):\n%s", diff)
			}
			if len(res.Rejected) != 0 {
				t.Errorf("rejected %v", res.Rejected)
			}
		})
	}
}

func TestCompileRejectsBadPlacesAndKeepsTheRest(t *testing.T) {
	good := pl("alpha", "raw/", broker.Read)
	bad := map[string]broker.Place{
		"wildcard bucket":        pl("alpha*", "", broker.Read),
		"uppercase bucket":       pl("Alpha", "", broker.Read),
		"wildcard prefix":        pl("alpha", "raw/*/", broker.Read),
		"question-mark prefix":   pl("alpha", "raw?/", broker.Read),
		"policy variable prefix": pl("alpha", "${aws:username}/", broker.Read),
		"unnormalized prefix":    pl("alpha", "raw", broker.Read),
		"leading slash prefix":   pl("alpha", "/raw/", broker.Read),
		"unknown access":         pl("alpha", "", broker.Access("admin")),
		"prefix too long to fit": pl("alpha", strings.Repeat("a", 1000)+"/", broker.Read),
	}
	for name, b := range bad {
		t.Run(name+" is rejected", func(t *testing.T) {
			res, err := Compiler{}.Compile(map[string][]broker.Place{"p1": {b, good}})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]broker.Grant{gr("alpha", "raw/", broker.Read, "p1")}, res.Grants); diff != "" {
				t.Errorf("grants (-want +got):\n%s", diff)
			}
			if len(res.Rejected) != 1 || res.Rejected[0].Place != b {
				t.Errorf("rejected = %+v, want just %+v", res.Rejected, b)
			}
		})
	}
	t.Run("invalid project id is rejected", func(t *testing.T) {
		res, err := Compiler{}.Compile(map[string][]broker.Place{"p 1": {good}})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Grants) != 0 || len(res.Rejected) != 1 {
			t.Errorf("grants %v rejected %v", res.Grants, res.Rejected)
		}
	})
}

func TestCompileIsDeterministic(t *testing.T) {
	in := randomInput(rand.New(rand.NewPCG(1, 2)), 300)
	want, err := Compiler{}.Compile(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(want.Sets) < 2 {
		t.Fatalf("want a multi-set input, got %d sets", len(want.Sets))
	}
	for i := range 20 {
		shuffled := map[string][]broker.Place{}
		rng := rand.New(rand.NewPCG(uint64(i), 99))
		for p, places := range in {
			c := append([]broker.Place(nil), places...)
			rng.Shuffle(len(c), func(i, j int) { c[i], c[j] = c[j], c[i] })
			shuffled[p] = c
		}
		got, err := Compiler{}.Compile(shuffled)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("shuffle %d changed the result (-want +got):\n%s", i, diff)
		}
	}
}

func TestVersionChangesWithTheGrants(t *testing.T) {
	base := map[string][]broker.Place{"p1": {pl("alpha", "", broker.Read)}}
	variants := map[string]map[string][]broker.Place{
		"access changes":        {"p1": {pl("alpha", "", broker.Write)}},
		"prefix changes":        {"p1": {pl("alpha", "raw/", broker.Read)}},
		"bucket added":          {"p1": {pl("alpha", "", broker.Read), pl("beta", "", broker.Read)}},
		"project attribution":   {"p2": {pl("alpha", "", broker.Read)}},
		"covered grant added":   {"p1": {pl("alpha", "", broker.Read)}, "p2": {pl("alpha", "raw/", broker.Read)}},
		"everything is removed": {},
	}
	v0 := mustCompile(t, Compiler{}, base).Version
	seen := map[string]string{v0: "base"}
	for name, in := range variants {
		v := mustCompile(t, Compiler{}, in).Version
		if other, dup := seen[v]; dup {
			t.Errorf("%s gives the same version as %s", name, other)
		}
		seen[v] = name
	}
	if again := mustCompile(t, Compiler{}, base).Version; again != v0 {
		t.Errorf("same grants, new version %s != %s", again, v0)
	}
}

func mustCompile(t testing.TB, c Compiler, in map[string][]broker.Place) Result {
	t.Helper()
	res, err := c.Compile(in)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestSplitsOnlyWhenNeeded(t *testing.T) {
	for _, n := range []int{1, 5, 10, 20, 40, 200, 1000} {
		t.Run(fmt.Sprint(n, " grants"), func(t *testing.T) {
			in := map[string][]broker.Place{}
			for i := range n {
				in["p"] = append(in["p"], pl(fmt.Sprintf("bucket-%05d", i), "", broker.Read))
			}
			res := mustCompile(t, Compiler{}, in)
			single := mustCompile(t, Compiler{MaxBytes: 1 << 30}, in)
			total := len(single.Sets[0].Policy)
			switch {
			case total <= MaxPolicyBytes && len(res.Sets) != 1:
				t.Errorf("everything fits in one policy (%d bytes) but got %d sets", total, len(res.Sets))
			case total > MaxPolicyBytes && len(res.Sets) < 2:
				t.Errorf("%d bytes cannot fit one policy but got %d set", total, len(res.Sets))
			}
			// Lower bound: every set repeats at least the document wrapper and
			// the statement heads, so more sets than this would be waste.
			perSet := MaxPolicyBytes - (docOverLen + readOver + listOver + 1)
			lower := (total - docOverLen - readOver - listOver - 1 + perSet - 1) / perSet
			if len(res.Sets) > lower+1 {
				t.Errorf("%d sets for %d bytes of grants, lower bound %d", len(res.Sets), total, lower)
			}
			assertPartition(t, res)
		})
	}
}

// assertPartition checks that every grant is in exactly one set and every
// set is within the size limit.
func assertPartition(t testing.TB, res Result) {
	t.Helper()
	seen := make([]int, len(res.Grants))
	for i, s := range res.Sets {
		if len(s.Policy) > MaxPolicyBytes {
			t.Errorf("set %d is %d bytes", i, len(s.Policy))
		}
		if len(s.Grants) == 0 {
			t.Errorf("set %d has no grants", i)
		}
		for _, g := range s.Grants {
			seen[g]++
		}
	}
	for i, n := range seen {
		if n != 1 {
			t.Errorf("grant %d (%+v) is in %d sets", i, res.Grants[i], n)
		}
	}
}

// Capacity is documented in docs/benchmarks.md "Policy compiler (issue 2)";
// this keeps the numbers true.
func TestCapacityPerSet(t *testing.T) {
	for _, tt := range []struct {
		nameLen           int
		read, write, pref int
	}{
		{20, 25, 24, 10},
		{40, 16, 16, 8},
		{63, 11, 11, 7},
	} {
		fits := func(mk func(i int) broker.Place) int {
			n := 0
			for {
				in := map[string][]broker.Place{}
				for i := range n + 1 {
					in["p"] = append(in["p"], mk(i))
				}
				if len(mustCompile(t, Compiler{}, in).Sets) > 1 {
					return n
				}
				n++
			}
		}
		name := func(i int) string {
			s := fmt.Sprintf("b%03d-", i)
			return s + strings.Repeat("x", tt.nameLen-len(s))
		}
		got := []int{
			fits(func(i int) broker.Place { return pl(name(i), "", broker.Read) }),
			fits(func(i int) broker.Place { return pl(name(i), "", broker.Write) }),
			fits(func(i int) broker.Place { return pl(name(i), fmt.Sprintf("team-%02d/", i), broker.Read) }),
		}
		want := []int{tt.read, tt.write, tt.pref}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%d-character names: grants per set [read write prefix] (-docs +actual):\n%s", tt.nameLen, diff)
		}
	}
}

// FitsAlone's closed form must agree with the packer's size model.
func TestAloneSizeMatchesTheSizeModel(t *testing.T) {
	c := Compiler{}
	for _, b := range []string{"abc", "bucket-with-a-longer-name", strings.Repeat("b", 63)} {
		for _, p := range []string{"", "raw/", "日本/", `q"/`, strings.Repeat("p", 500) + "/"} {
			for _, a := range []broker.Access{broker.Read, broker.Write} {
				for _, e := range []time.Time{{}, time.Date(2026, 12, 31, 18, 0, 0, 0, time.UTC)} {
					g := []broker.Grant{{Bucket: b, Prefix: p, Access: a, ExpiresAt: e}}
					if got, want := c.aloneSize(b, p, a, expiryText(e)), c.unitOf(g, []int{0}).alone; got != want {
						t.Errorf("aloneSize(%q, %q, %s, %v) = %d, size model %d", b, p, a, e, got, want)
					}
				}
			}
		}
	}
}

// A bucket whose folders do not fit one policy is split into chunks, each in
// a different set, each set listing only its own chunk's folders.
func TestABucketTooLargeForOnePolicyIsSplit(t *testing.T) {
	in := map[string][]broker.Place{}
	for i := range 120 {
		in["p"] = append(in["p"], pl("big-bucket", fmt.Sprintf("team-%03d/", i), broker.Read))
	}
	in["p"] = append(in["p"], pl("small", "", broker.Write))
	res := mustCompile(t, Compiler{}, in)
	assertPartition(t, res)
	if len(res.Sets) < 2 {
		t.Fatalf("%d sets for 120 folders", len(res.Sets))
	}
	for i, s := range res.Sets {
		p, err := iameval.Parse(s.Policy)
		if err != nil {
			t.Fatal(err)
		}
		for j, g := range res.Grants {
			inSet := slices.Contains(s.Grants, j)
			req := iameval.Request{Action: "s3:ListBucket", Resource: "arn:aws:s3:::" + g.Bucket, Context: map[string]string{"s3:prefix": g.Prefix + "x"}}
			if g.Prefix != "" && p.Allows(req) != inSet {
				t.Errorf("set %d lists %s%s: %v, but holds the grant: %v", i, g.Bucket, g.Prefix, p.Allows(req), inSet)
			}
		}
	}
}

// Normalization drops every covered grant, whatever precedes it (a bug that
// reused the slice being read once let covered grants through).
func TestNormalizedGrantsCoverNoOtherGrant(t *testing.T) {
	in := map[string][]broker.Place{
		"p1": {pl("aaa", "", broker.Read)},
		"p2": {pl("aaa", "x/", broker.Read)},
		"p3": {pl("bbb", "a/", broker.Read)},
		"p4": {pl("bbb", "a/b/", broker.Write)},
		"p5": {pl("bbb", "a/c/", broker.Read)},
	}
	want := []broker.Grant{gr("aaa", "", broker.Read, "p1"), gr("bbb", "a/", broker.Read, "p3"), gr("bbb", "a/b/", broker.Write, "p4")}
	if diff := cmp.Diff(want, mustCompile(t, Compiler{}, in).Grants); diff != "" {
		t.Errorf("grants (-want +got):\n%s", diff)
	}
	rng := rand.New(rand.NewPCG(5, 5))
	for range 200 {
		res := mustCompile(t, Compiler{}, randomInput(rng, 1+rng.IntN(60)))
		for i, g := range res.Grants {
			for j, o := range res.Grants {
				if i != j && g.Bucket == o.Bucket && strings.HasPrefix(g.Prefix, o.Prefix) && o.Access.Covers(g.Access) {
					t.Fatalf("%+v is covered by %+v but was kept", g, o)
				}
			}
		}
	}
}
