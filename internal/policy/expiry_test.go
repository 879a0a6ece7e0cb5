package policy

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/testkit/iameval"
)

var (
	expiryT1 = time.Date(2026, 12, 31, 18, 0, 0, 0, time.UTC)
	expiryT2 = expiryT1.Add(8 * time.Hour)
	expiryT3 = expiryT2.Add(24 * time.Hour)
)

// at returns req as IAM sees it at instant t.
func at(req iameval.Request, t time.Time) iameval.Request {
	ctx := maps.Clone(req.Context)
	if ctx == nil {
		ctx = map[string]string{}
	}
	ctx["aws:CurrentTime"] = t.UTC().Format(time.RFC3339)
	req.Context = ctx
	return req
}

// livePlaces are the places of the projects still live at t.
func livePlaces(in map[string][]broker.Place, expires map[string]time.Time, t time.Time) []broker.Place {
	var out []broker.Place
	for p, places := range in {
		if broker.Outlives(expires[p], t) {
			out = append(out, places...)
		}
	}
	return out
}

// The session policies allow, at every instant, exactly what the projects
// live at that instant grant: before, at and after each expiry, judged by
// the IAM evaluator.
func TestPropertyBoundedPoliciesAllowExactlyTheLiveGrantsAtEachInstant(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		// Fewer places than inputGen's: every probe is judged at four instants.
		in := rapid.MapOfN(rapid.SampledFrom(projects), rapid.SliceOfN(placeGen(), 0, 6), 0, len(projects)).Draw(t, "input")
		expires := map[string]time.Time{}
		for _, p := range slices.Sorted(maps.Keys(in)) {
			expires[p] = rapid.SampledFrom([]time.Time{{}, expiryT1, expiryT2, expiryT3}).Draw(t, "expiry of "+p)
		}
		limit := rapid.SampledFrom([]int{MaxPolicyBytes, 900, 600}).Draw(t, "limit")
		res, err := Compiler{MaxBytes: limit}.CompileBounded(in, expires)
		parsed := parseSets(t, res, err, limit)
		// Just before the first expiry, at it, and at the last: every grant
		// is seen before its own expiry and at or after it.
		instants := []time.Time{expiryT1.Add(-time.Second), expiryT1, expiryT3}
		raw := flatten(in)
		reqs := probes(raw)
		for _, now := range instants {
			live := livePlaces(in, expires, now)
			for _, req := range reqs {
				req := at(req, now)
				want, got := allowedByGrants(live, req), false
				for i, p := range parsed {
					inSet := p.Allows(req)
					got = got || inSet
					var listed []broker.Place
					for _, g := range res.Sets[i].Grants {
						if res.Grants[g].LiveAt(now) {
							listed = append(listed, res.Grants[g].Place())
						}
					}
					if wantSet := allowedByGrants(listed, req); inSet != wantSet {
						t.Fatalf("at %v set %d: %+v allowed=%v, its live grants say %v\npolicy: %s", now, i, req, inSet, wantSet, res.Sets[i].Policy)
					}
				}
				if got != want {
					t.Fatalf("at %v: %+v: policies allow=%v, live projects say %v", now, req, got, want)
				}
			}
		}
	})
}

func TestUnionRuleGivesEachGrantItsLatestExpiry(t *testing.T) {
	var none time.Time
	grant := func(bucket, prefix string, a broker.Access, e time.Time, projects ...string) broker.Grant {
		g := gr(bucket, prefix, a, projects...)
		g.ExpiresAt = e
		return g
	}
	for _, tt := range []struct {
		name    string
		in      map[string][]broker.Place
		expires map[string]time.Time
		want    []broker.Grant
	}{
		{
			name:    "a grant also given by an unbounded membership has no expiry",
			in:      map[string][]broker.Place{"p1": {pl("lake", "", broker.Read)}, "p2": {pl("lake", "", broker.Read)}},
			expires: map[string]time.Time{"p1": expiryT1},
			want:    []broker.Grant{grant("lake", "", broker.Read, none, "p1", "p2")},
		},
		{
			name:    "a grant given by several bounded memberships lasts until the latest",
			in:      map[string][]broker.Place{"p1": {pl("lake", "", broker.Read)}, "p2": {pl("lake", "", broker.Read)}, "p3": {pl("lake", "", broker.Read)}},
			expires: map[string]time.Time{"p1": expiryT2, "p2": expiryT3, "p3": expiryT1},
			want:    []broker.Grant{grant("lake", "", broker.Read, expiryT3, "p1", "p2", "p3")},
		},
		{
			name:    "a bounded write keeps the unbounded read beneath it",
			in:      map[string][]broker.Place{"p1": {pl("lake", "", broker.Write)}, "p2": {pl("lake", "", broker.Read)}},
			expires: map[string]time.Time{"p1": expiryT1},
			want:    []broker.Grant{grant("lake", "", broker.Read, none, "p2"), grant("lake", "", broker.Write, expiryT1, "p1")},
		},
		{
			name:    "an unbounded write covers a bounded read",
			in:      map[string][]broker.Place{"p1": {pl("lake", "", broker.Write)}, "p2": {pl("lake", "runs/", broker.Read)}},
			expires: map[string]time.Time{"p2": expiryT1},
			want:    []broker.Grant{grant("lake", "", broker.Write, none, "p1")},
		},
		{
			name:    "a later bounded bucket covers an earlier bounded folder",
			in:      map[string][]broker.Place{"p1": {pl("lake", "", broker.Read)}, "p2": {pl("lake", "runs/", broker.Read)}},
			expires: map[string]time.Time{"p1": expiryT2, "p2": expiryT1},
			want:    []broker.Grant{grant("lake", "", broker.Read, expiryT2, "p1")},
		},
		{
			name:    "an earlier bounded bucket keeps a later bounded folder",
			in:      map[string][]broker.Place{"p1": {pl("lake", "", broker.Read)}, "p2": {pl("lake", "runs/", broker.Read)}},
			expires: map[string]time.Time{"p1": expiryT1, "p2": expiryT2},
			want:    []broker.Grant{grant("lake", "", broker.Read, expiryT1, "p1"), grant("lake", "runs/", broker.Read, expiryT2, "p2")},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Compiler{}.CompileBounded(tt.in, tt.expires)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, res.Grants); diff != "" {
				t.Errorf("grants (-want +got):\n%s", diff)
			}
		})
	}
}

// Grants ending at the same instant share statements: the bound costs one
// condition per statement kind and expiry, not one per grant.
func TestGrantsOfOneExpiryShareStatements(t *testing.T) {
	in := map[string][]broker.Place{"p1": {pl("alpha", "", broker.Read), pl("beta", "", broker.Read), pl("gamma", "raw/", broker.Read)},
		"p2": {pl("delta", "raw/", broker.Read)}}
	res := mustCompileBounded(t, Compiler{}, in, map[string]time.Time{"p1": expiryT1, "p2": expiryT1})
	if len(res.Sets) != 1 {
		t.Fatalf("%d sets, want 1", len(res.Sets))
	}
	p, err := iameval.Parse(res.Sets[0].Policy)
	if err != nil {
		t.Fatal(err)
	}
	// Objects of all four, whole listing of two, and gamma and delta listed
	// under the same folder.
	if len(p.Statements) != 3 {
		t.Errorf("%d statements, want 3 (objects, whole listing, raw/ listing):\n%s", len(p.Statements), res.Sets[0].Policy)
	}
	want := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":["arn:aws:s3:::alpha/*","arn:aws:s3:::beta/*","arn:aws:s3:::delta/raw/*","arn:aws:s3:::gamma/raw/*"],"Condition":{"DateLessThan":{"aws:CurrentTime":"2026-12-31T18:00:00Z"}}},{"Effect":"Allow","Action":"s3:ListBucket","Resource":["arn:aws:s3:::alpha","arn:aws:s3:::beta"],"Condition":{"DateLessThan":{"aws:CurrentTime":"2026-12-31T18:00:00Z"}}},{"Effect":"Allow","Action":"s3:ListBucket","Resource":["arn:aws:s3:::delta","arn:aws:s3:::gamma"],"Condition":{"StringLike":{"s3:prefix":"raw/*"},"DateLessThan":{"aws:CurrentTime":"2026-12-31T18:00:00Z"}}}]}`
	if diff := cmp.Diff(want, res.Sets[0].Policy); diff != "" {
		t.Errorf("policy (-want +got):\n%s", diff)
	}
}

// Unbounded grants compile to the bytes and the version they had before
// expiries existed: no user's credentials change with this feature alone.
func TestUnboundedGrantsCompileAsBefore(t *testing.T) {
	in := map[string][]broker.Place{"p1": {pl("alpha", "", broker.Write), pl("beta", "raw/", broker.Read)}}
	a := mustCompile(t, Compiler{}, in)
	b := mustCompileBounded(t, Compiler{}, in, map[string]time.Time{"p2": expiryT1, "p1": {}})
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("unbounded compile differs (-Compile +CompileBounded):\n%s", diff)
	}
	c := mustCompileBounded(t, Compiler{}, in, map[string]time.Time{"p1": expiryT1})
	d := mustCompileBounded(t, Compiler{}, in, map[string]time.Time{"p1": expiryT2})
	if c.Version == a.Version || c.Version == d.Version {
		t.Errorf("versions %s (none) %s (T1) %s (T2): an expiry must change the version", a.Version, c.Version, d.Version)
	}
}

// The worst case for sharing: every grant its own expiry. Every set stays
// within the limit and no set could take a grant of a later one (first
// fit), and everything that fits one policy is one set.
func TestEveryGrantWithItsOwnExpiryStillPacksTightly(t *testing.T) {
	for _, n := range []int{1, 3, 8, 40, 200} {
		t.Run(fmt.Sprint(n, " grants"), func(t *testing.T) {
			in := map[string][]broker.Place{}
			expires := map[string]time.Time{}
			for i := range n {
				p := fmt.Sprintf("p%03d", i)
				in[p] = []broker.Place{pl(fmt.Sprintf("bucket-%03d", i), fmt.Sprintf("team-%02d/", i%7), []broker.Access{broker.Read, broker.Write}[i%2])}
				expires[p] = expiryT1.Add(time.Duration(i) * time.Minute)
			}
			c := Compiler{}
			res := mustCompileBounded(t, c, in, expires)
			assertPartition(t, res)
			if len(res.Grants) != n {
				t.Fatalf("%d grants, want %d", len(res.Grants), n)
			}
			whole := mustCompileBounded(t, Compiler{MaxBytes: 1 << 20}, in, expires)
			if len(whole.Sets[0].Policy) <= MaxPolicyBytes && len(res.Sets) != 1 {
				t.Fatalf("everything fits one policy (%d bytes) but got %d sets", len(whole.Sets[0].Policy), len(res.Sets))
			}
			// Any grant of a later set would overflow every earlier set.
			for j := 1; j < len(res.Sets); j++ {
				for _, gi := range res.Sets[j].Grants {
					for i := range j {
						sub := map[string][]broker.Place{}
						exp := map[string]time.Time{}
						for _, k := range append(slices.Clone(res.Sets[i].Grants), gi) {
							g := res.Grants[k]
							sub[g.Projects[0]] = append(sub[g.Projects[0]], g.Place())
							exp[g.Projects[0]] = g.ExpiresAt
						}
						if merged := mustCompileBounded(t, Compiler{MaxBytes: 1 << 20}, sub, exp); len(merged.Sets[0].Policy) <= MaxPolicyBytes {
							t.Errorf("grant %d of set %d fits in set %d (%d bytes)", gi, j, i, len(merged.Sets[0].Policy))
						}
					}
				}
			}
			t.Logf("%d grants with %d expiries: %d sets", n, n, len(res.Sets))
		})
	}
}

// A folder that fits a session policy for ever may be too long with a bound
// repeated in each statement: that grant is rejected (it grants nothing),
// never written over the limit.
func TestAFolderTooLongForABoundIsRejected(t *testing.T) {
	c := Compiler{}
	long := ""
	for n := 700; n < 1000; n++ {
		p := fmt.Sprintf("%0*d/", n, 0)
		if c.FitsAlone("lake", p) && c.aloneSize("lake", p, broker.Write, expiryText(expiryT1)) > MaxPolicyBytes {
			long = p
			break
		}
	}
	if long == "" {
		t.Fatal("no folder fits unbounded but not bounded")
	}
	in := map[string][]broker.Place{"p1": {pl("lake", long, broker.Write), pl("pond", "", broker.Read)}}
	res := mustCompileBounded(t, c, in, map[string]time.Time{"p1": expiryT1})
	if len(res.Rejected) != 1 || res.Rejected[0].Place.Bucket != "lake" {
		t.Fatalf("rejected %+v, want the long folder only", res.Rejected)
	}
	assertPartition(t, res)
	if res := mustCompile(t, c, in); len(res.Rejected) != 0 {
		t.Errorf("unbounded, the folder is rejected: %+v", res.Rejected)
	}
}

func mustCompileBounded(t testing.TB, c Compiler, in map[string][]broker.Place, expires map[string]time.Time) Result {
	t.Helper()
	res, err := c.CompileBounded(in, expires)
	if err != nil {
		t.Fatal(err)
	}
	return res
}
