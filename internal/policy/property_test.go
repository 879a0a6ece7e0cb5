package policy

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/testkit/iameval"
)

// Names chosen to collide: buckets that are prefixes of each other, folders
// that are prefixes of each other as strings but not as folders.
var (
	bucketPool = []string{"alpha", "alpha1", "alpha-1", "beta.data", "lake-01", "lake-012", "zz9"}
	prefixPool = []string{"", "raw/", "raw/2024/", "raw/20245/", "raw/2024/q1/", "out/", "a b/", "日本/", `q"uote/`, `back\slash/`}
	projects   = []string{"p1", "p2", "p3", "p4"}
	// Every action a grant could be confused with.
	objectActions = []string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
		"s3:PutObjectAcl", "s3:GetObjectAcl", "s3:GetObjectTagging", "s3:PutObjectTagging", "s3:DeleteObjectVersion",
		"s3:RestoreObject", "s3:PutObjectRetention"}
	bucketActions2 = []string{"s3:ListBucket", "s3:ListBucketVersions", "s3:PutBucketPolicy", "s3:GetBucketPolicy",
		"s3:DeleteBucket", "s3:PutBucketAcl", "s3:ListBucketMultipartUploads", "s3:GetObject"}
)

func placeGen() *rapid.Generator[broker.Place] {
	return rapid.Custom(func(t *rapid.T) broker.Place {
		return broker.Place{
			Bucket: rapid.SampledFrom(bucketPool).Draw(t, "bucket"),
			Prefix: rapid.SampledFrom(prefixPool).Draw(t, "prefix"),
			Access: rapid.SampledFrom([]broker.Access{broker.Read, broker.Write}).Draw(t, "access"),
		}
	})
}

func inputGen() *rapid.Generator[map[string][]broker.Place] {
	return rapid.MapOfN(rapid.SampledFrom(projects), rapid.SliceOfN(placeGen(), 0, 12), 0, len(projects))
}

// allowedByGrants is the contract (section 2) written as directly as possible:
// the reference that compiled policies must agree with.
func allowedByGrants(places []broker.Place, req iameval.Request) bool {
	rest, ok := strings.CutPrefix(req.Resource, "arn:aws:s3:::")
	if !ok {
		return false
	}
	bucket, key, isObject := strings.Cut(rest, "/")
	for _, p := range places {
		if p.Bucket != bucket {
			continue
		}
		switch {
		case isObject && req.Action == "s3:GetObject":
			if strings.HasPrefix(key, p.Prefix) {
				return true
			}
		case isObject && (req.Action == "s3:PutObject" || req.Action == "s3:DeleteObject" || req.Action == "s3:AbortMultipartUpload"):
			if p.Access == broker.Write && strings.HasPrefix(key, p.Prefix) {
				return true
			}
		case !isObject && req.Action == "s3:ListBucket":
			if p.Prefix == "" {
				return true
			}
			if sp, ok := req.Context["s3:prefix"]; ok && strings.HasPrefix(sp, p.Prefix) {
				return true
			}
		}
	}
	return false
}

// probes builds requests around every place: inside, at, beside and above
// each folder, on similar buckets, with every confusable action.
func probes(places []broker.Place) []iameval.Request {
	keys := map[string]bool{"k": true, "": true, "other/k": true}
	listPrefixes := map[string]bool{"": true, "raw": true}
	for _, p := range places {
		f := p.Prefix
		keys[f+"k"] = true
		keys[f] = true
		keys[f+"deep/er/k"] = true
		trimmed := strings.TrimSuffix(f, "/")
		keys[trimmed] = true
		keys[trimmed+"x/k"] = true
		keys[trimmed+"5/k"] = true
		listPrefixes[f] = true
		listPrefixes[trimmed] = true
		listPrefixes[f+"sub/"] = true
		listPrefixes[trimmed+"5/"] = true
	}
	var reqs []iameval.Request
	for _, b := range bucketPool {
		arn := "arn:aws:s3:::" + b
		for k := range keys {
			for _, a := range objectActions {
				reqs = append(reqs, iameval.Request{Action: a, Resource: arn + "/" + k})
			}
		}
		for _, a := range bucketActions2 {
			reqs = append(reqs, iameval.Request{Action: a, Resource: arn})
			for sp := range listPrefixes {
				reqs = append(reqs, iameval.Request{Action: a, Resource: arn, Context: map[string]string{"s3:prefix": sp}})
			}
		}
	}
	return reqs
}

func flatten(in map[string][]broker.Place) []broker.Place {
	var out []broker.Place
	for _, ps := range in {
		out = append(out, ps...)
	}
	return out
}

func TestPropertyPoliciesAllowExactlyTheGrants(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		in := inputGen().Draw(t, "input")
		limit := rapid.SampledFrom([]int{MaxPolicyBytes, 700, 450}).Draw(t, "limit")
		res, err := Compiler{MaxBytes: limit}.Compile(in)
		parsed := parseSets(t, res, err, limit)
		raw := flatten(in)
		for _, req := range probes(raw) {
			want := allowedByGrants(raw, req)
			got := false
			for i, p := range parsed {
				inSet := p.Allows(req)
				got = got || inSet
				// Each set reaches exactly the grants it lists.
				var listed []broker.Place
				for _, g := range res.Sets[i].Grants {
					listed = append(listed, res.Grants[g].Place())
				}
				if wantSet := allowedByGrants(listed, req); inSet != wantSet {
					t.Fatalf("set %d: %+v allowed=%v, its grants say %v\npolicy: %s\ngrants: %+v", i, req, inSet, wantSet, res.Sets[i].Policy, listed)
				}
			}
			if got != want {
				t.Fatalf("%+v: policies allow=%v, grants say %v\ninput: %+v", req, got, want, in)
			}
		}
		// Normalization loses nothing and adds nothing.
		var norm []broker.Place
		for _, g := range res.Grants {
			norm = append(norm, g.Place())
		}
		for _, req := range probes(raw) {
			if allowedByGrants(norm, req) != allowedByGrants(raw, req) {
				t.Fatalf("normalized grants disagree with input on %+v", req)
			}
		}
		seen := make([]int, len(res.Grants))
		for _, s := range res.Sets {
			for _, g := range s.Grants {
				seen[g]++
			}
		}
		for i, n := range seen {
			if n != 1 {
				t.Fatalf("grant %d in %d sets", i, n)
			}
		}
	})
}

// randomInput gives n places over many buckets, for sizes beyond one set.
func randomInput(rng *rand.Rand, n int) map[string][]broker.Place {
	in := map[string][]broker.Place{}
	for range n {
		p := projects[rng.IntN(len(projects))]
		b := fmt.Sprintf("bucket-%03d%s", rng.IntN(n/2+1), strings.Repeat("x", rng.IntN(30)))
		prefix := prefixPool[rng.IntN(len(prefixPool))]
		a := broker.Read
		if rng.IntN(3) == 0 {
			a = broker.Write
		}
		in[p] = append(in[p], broker.Place{Bucket: b, Prefix: prefix, Access: a})
	}
	return in
}

func TestSizeModelMatchesRendering(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range 200 {
		in := randomInput(rng, 1+rng.IntN(80))
		// pack checks the model against the rendering and fails on mismatch.
		if _, err := (Compiler{MaxBytes: 300 + rng.IntN(2000)}).Compile(in); err != nil {
			t.Fatalf("input %d: %v", i, err)
		}
	}
}

// parseSets parses the sets of a compile of valid input, each within limit.
func parseSets(t *rapid.T, res Result, err error, limit int) []iameval.Policy {
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rejected) > 0 {
		t.Fatalf("valid input rejected: %+v", res.Rejected)
	}
	var parsed []iameval.Policy
	for i, s := range res.Sets {
		if len(s.Policy) > limit {
			t.Fatalf("set %d: %d bytes > %d", i, len(s.Policy), limit)
		}
		p, err := iameval.Parse(s.Policy)
		if err != nil {
			t.Fatalf("set %d does not parse: %v\n%s", i, err, s.Policy)
		}
		parsed = append(parsed, p)
	}
	return parsed
}
