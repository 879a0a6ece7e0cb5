package revoke_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/revoke"
	"github.com/credbroker/credbroker/internal/testkit/iameval"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// The base role's budgets at AWS's default quotas: IAM's 10,240 characters
// for a role's inline policies less iamrole's 256 spare, then 9 customer
// managed policies of 6,144 characters less 128 spare (the tenth managed
// policy a role may have is its ceiling).
var defaultBudgets = append([]int{10240 - 256}, repeat(6144-128, 9)...)

var limits = revoke.Limits{MaxSession: 15 * time.Minute, Margin: time.Minute, Budgets: defaultBudgets}

func repeat(n, times int) []int {
	out := make([]int, times)
	for i := range out {
		out[i] = n
	}
	return out
}

// A role policy that allows what the session policy allows, as the base
// role's ceiling does for the contract's actions.
var ceiling = mustParse(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}`)
var sessionPolicy = mustParse(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:PutObject"],"Resource":"arn:aws:s3:::lake/*"}]}`)

func mustParse(doc string) iameval.Policy {
	p, err := iameval.Parse(doc)
	if err != nil {
		panic(err)
	}
	return p
}

type fataler interface{ Fatalf(string, ...any) }

// works reports whether a session of a user never revoked when it was
// minted (tagged with the user's tag and the no-cutoff tag), issued at
// issued, may still read and write its bucket under the role with the
// revocation pages.
func works(t fataler, pages []string, user string, issued time.Time) bool {
	return worksTagged(t, pages, user, issued, broker.CutoffTag(user, time.Time{}))
}

// worksTagged is works for a session minted under the cutoff whose tag is
// tag ("" for a session without tags: minted before the endpoint tagged
// every session).
func worksTagged(t fataler, pages []string, user string, issued time.Time, tag string) bool {
	role := []iameval.Policy{ceiling}
	for _, doc := range pages {
		if doc == "" {
			continue
		}
		if revoke.Size(doc) > 10240 {
			t.Fatalf("a page of %d characters", revoke.Size(doc))
		}
		p, err := iameval.Parse(doc)
		if err != nil {
			t.Fatalf("rendered policy does not parse: %v\n%s", err, doc)
		}
		role = append(role, p)
	}
	ctx := map[string]string{"aws:SourceIdentity": user, "aws:TokenIssueTime": issued.UTC().Truncate(time.Second).Format(time.RFC3339)}
	if tag != "" {
		ctx["aws:PrincipalTag/"+broker.UserTagKey] = broker.UserTag(user)
		ctx["aws:PrincipalTag/"+broker.CutoffTagKey] = tag
	}
	ok := true
	for _, action := range []string{"s3:GetObject", "s3:PutObject"} {
		ok = ok && iameval.Session(role, sessionPolicy, iameval.Request{Action: action, Resource: "arn:aws:s3:::lake/key", Context: ctx})
	}
	return ok
}

func empty(pages []string) bool { return strings.Join(pages, "") == "" }

func TestARevokedUsersOlderSessionsStopAndNothingElseDoes(t *testing.T) {
	cut := t0.Add(3 * time.Second)
	earlier := t0.Add(-time.Hour)
	_, pages, ch := revoke.Apply(revoke.List{}, []revoke.Entry{{UserID: "alice", Before: cut}}, t0, limits)
	if len(ch.Added) != 1 || ch.FellBack {
		t.Fatalf("change %+v", ch)
	}
	for _, c := range []struct {
		name  string
		user  string
		tag   string
		works bool
	}{
		{"alice's session minted before any revocation is denied", "alice", broker.CutoffTag("alice", time.Time{}), false},
		{"alice's session minted under an earlier cutoff is denied", "alice", broker.CutoffTag("alice", earlier), false},
		{"alice's session without tags is denied", "alice", "", false},
		{"alice's session minted under the cutoff works", "alice", broker.CutoffTag("alice", cut), true},
		{"bob's session is untouched", "bob", broker.CutoffTag("bob", time.Time{}), true},
		{"bob's session under bob's own cutoff is untouched", "bob", broker.CutoffTag("bob", earlier), true},
		{"a session without tags is denied while anything is revoked", "bob", "", false},
	} {
		if got := worksTagged(t, pages, c.user, t0, c.tag); got != c.works {
			t.Errorf("%s: works = %v", c.name, got)
		}
	}
}

func TestALaterCutoffReplacesAnEarlierOneNeverTheReverse(t *testing.T) {
	l, _, _ := revoke.Apply(revoke.List{}, []revoke.Entry{{UserID: "alice", Before: t0.Add(time.Minute)}}, t0, limits)
	l, _, ch := revoke.Apply(l, []revoke.Entry{{UserID: "alice", Before: t0}}, t0, limits)
	if len(ch.Added) != 0 || !l.Users["alice"].Before.Equal(t0.Add(time.Minute)) || len(ch.Pages) != 0 {
		t.Errorf("an earlier cutoff changed the list: %+v %+v", ch, l)
	}
	l, _, ch = revoke.Apply(l, []revoke.Entry{{UserID: "alice", Before: t0.Add(2 * time.Minute)}}, t0, limits)
	if len(ch.Added) != 1 || !l.Users["alice"].Before.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("a later cutoff did not replace the earlier one: %+v %+v", ch, l)
	}
	if l.Version != 3 || l.Generation != 2 {
		t.Errorf("version %d, generation %d after three applications of which two changed the pages; want 3 and 2", l.Version, l.Generation)
	}
}

func TestEntriesLeaveOnceEverySessionTheyMatchHasExpired(t *testing.T) {
	l, _, _ := revoke.Apply(revoke.List{}, []revoke.Entry{{UserID: "alice", Before: t0}}, t0, limits)
	expiry := limits.MaxSession + limits.Margin
	l, pages, ch := revoke.Apply(l, nil, t0.Add(expiry), limits)
	if ch.Pruned != 0 || empty(pages) {
		t.Fatalf("entry pruned while a session could still match: %+v", l)
	}
	l, pages, ch = revoke.Apply(l, nil, t0.Add(expiry+time.Second), limits)
	if ch.Pruned != 1 || !empty(pages) || len(l.Users) != 0 {
		t.Errorf("expired entry kept: %+v, pages %q", l, pages)
	}
}

// An entry lasts as long as the sessions of whoever added it: a revoker
// configured with shorter sessions does not prune it early, nor does the
// fallback that absorbs it.
func TestAnEntryOutlivesAShorterConfiguredSession(t *testing.T) {
	hour := revoke.Limits{MaxSession: time.Hour, Margin: time.Minute, Budgets: defaultBudgets}
	l, _, _ := revoke.Apply(revoke.List{}, []revoke.Entry{{UserID: "alice", Before: t0}}, t0, hour)
	l, pages, ch := revoke.Apply(l, nil, t0.Add(30*time.Minute), limits)
	if ch.Pruned != 0 || !works(t, pages, "bob", t0) || works(t, pages, "alice", t0.Add(-time.Second)) {
		t.Fatalf("a one-hour entry was pruned by a 15-minute pruner: %+v", l)
	}
	tiny := limits
	tiny.Budgets = []int{10}
	l, pages, ch = revoke.Apply(l, []revoke.Entry{{UserID: "bob", Before: t0.Add(30 * time.Minute)}}, t0.Add(30*time.Minute), tiny)
	if !ch.FellBack || works(t, pages, "alice", t0.Add(-time.Second)) {
		t.Fatalf("setup: no fallback, or one that lets alice's old session through: %+v", l)
	}
	l, pages, _ = revoke.Apply(l, nil, t0.Add(50*time.Minute), limits)
	if works(t, pages, "alice", t0.Add(-time.Second)) {
		t.Errorf("the fallback that absorbed the one-hour entry was pruned at its own 15 minutes: %+v", l)
	}
	l, pages, _ = revoke.Apply(l, nil, t0.Add(time.Hour+time.Minute+time.Second), limits)
	if !empty(pages) {
		t.Errorf("the fallback outlived every session it can match: %+v", l)
	}
}

func user(i int) string { return fmt.Sprintf("3f8e2a5c-0b6d-4c1e-9a7f-%012d", i) }

// The figures docs/security.md "Size, pages and capacity" quotes: how many entries the role's pages
// hold at AWS's default quotas and with 20 managed policies a role.
func TestTheDocumentedCapacityHolds(t *testing.T) {
	for _, c := range []struct {
		name    string
		budgets []int
		want    int
	}{
		{"inline policy alone", defaultBudgets[:1], 307},
		{"inline and 9 managed pages (default quotas)", defaultBudgets, 2161},
		{"inline and 19 managed pages (20 managed policies a role)", append([]int{10240 - 256}, repeat(6144-128, 19)...), 4221},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := revoke.Capacity(c.budgets); got != c.want {
				t.Fatalf("capacity %d, the documents say %d: update them", got, c.want)
			}
			lim := revoke.Limits{MaxSession: time.Hour, Margin: time.Minute, Budgets: c.budgets}
			var batch []revoke.Entry
			for i := range c.want + 1 {
				batch = append(batch, revoke.Entry{UserID: user(i), Before: t0})
			}
			_, pages, ch := revoke.Apply(revoke.List{}, batch[:c.want], t0, lim)
			if ch.FellBack {
				t.Errorf("%d entries fell back", c.want)
			}
			for i, doc := range pages {
				if revoke.Size(doc) > c.budgets[i] {
					t.Errorf("page %d takes %d characters of %d", i, revoke.Size(doc), c.budgets[i])
				}
			}
			if _, _, ch = revoke.Apply(revoke.List{}, batch, t0, lim); !ch.FellBack {
				t.Errorf("%d entries fit: the capacity is larger than reckoned", c.want+1)
			}
		})
	}
}

// When the entries do not fit every page, those that do not fit give way to
// one cutoff for everyone, at the latest of theirs: no listed user's old
// session survives, and the users still listed keep their exact entries.
func TestAListTooLargeFallsBackToRevokingEverySessionBeforeATime(t *testing.T) {
	lim := revoke.Limits{MaxSession: 15 * time.Minute, Margin: time.Minute, Budgets: []int{1000, 700}}
	var l revoke.List
	var pages []string
	var ch revoke.Change
	n := 0
	for !ch.FellBack {
		n++
		l, pages, ch = revoke.Apply(l, []revoke.Entry{{UserID: user(n), Before: t0.Add(time.Duration(n) * time.Second)}}, t0.Add(time.Duration(n)*time.Second), lim)
		for i, doc := range pages {
			if revoke.Size(doc) > lim.Budgets[i] {
				t.Fatalf("after %d users page %d takes %d characters, over its budget of %d", n, i, revoke.Size(doc), lim.Budgets[i])
			}
		}
	}
	last := t0.Add(time.Duration(n) * time.Second)
	if !l.All.Before.Equal(last) || len(l.Users) != n-1 {
		t.Fatalf("fallback list %+v, want All = %v and %d users listed", l, last, n-1)
	}
	for i := 1; i <= n; i++ {
		if works(t, pages, user(i), last.Add(-time.Second)) {
			t.Errorf("user %d's old session survived the fallback", i)
		}
	}
	if works(t, pages, "anyone", last.Add(-time.Second)) || !works(t, pages, "anyone", last) {
		t.Error("the fallback does not cut every session at its time")
	}
	if !worksTagged(t, pages, user(1), last, broker.CutoffTag(user(1), l.Users[user(1)].Before)) {
		t.Error("a listed user's session minted under the cutoff, after the fallback's time, is denied")
	}
}

// Whatever the order and timing of revocations, every entry still in force
// denies its user's sessions minted before it, no session minted under a
// user's latest cutoff is denied but by the fallback, no page exceeds its
// budget, and a change rewrites only the pages it must.
func TestPropertyTheListDeniesExactlyWhatItMust(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		lim := revoke.Limits{MaxSession: 15 * time.Minute, Margin: time.Minute,
			Budgets: []int{rapid.IntRange(400, 1500).Draw(t, "inline"), rapid.IntRange(0, 800).Draw(t, "managed")}}
		var l revoke.List
		var pages []string
		now := t0
		want := map[string]time.Time{} // the latest cutoff asked for each user
		prev := map[string]time.Time{} // the one before it
		for step := range rapid.IntRange(1, 40).Draw(t, "steps") {
			now = now.Add(time.Duration(rapid.IntRange(0, 120).Draw(t, "wait")) * time.Second)
			u := fmt.Sprintf("user-%d", rapid.IntRange(0, 30).Draw(t, "user"))
			before := now.Add(time.Duration(rapid.IntRange(0, 4).Draw(t, "ahead")) * time.Second).Truncate(time.Second) // RevokeBefore of a clock at or before now
			was := l
			var ch revoke.Change
			l, pages, ch = revoke.Apply(l, []revoke.Entry{{UserID: u, Before: before}}, now, lim)
			if before.After(want[u]) {
				prev[u], want[u] = want[u], before
			}
			for i, doc := range pages {
				if revoke.Size(doc) > lim.Budgets[i] {
					t.Fatalf("step %d: page %d takes %d characters over a budget of %d", step, i, revoke.Size(doc), lim.Budgets[i])
				}
			}
			for i, doc := range revoke.Render(was, len(lim.Budgets)) {
				if changed := doc != pages[i]; changed != contains(ch.Pages, i) {
					t.Fatalf("step %d: page %d changed %v, reported %v", step, i, changed, ch.Pages)
				}
			}
			for u, cut := range want {
				if now.Sub(cut) > lim.MaxSession+lim.Margin {
					continue // every matching session has expired
				}
				if works(t, pages, u, cut.Add(-time.Second)) {
					t.Fatalf("step %d: %s's session minted before any revocation works\n%q", step, u, pages)
				}
				if !prev[u].IsZero() && worksTagged(t, pages, u, cut.Add(-time.Second), broker.CutoffTag(u, prev[u])) {
					t.Fatalf("step %d: %s's session minted under the earlier cutoff works\n%q", step, u, pages)
				}
				// A session minted under the user's cutoff carries its tag:
				// only the fallback, which spares nobody, denies it, and only
				// when it was issued before the fallback's time.
				issued := cut.Add(-time.Second)
				tagged := worksTagged(t, pages, u, issued, broker.CutoffTag(u, cut))
				if denied := !l.All.Before.IsZero() && issued.Before(l.All.Before.Truncate(time.Second)); tagged == denied {
					t.Fatalf("step %d: %s's session tagged with the cutoff %v: works %v, with the fallback at %v\n%q", step, u, cut, tagged, l.All.Before, pages)
				}
			}
		}
	})
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// A page lists its users' tags and, pair by pair, the tags of their
// cutoffs; page 0 also denies untagged sessions and carries the list's
// generation; each statement carries the time its last entry stays.
func TestRenderIsStableAndCompact(t *testing.T) {
	alice, bob := t0, t0.Add(-400*time.Millisecond)
	until := t0.Add(16 * time.Minute)
	l := revoke.List{Generation: 7, Users: map[string]revoke.Cutoff{
		"alice": {Before: alice, Until: until},
		"bob":   {Before: bob, Until: until, Page: 1},
	}}
	pair := func(u string, c time.Time) (string, string) { return broker.UserTag(u), broker.CutoffTag(u, c) }
	au, ac := pair("alice", alice)
	bu, bc := pair("bob", bob)
	users := func(u, c, sid string) string {
		return `{"Sid":"Users` + sid + `","Effect":"Deny","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/credbroker:user":["` + u + `"]},` +
			`"StringNotEquals":{"aws:PrincipalTag/credbroker:cutoff":["` + c + `"]}}}`
	}
	sid := fmt.Sprint(until.Unix())
	want := []string{
		`{"Version":"2012-10-17","Statement":[` +
			`{"Sid":"Untagged7","Effect":"Deny","Action":"*","Resource":"*","Condition":{"Null":{"aws:PrincipalTag/credbroker:user":"true"}}},` +
			users(au, ac, sid) + `]}`,
		`{"Version":"2012-10-17","Statement":[` + users(bu, bc, sid) + `]}`,
		"",
	}
	if diff := cmp.Diff(want, revoke.Render(l, 3)); diff != "" {
		t.Errorf("render (-want +got):\n%s", diff)
	}
	if !empty(revoke.Render(revoke.List{}, 3)) {
		t.Error("an empty list renders a policy")
	}
	got, err := revoke.ParseEnforced(revoke.Render(l, 3))
	if err != nil {
		t.Fatal(err)
	}
	wantPairs := []revoke.Pair{{User: au, Cutoff: ac, Until: until}, {User: bu, Cutoff: bc, Until: until}}
	if diff := cmp.Diff(revoke.Enforced{Generation: 7, Pairs: wantPairs}, got); diff != "" {
		t.Errorf("parsed back (-want +got):\n%s", diff)
	}
}

// Past capacity, a revocation that names what it took away falls back to
// denying those resources to every session issued before its cutoff
// (scope resource), and one that cannot name it to denying everything
// (scope all): other buckets stay reachable in the first case.
func TestAFallbackDeniesOnlyWhatTheChangeTookAwayWhenItCanNameIt(t *testing.T) {
	lim := revoke.Limits{MaxSession: 15 * time.Minute, Margin: time.Minute, Budgets: []int{1200}} // the fallbacks' reserve and a few entries
	lake := []string{"arn:aws:s3:::lake", "arn:aws:s3:::lake/raw/*"}
	reaches := func(pages []string, u, object string, issued time.Time) bool {
		role := []iameval.Policy{mustParse(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}`)}
		for _, doc := range pages {
			if doc != "" {
				role = append(role, mustParse(doc))
			}
		}
		session := mustParse(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}`)
		return iameval.Session(role, session, iameval.Request{Action: "s3:GetObject", Resource: object, Context: map[string]string{
			"aws:TokenIssueTime": issued.UTC().Truncate(time.Second).Format(time.RFC3339), "aws:SourceIdentity": u,
			"aws:PrincipalTag/" + broker.UserTagKey: broker.UserTag(u), "aws:PrincipalTag/" + broker.CutoffTagKey: broker.CutoffTag(u, time.Time{})}})
	}
	for _, c := range []struct {
		name      string
		resources []string
		otherOK   bool
	}{
		{"a removal that names its buckets denies them alone", lake, true},
		{"a change that names nothing denies everything", nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var batch []revoke.Entry
			for i := range 40 {
				batch = append(batch, revoke.Entry{UserID: user(i), Before: t0.Add(4 * time.Second), Resources: c.resources})
			}
			l, pages, ch := revoke.Apply(revoke.List{}, batch, t0, lim)
			if !ch.FellBack {
				t.Fatalf("40 users fit %d characters", lim.Budgets[0])
			}
			if revoke.Size(pages[0]) > lim.Budgets[0] {
				t.Fatalf("page 0 takes %d characters of %d", revoke.Size(pages[0]), lim.Budgets[0])
			}
			before, after := t0.Add(3*time.Second), t0.Add(5*time.Second)
			if reaches(pages, user(39), "arn:aws:s3:::lake/raw/k", before) || reaches(pages, "bystander", "arn:aws:s3:::lake/raw/k", before) {
				t.Errorf("a session from before the cutoff still reaches the removed folder:\n%q", pages)
			}
			if got := reaches(pages, "bystander", "arn:aws:s3:::other/k", before); got != c.otherOK {
				t.Errorf("a bystander's session on another bucket: reaches %v, want %v\n%q", got, c.otherOK, pages)
			}
			if !reaches(pages, "bystander", "arn:aws:s3:::lake/raw/k", after) {
				t.Errorf("a session issued after the cutoff is denied:\n%q", pages)
			}
			if c.resources != nil && (len(l.Resource) != 2 || !l.All.Before.IsZero()) {
				t.Errorf("fallback: resources %v, all %v; want the two resources only", l.Resource, l.All)
			}
			e, err := revoke.ParseEnforced(pages)
			if err != nil {
				t.Fatal(err)
			}
			if gap := l.Lost(e, t0); !gap.Empty() {
				t.Errorf("the list lacks what its own pages enforce: %+v", gap)
			}
		})
	}
}
