package policy

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

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

// BenchmarkCompileBounded is the typical input with expiries: none (as
// BenchmarkCompileTypical), every project bounded by one shared instant,
// each of the ten projects its own, and the worst case for sharing: every
// grant its own project and its own expiry.
func BenchmarkCompileBounded(b *testing.B) {
	at := time.Date(2026, 12, 31, 18, 0, 0, 0, time.UTC)
	for _, n := range []int{10, 100, 1000} {
		typical := typicalInput(n)
		worst := map[string][]broker.Place{}
		worstExp := map[string]time.Time{}
		for _, places := range typical {
			for _, pl := range places {
				p := fmt.Sprintf("p%05d", len(worst))
				worst[p], worstExp[p] = []broker.Place{pl}, at.Add(time.Duration(len(worst))*time.Minute)
			}
		}
		shared, own := map[string]time.Time{}, map[string]time.Time{}
		for p := range typical {
			shared[p], own[p] = at, at.Add(time.Duration(len(own))*time.Hour)
		}
		for _, c := range []struct {
			name    string
			in      map[string][]broker.Place
			expires map[string]time.Time
		}{
			{"none", typical, nil}, {"one-expiry", typical, shared}, {"expiry-per-project", typical, own}, {"expiry-per-grant", worst, worstExp},
		} {
			b.Run(fmt.Sprintf("%d-grants/%s", n, c.name), func(b *testing.B) {
				b.ReportAllocs()
				var res Result
				for b.Loop() {
					var err error
					if res, err = (Compiler{}).CompileBounded(c.in, c.expires); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(res.Sets)), "sets")
			})
		}
	}
}
