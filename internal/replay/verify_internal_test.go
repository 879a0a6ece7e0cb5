package replay

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// However many findings a verify makes, it holds at most twice MaxListed.
func TestFindingListStaysBoundedAndKeepsTheFirstByUser(t *testing.T) {
	const bound = 10
	var all []Finding
	for u := range 2000 {
		user := fmt.Sprintf("user-%05d", u)
		all = append(all, Finding{Kind: Missing, UserID: user}, Finding{Kind: MissingIndex, UserID: user, Project: "p1"})
	}
	all = append(all, Finding{Kind: ExtraIndex, UserID: "user-00000", Project: "p0"})
	want := slices.Clone(all)
	slices.SortFunc(want, compareFindings)
	rng := rand.New(rand.NewPCG(3, 4))
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })

	l := findingList{max: bound, counts: map[Kind]int{}}
	for _, f := range all {
		l.add(f)
		if len(l.kept) > 2*bound {
			t.Fatalf("%d findings held, bound %d", len(l.kept), 2*bound)
		}
	}
	got, cut := l.result()
	if diff := cmp.Diff(want[:bound], got); diff != "" {
		t.Errorf("kept findings (-want +got):\n%s", diff)
	}
	if !cut {
		t.Error("not reported as cut")
	}
	if diff := cmp.Diff(map[Kind]int{Missing: 2000, MissingIndex: 2000, ExtraIndex: 1}, l.counts); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}

	few := findingList{max: bound, counts: map[Kind]int{}}
	few.add(want[:3]...)
	if got, cut := few.result(); cut || len(got) != 3 {
		t.Errorf("3 findings of at most %d: got %d, cut %v", bound, len(got), cut)
	}
}
