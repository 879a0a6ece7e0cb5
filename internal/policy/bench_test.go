package policy

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/credbroker/credbroker/internal/broker"
)

func BenchmarkCompile(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		benchCompile(b, n, randomInput(rand.New(rand.NewPCG(uint64(n), 1)), n))
	}
}

func benchCompile(b *testing.B, n int, in map[string][]broker.Place) {
	b.Run(fmt.Sprint(n, "-grants"), func(b *testing.B) {
		b.ReportAllocs()
		var sets int
		for b.Loop() {
			res, err := Compiler{}.Compile(in)
			if err != nil {
				b.Fatal(err)
			}
			sets = len(res.Sets)
		}
		b.ReportMetric(float64(sets), "sets")
	})
}

// BenchmarkCompileProject is the work behind a ?project= answer: one
// project's places compiled on the request path.
func BenchmarkCompileProject(b *testing.B) {
	in := map[string][]broker.Place{"p1": {
		{Bucket: "analytics-raw", Prefix: "", Access: broker.Read},
		{Bucket: "analytics-curated", Prefix: "team-a/", Access: broker.Write},
		{Bucket: "shared-exports", Prefix: "p1/", Access: broker.Read},
	}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := (Compiler{}).Compile(in); err != nil {
			b.Fatal(err)
		}
	}
}

// typicalInput is n grants as a data platform has them: ten projects,
// distinct 20-40 character bucket names, half whole buckets, half one team
// folder, a quarter write; each project's places in bucket order, as the
// projector passes them (DynamoDB returns a project's buckets in sort-key
// order).
func typicalInput(n int) map[string][]broker.Place {
	in := map[string][]broker.Place{}
	for i := range n {
		p := fmt.Sprintf("project-%02d", i%10)
		pl := broker.Place{Bucket: fmt.Sprintf("acme-data-%s-%04d", []string{"raw", "curated-zone", "exports-to-partners"}[i%3], i), Access: broker.Read}
		if i%2 == 1 {
			pl.Prefix = fmt.Sprintf("team-%02d/", i%7)
		}
		if i%4 == 0 {
			pl.Access = broker.Write
		}
		in[p] = append(in[p], pl)
	}
	for _, places := range in {
		slices.SortFunc(places, func(a, b broker.Place) int { return strings.Compare(a.Bucket, b.Bucket) })
	}
	return in
}

func BenchmarkCompileTypical(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		benchCompile(b, n, typicalInput(n))
	}
}
