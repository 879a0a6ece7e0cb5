package revoker_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/revoker"
	"github.com/credbroker/credbroker/internal/testkit/iameval"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// The base role's budgets at AWS's default quotas: IAM's 10,240 characters
// for a role's inline policies less iamrole's 256 spare, then 9 customer
// managed policies of 6,144 characters less 128 spare (the tenth managed
// policy a role may have is its ceiling).
var defaultBudgets = append([]int{10240 - 256}, repeat(6144-128, 9)...)

var limits = revoker.Limits{MaxSession: 15 * time.Minute, Margin: time.Minute, Budgets: defaultBudgets}

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
		if broker.PolicySize(doc) > 10240 {
			t.Fatalf("a page of %d characters", broker.PolicySize(doc))
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

// narrowed is a narrowing of user's item from cutoff prev (zero: none) to
// cutoff, as the projector's event gives it.
func narrowed(user string, prev, cutoff time.Time) revoker.Entry {
	return revoker.Entry{UserID: user, Before: cutoff, Revoked: []string{broker.CutoffTag(user, prev)}, Previous: prev,
		Causes: []string{user + "@" + cutoff.Format(time.RFC3339Nano)}}
}

func TestARevokedUsersOlderSessionsStopAndNothingElseDoes(t *testing.T) {
	prev, cut := t0.Add(-time.Minute), t0.Add(3*time.Second)
	_, pages, ch := revoker.Apply(revoker.List{}, []revoker.Entry{narrowed("alice", prev, cut)}, t0, limits)
	if len(ch.Added) != 1 || ch.FellBack {
		t.Fatalf("change %+v", ch)
	}
	for _, c := range []struct {
		name   string
		user   string
		tag    string
		issued time.Time
		works  bool
	}{
		{"alice's session minted from the narrowed item's predecessor is denied", "alice", broker.CutoffTag("alice", prev), t0, false},
		{"alice's session minted under a still earlier cutoff is denied", "alice", broker.CutoffTag("alice", time.Time{}), prev.Add(-time.Second), false},
		{"alice's session without tags is denied", "alice", "", t0, false},
		{"alice's session minted under the cutoff works", "alice", broker.CutoffTag("alice", cut), t0, true},
		{"bob's session is untouched", "bob", broker.CutoffTag("bob", time.Time{}), t0, true},
		{"bob's session under bob's own cutoff is untouched", "bob", broker.CutoffTag("bob", prev), t0, true},
		{"a session without tags is denied while anything is revoked", "bob", "", t0, false},
	} {
		if got := worksTagged(t, pages, c.user, c.issued, c.tag); got != c.works {
			t.Errorf("%s: works = %v\n%q", c.name, got, pages)
		}
	}
}

// Each narrowing revokes the cutoff it replaced, whatever the order in
// which they arrive and however often; the user's sessions of the latest
// cutoff are never denied, and a narrowing delivered again changes nothing.
func TestEachNarrowingRevokesWhatItReplacedInAnyOrder(t *testing.T) {
	c1, c2 := t0.Add(4*time.Second), t0.Add(64*time.Second)
	first, second := narrowed("alice", time.Time{}, c1), narrowed("alice", c1, c2)
	now := t0.Add(70 * time.Second)
	for _, tc := range []struct {
		name  string
		order []revoker.Entry
	}{
		{"in order", []revoker.Entry{first, second}},
		{"the second first", []revoker.Entry{second, first}},
		{"with a duplicate between", []revoker.Entry{second, second, first}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l revoker.List
			var pages []string
			for _, e := range tc.order {
				l, pages, _ = revoker.Apply(l, []revoker.Entry{e}, now, limits)
			}
			if worksTagged(t, pages, "alice", t0.Add(-time.Minute), broker.CutoffTag("alice", time.Time{})) ||
				worksTagged(t, pages, "alice", t0.Add(time.Minute), broker.CutoffTag("alice", c1)) {
				t.Errorf("a session of a replaced cutoff works:\n%q", pages)
			}
			if !worksTagged(t, pages, "alice", t0.Add(62*time.Second), broker.CutoffTag("alice", c2)) {
				t.Errorf("a session of the latest cutoff is denied:\n%q", pages)
			}
			again, _, ch := revoker.Apply(l, tc.order, now, limits)
			if len(ch.Pages) != 0 || ch.Noted != 0 || again.Generation != l.Generation {
				t.Errorf("delivered again: %+v", ch)
			}
		})
	}
	// The list's version counts every application, its generation those
	// that changed a page.
	l, _, _ := revoker.Apply(revoker.List{}, []revoker.Entry{first}, now, limits)
	l, _, _ = revoker.Apply(l, []revoker.Entry{first}, now, limits)
	l, _, _ = revoker.Apply(l, []revoker.Entry{second}, now, limits)
	if l.Version != 3 || l.Generation != 2 {
		t.Errorf("version %d, generation %d after three applications of which two changed the pages; want 3 and 2", l.Version, l.Generation)
	}
}

func TestEntriesLeaveOnceEverySessionTheyMatchHasExpired(t *testing.T) {
	l, _, _ := revoker.Apply(revoker.List{}, []revoker.Entry{narrowed("alice", time.Time{}, t0)}, t0, limits)
	expiry := limits.MaxSession + limits.Margin
	l, pages, ch := revoker.Apply(l, nil, t0.Add(expiry), limits)
	if ch.Pruned != 0 || empty(pages) {
		t.Fatalf("entry pruned while a session could still match: %+v", l)
	}
	l, pages, ch = revoker.Apply(l, nil, t0.Add(expiry+time.Second), limits)
	if ch.Pruned != 1 || !empty(pages) || len(l.Revoked) != 0 {
		t.Errorf("expired entry kept: %+v, pages %q", l, pages)
	}
}

// An entry lasts as long as the sessions of whoever added it: a revoker
// configured with shorter sessions does not prune it early, nor does the
// fallback that absorbs it.
func TestAnEntryOutlivesAShorterConfiguredSession(t *testing.T) {
	hour := revoker.Limits{MaxSession: time.Hour, Margin: time.Minute, Budgets: defaultBudgets}
	l, _, _ := revoker.Apply(revoker.List{}, []revoker.Entry{narrowed("alice", time.Time{}, t0)}, t0, hour)
	l, pages, ch := revoker.Apply(l, nil, t0.Add(30*time.Minute), limits)
	if ch.Pruned != 0 || !works(t, pages, "bob", t0) || works(t, pages, "alice", t0.Add(-time.Second)) {
		t.Fatalf("a one-hour entry was pruned by a 15-minute pruner: %+v", l)
	}
	tiny := limits
	tiny.Budgets = []int{10}
	l, pages, ch = revoker.Apply(l, []revoker.Entry{narrowed("bob", time.Time{}, t0.Add(30*time.Minute))}, t0.Add(30*time.Minute), tiny)
	if !ch.FellBack || works(t, pages, "alice", t0.Add(-time.Second)) {
		t.Fatalf("setup: no fallback, or one that lets alice's old session through: %+v", l)
	}
	l, pages, _ = revoker.Apply(l, nil, t0.Add(50*time.Minute), limits)
	if works(t, pages, "alice", t0.Add(-time.Second)) {
		t.Errorf("the fallback that absorbed the one-hour entry was pruned at its own 15 minutes: %+v", l)
	}
	l, pages, _ = revoker.Apply(l, nil, t0.Add(time.Hour+time.Minute+time.Second), limits)
	if !empty(pages) {
		t.Errorf("the fallback outlived every session it can match: %+v", l)
	}
}

func user(i int) string { return fmt.Sprintf("3f8e2a5c-0b6d-4c1e-9a7f-%012d", i) }

// The figures docs/security.md "Size, pages and capacity" quotes: how many
// narrowings the role's pages hold at AWS's default quotas and with 20
// managed policies a role.
func TestTheDocumentedCapacityHolds(t *testing.T) {
	for _, c := range []struct {
		name    string
		budgets []int
		want    int
	}{
		{"inline policy alone", defaultBudgets[:1], 577},
		{"inline and 9 managed pages (default quotas)", defaultBudgets, 4069},
		{"inline and 19 managed pages (20 managed policies a role)", append([]int{10240 - 256}, repeat(6144-128, 19)...), 7949},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := revoker.Capacity(c.budgets); got != c.want {
				t.Fatalf("capacity %d, the documents say %d: update them", got, c.want)
			}
			lim := revoker.Limits{MaxSession: time.Hour, Margin: time.Minute, Budgets: c.budgets}
			var batch []revoker.Entry
			for i := range c.want + 1 {
				batch = append(batch, narrowed(user(i), time.Time{}, t0))
			}
			_, pages, ch := revoker.Apply(revoker.List{}, batch[:c.want], t0, lim)
			if ch.FellBack {
				t.Errorf("%d entries fell back", c.want)
			}
			for i, doc := range pages {
				if broker.PolicySize(doc) > c.budgets[i] {
					t.Errorf("page %d takes %d characters of %d", i, broker.PolicySize(doc), c.budgets[i])
				}
			}
			if _, _, ch = revoker.Apply(revoker.List{}, batch, t0, lim); !ch.FellBack {
				t.Errorf("%d entries fit: the capacity is larger than reckoned", c.want+1)
			}
		})
	}
}

// When the entries do not fit every page, those that do not fit give way to
// one cutoff for everyone, at the latest of theirs: no listed user's old
// session survives, and the users still listed keep their exact entries.
func TestAListTooLargeFallsBackToRevokingEverySessionBeforeATime(t *testing.T) {
	lim := revoker.Limits{MaxSession: 15 * time.Minute, Margin: time.Minute, Budgets: []int{1400, 300}}
	var l revoker.List
	var pages []string
	var ch revoker.Change
	n := 0
	for !ch.FellBack {
		n++
		at := t0.Add(time.Duration(n) * time.Second)
		l, pages, ch = revoker.Apply(l, []revoker.Entry{narrowed(user(n), time.Time{}, at)}, at, lim)
		for i, doc := range pages {
			if broker.PolicySize(doc) > lim.Budgets[i] {
				t.Fatalf("after %d users page %d takes %d characters, over its budget of %d", n, i, broker.PolicySize(doc), lim.Budgets[i])
			}
		}
	}
	last := t0.Add(time.Duration(n) * time.Second)
	if !l.All.Before.Equal(last) || len(l.Revoked) != n-1 {
		t.Fatalf("fallback list %+v, want All = %v and %d tags listed", l, last, n-1)
	}
	for i := 1; i <= n; i++ {
		if works(t, pages, user(i), last.Add(-time.Second)) {
			t.Errorf("user %d's old session survived the fallback", i)
		}
	}
	if works(t, pages, "anyone", last.Add(-time.Second)) || !works(t, pages, "anyone", last) {
		t.Error("the fallback does not cut every session at its time")
	}
	if !worksTagged(t, pages, user(1), last, broker.CutoffTag(user(1), t0.Add(time.Second))) {
		t.Error("a listed user's session minted under the cutoff, after the fallback's time, is denied")
	}
}

// step is one narrowing of a user in the property below: the
// projector's clock reading, when its write landed, and the cutoffs.
type step struct {
	user        int
	index       int // 1 for the user's first
	started     time.Time
	landed      time.Time
	prev, after time.Time
}

// Whatever the timing, order and repetition of narrowings, the list denies
// a session exactly when a narrowing of its user that the list has applied
// revokes it: the session was minted under an earlier cutoff than that
// narrowing's, and is still alive. The exceptions are the fallback (it
// denies every session issued before its time) and, when a narrowing
// arrives before the one that brought its user to its previous cutoff,
// sessions issued before that previous cutoff, which the list denies by
// time, sparing the latest cutoff it knows, until the earlier narrowing
// arrives: only sessions of a cutoff newer than every applied narrowing's,
// issued before an applied narrowing's previous cutoff, and never when
// each user's narrowings arrive in order. No page exceeds its budget, and
// a change rewrites only the pages it must.
func TestPropertyASessionIsDeniedExactlyWhenAnAppliedNarrowingRevokesIt(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		lim := revoker.Limits{MaxSession: 15 * time.Minute, Margin: time.Minute,
			Budgets: []int{rapid.IntRange(1100, 2500).Draw(t, "inline"), rapid.IntRange(0, 800).Draw(t, "managed")}}
		ms := func(label string, lo, hi time.Duration) time.Duration {
			return time.Duration(rapid.Int64Range(int64(lo/time.Millisecond), int64(hi/time.Millisecond)).Draw(t, label)) * time.Millisecond
		}
		half := broker.ClockMargin/2 - time.Millisecond
		users := rapid.IntRange(1, 4).Draw(t, "users")
		// Each user's narrowings: the projector reads its clock, its
		// write lands within the commit window, and the cutoff is the
		// next after the previous one.
		var all []step
		cutoffs := make([][]time.Time, users) // [0] is none
		landed := make([][]time.Time, users)
		for u := range users {
			cutoffs[u], landed[u] = []time.Time{{}}, []time.Time{t0.Add(-time.Hour)}
			at := t0
			for i := range rapid.IntRange(1, 5).Draw(t, "narrowings") {
				at = at.Add(ms("between narrowings", 0, 20*time.Second))
				if rapid.IntRange(0, 5).Draw(t, "long wait") == 0 {
					at = at.Add(ms("long wait", 0, 20*time.Minute))
				}
				prev := cutoffs[u][i]
				n := step{user: u, index: i + 1, started: at, landed: at.Add(ms("write latency", 0, broker.CommitWindow)), prev: prev,
					after: broker.NextCutoff(prev, broker.RevokeBefore(at.Add(ms("projector clock", -half, half))))}
				all = append(all, n)
				cutoffs[u], landed[u] = append(cutoffs[u], n.after), append(landed[u], n.landed)
			}
		}
		// A session of each cutoff: minted from a read after its write
		// landed and before the next one's, within the issue window, by
		// STS's clock.
		type sess struct {
			user, cutoff int
			issued       time.Time
		}
		var sessions []sess
		for u := range users {
			for j := range cutoffs[u] {
				from, to := landed[u][j], landed[u][j].Add(time.Hour)
				if j+1 < len(cutoffs[u]) {
					to = landed[u][j+1]
				}
				read := from.Add(ms("read", 0, max(to.Sub(from)-time.Millisecond, 0)))
				sessions = append(sessions, sess{u, j, read.Add(ms("issue latency", 0, broker.IssueWindow)).Add(ms("sts clock", -half, half))})
			}
		}
		name := func(u int) string { return fmt.Sprintf("user-%d", u) }
		entry := func(n step) revoker.Entry {
			e := narrowed(name(n.user), n.prev, n.after)
			e.Causes = []string{fmt.Sprintf("%s/%d", name(n.user), n.index)}
			return e
		}

		var l revoker.List
		var pages []string
		applied := map[[2]int]bool{}   // user, narrowing index
		inOrder := make([]bool, users) // each narrowing arrived after the one before it
		for u := range inOrder {
			inOrder[u] = true
		}
		now := t0
		for delivery := range rapid.IntRange(1, 30).Draw(t, "deliveries") {
			now = now.Add(ms("until the next delivery", 0, 10*time.Second))
			if rapid.IntRange(0, 6).Draw(t, "long pause") == 0 {
				now = now.Add(ms("long pause", 0, 20*time.Minute))
			}
			// A batch: narrowings whose write landed, in any order, some
			// again.
			var batch []revoker.Entry
			var first []step
			for _, i := range rapid.SliceOfN(rapid.IntRange(0, len(all)-1), 0, 6).Draw(t, "batch") {
				n := all[i]
				if n.landed.After(now) {
					continue
				}
				batch = append(batch, entry(n))
				if !applied[[2]int{n.user, n.index}] {
					first = append(first, n)
				}
			}
			for _, n := range first {
				if n.index > 1 && !applied[[2]int{n.user, n.index - 1}] && !slices.ContainsFunc(first, func(m step) bool { return m.user == n.user && m.index == n.index-1 }) {
					inOrder[n.user] = false
				}
			}
			for _, n := range first {
				applied[[2]int{n.user, n.index}] = true
			}
			was := l
			var ch revoker.Change
			l, pages, ch = revoker.Apply(l, batch, now, lim)
			for i, doc := range pages {
				if broker.PolicySize(doc) > lim.Budgets[i] {
					t.Fatalf("delivery %d: page %d takes %d characters over a budget of %d", delivery, i, broker.PolicySize(doc), lim.Budgets[i])
				}
			}
			for i, doc := range revoker.Render(was, len(lim.Budgets)) {
				if changed := doc != pages[i]; changed != slices.Contains(ch.Pages, i) {
					t.Fatalf("delivery %d: page %d changed %v, reported %v", delivery, i, changed, ch.Pages)
				}
			}
			fallback := time.Time{}
			if !l.All.Before.IsZero() {
				fallback = l.All.Before.Truncate(time.Second)
				if !fallback.Equal(l.All.Before) {
					fallback = fallback.Add(time.Second)
				}
			}
			for _, s := range sessions {
				if now.After(s.issued.Add(lim.MaxSession)) {
					continue // expired
				}
				revoked, newest, latestPrev := false, 0, time.Time{}
				for _, n := range all {
					if n.user != s.user || !applied[[2]int{n.user, n.index}] {
						continue
					}
					revoked, newest = revoked || n.index > s.cutoff, max(newest, n.index)
					latestPrev = latest(latestPrev, n.prev)
				}
				works := worksTagged(t, pages, name(s.user), s.issued, broker.CutoffTag(name(s.user), cutoffs[s.user][s.cutoff]))
				sec := s.issued.Truncate(time.Second)
				switch {
				case revoked && works:
					t.Fatalf("delivery %d: %s's session of cutoff %d, issued %v, works though an applied narrowing revoked it\n%q",
						delivery, name(s.user), s.cutoff, s.issued, pages)
				case revoked || works:
				case sec.Before(fallback):
				case !inOrder[s.user] && s.cutoff > newest && sec.Before(latestPrev):
				default:
					t.Fatalf("delivery %d: %s's session of cutoff %d, issued %v, is denied though no applied narrowing revokes it (fallback %v, in order %v)\n%q",
						delivery, name(s.user), s.cutoff, s.issued, l.All.Before, inOrder[s.user], pages)
				}
			}
		}
	})
}

// A page lists its revoked tags in one statement, and its users' entries
// in one statement per issue time, pairing each user's tag with the tag of
// the cutoff it spares; page 0 also denies untagged sessions and carries
// the list's generation; each statement carries the time its last entry
// stays. The pages read back as they were written.
func TestRenderIsStableAndCompact(t *testing.T) {
	alice, bob := t0, t0.Add(-400*time.Millisecond)
	until := t0.Add(16 * time.Minute)
	revoked := broker.CutoffTag("carol", time.Time{})
	l := revoker.List{Generation: 7,
		Revoked: map[string]revoker.Cutoff{revoked: {Before: t0, Until: until, User: "carol"}},
		Users: map[string]revoker.Cutoff{
			"alice": {Before: alice, IssuedBefore: alice.Add(1500 * time.Millisecond), Until: until},
			"bob":   {Before: bob, IssuedBefore: bob, Until: until, Page: 1},
		}}
	pair := func(u string, c time.Time) (string, string) { return broker.UserTag(u), broker.CutoffTag(u, c) }
	au, ac := pair("alice", alice)
	bu, bc := pair("bob", bob)
	sid := fmt.Sprint(until.Unix())
	users := func(u, c string, before time.Time) string {
		return `{"Sid":"Issued` + fmt.Sprint(before.Unix()) + `Until` + sid + `","Effect":"Deny","Action":"*","Resource":"*","Condition":{` +
			`"DateLessThan":{"aws:TokenIssueTime":"` + before.Format(time.RFC3339) + `"},` +
			`"StringEquals":{"aws:PrincipalTag/credbroker:user":["` + u + `"]},` +
			`"StringNotEquals":{"aws:PrincipalTag/credbroker:cutoff":["` + c + `"]}}}`
	}
	want := []string{
		`{"Version":"2012-10-17","Statement":[` +
			`{"Sid":"Untagged7","Effect":"Deny","Action":"*","Resource":"*","Condition":{"Null":{"aws:PrincipalTag/credbroker:user":"true"}}},` +
			`{"Sid":"Revoked` + sid + `","Effect":"Deny","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/credbroker:cutoff":["` + revoked + `"]}}},` +
			users(au, ac, t0.Add(2*time.Second)) + `]}`,
		`{"Version":"2012-10-17","Statement":[` + users(bu, bc, t0) + `]}`,
		"",
	}
	if diff := cmp.Diff(want, revoker.Render(l, 3)); diff != "" {
		t.Errorf("render (-want +got):\n%s", diff)
	}
	if !empty(revoker.Render(revoker.List{}, 3)) {
		t.Error("an empty list renders a policy")
	}
	got, err := revoker.ParseEnforced(revoker.Render(l, 3))
	if err != nil {
		t.Fatal(err)
	}
	wantEnforced := revoker.Enforced{Generation: 7, Revoked: []revoker.Revocation{{Tag: revoked, Until: until}},
		Pairs: []revoker.Pair{{User: au, Cutoff: ac, IssuedBefore: t0.Add(2 * time.Second), Until: until}, {User: bu, Cutoff: bc, IssuedBefore: t0, Until: until, Page: 1}}}
	if diff := cmp.Diff(wantEnforced, got); diff != "" {
		t.Errorf("parsed back (-want +got):\n%s", diff)
	}
	if gap := l.Lost(got, t0); !gap.Empty() {
		t.Errorf("the list lacks what its own pages enforce: %+v", gap)
	}
}

// A revocation whose previous cutoff is unknown (an operator's, a
// narrowing of an unreadable item) denies the user's sessions issued
// before its time, whatever their cutoff, but those of the user's latest
// cutoff known: the new one, and then any the user is narrowed to later.
func TestARevocationOfUnknownPreviousCutoffDeniesByTimeAndSparesTheLatestCutoff(t *testing.T) {
	cut := broker.RevokeBefore(t0)
	l, pages, _ := revoker.Apply(revoker.List{}, []revoker.Entry{{UserID: "alice", Before: cut}}, t0, limits)
	for _, c := range []struct {
		name   string
		tag    string
		issued time.Time
		works  bool
	}{
		{"a session of any earlier cutoff issued before the cutoff is denied", broker.CutoffTag("alice", t0.Add(-time.Minute)), cut.Add(-time.Second), false},
		{"a session never revoked issued before the cutoff is denied", broker.CutoffTag("alice", time.Time{}), t0.Add(-time.Hour), false},
		{"a session of the new cutoff works", broker.CutoffTag("alice", cut), t0, true},
	} {
		if got := worksTagged(t, pages, "alice", c.issued, c.tag); got != c.works {
			t.Errorf("%s: works %v\n%q", c.name, got, pages)
		}
	}
	// Narrowed again two seconds later: the entry now spares the newer
	// cutoff, and the narrowing revokes the older one.
	next := broker.RevokeBefore(t0.Add(2 * time.Second))
	_, pages, _ = revoker.Apply(l, []revoker.Entry{narrowed("alice", cut, next)}, t0.Add(3*time.Second), limits)
	if !worksTagged(t, pages, "alice", t0.Add(2500*time.Millisecond), broker.CutoffTag("alice", next)) {
		t.Errorf("a session of the newer cutoff issued before the entry's time is denied:\n%q", pages)
	}
	if worksTagged(t, pages, "alice", t0.Add(2*time.Second), broker.CutoffTag("alice", cut)) {
		t.Errorf("a session of the replaced cutoff works:\n%q", pages)
	}
}

// A list and a role of the previous revoker (an entry per user that spared
// the user's cutoff tag, whenever a session was issued) are read and
// bounded at the time of the first run after the upgrade: every session
// they denied stays denied, and a session minted after the run under a
// later cutoff works.
func TestAListOfThePreviousFormatIsBoundedNotLifted(t *testing.T) {
	cut := t0.Add(4 * time.Second)
	old := revoker.List{Version: 3, Generation: 2, Users: map[string]revoker.Cutoff{"alice": {Before: cut, Until: t0.Add(16 * time.Minute)}}}
	oldPage := `{"Version":"2012-10-17","Statement":[` +
		`{"Sid":"Untagged2","Effect":"Deny","Action":"*","Resource":"*","Condition":{"Null":{"aws:PrincipalTag/credbroker:user":"true"}}},` +
		`{"Sid":"Users` + fmt.Sprint(t0.Add(16*time.Minute).Unix()) + `","Effect":"Deny","Action":"*","Resource":"*","Condition":{` +
		`"StringEquals":{"aws:PrincipalTag/credbroker:user":["` + broker.UserTag("alice") + `"]},` +
		`"StringNotEquals":{"aws:PrincipalTag/credbroker:cutoff":["` + broker.CutoffTag("alice", cut) + `"]}}}]}`
	e, err := revoker.ParseEnforced([]string{oldPage})
	if err != nil || len(e.Pairs) != 1 || !e.Pairs[0].IssuedBefore.IsZero() {
		t.Fatalf("the previous revoker's page reads as %+v, %v", e, err)
	}
	now := t0.Add(time.Minute)
	for _, tc := range []struct {
		name string
		list revoker.List
	}{
		{"from its list", old},
		{"from its page, the list lost", revoker.List{}.Restore(revoker.List{}.Lost(e, now), nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, pages, ch := revoker.Apply(tc.list, nil, now, limits)
			if len(ch.Pages) == 0 {
				t.Fatal("the previous format was not rewritten")
			}
			if worksTagged(t, pages, "alice", now.Add(time.Second), broker.CutoffTag("alice", time.Time{})) ||
				worksTagged(t, pages, "alice", now.Add(time.Second), "") {
				t.Errorf("a session the previous revoker denied works:\n%q", pages)
			}
			if !worksTagged(t, pages, "alice", now, broker.CutoffTag("alice", cut)) {
				t.Errorf("a session of the spared cutoff is denied:\n%q", pages)
			}
			later := broker.RevokeBefore(now.Add(time.Minute))
			if !worksTagged(t, pages, "alice", now.Add(time.Minute), broker.CutoffTag("alice", later)) {
				t.Errorf("a session minted after the upgrade under a later cutoff is denied:\n%q", pages)
			}
		})
	}
}

// Past capacity, a revocation that names what it took away falls back to
// denying those resources to every session issued before its cutoff
// (scope resource), and one that cannot name it to denying everything
// (scope all): other buckets stay reachable in the first case.
func TestAFallbackDeniesOnlyWhatTheChangeTookAwayWhenItCanNameIt(t *testing.T) {
	lim := revoker.Limits{MaxSession: 15 * time.Minute, Margin: time.Minute, Budgets: []int{1200}} // the fallbacks' reserve and a few entries
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
			var batch []revoker.Entry
			for i := range 40 {
				e := narrowed(user(i), time.Time{}, t0.Add(4*time.Second))
				e.Resources = c.resources
				batch = append(batch, e)
			}
			l, pages, ch := revoker.Apply(revoker.List{}, batch, t0, lim)
			if !ch.FellBack {
				t.Fatalf("40 users fit %d characters", lim.Budgets[0])
			}
			if broker.PolicySize(pages[0]) > lim.Budgets[0] {
				t.Fatalf("page 0 takes %d characters of %d", broker.PolicySize(pages[0]), lim.Budgets[0])
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
			e, err := revoker.ParseEnforced(pages)
			if err != nil {
				t.Fatal(err)
			}
			if gap := l.Lost(e, t0); !gap.Empty() {
				t.Errorf("the list lacks what its own pages enforce: %+v", gap)
			}
		})
	}
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
