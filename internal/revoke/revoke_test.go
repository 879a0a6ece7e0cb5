package revoke_test

import (
	"fmt"
	"slices"
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

// The base role's budget: IAM's 10,240 characters for a role's inline
// policies less iamrole's 256 spare. The ceiling is a managed policy and
// takes none of it.
var limits = revoke.Limits{MaxSession: 15 * time.Minute, Margin: time.Minute, Budget: 10240 - 256}

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

// works reports whether an untagged session of user issued at issued may
// still read and write its bucket under the role with the revocation policy
// doc.
func works(t interface{ Fatalf(string, ...any) }, doc, user string, issued time.Time) bool {
	return worksTagged(t, doc, user, issued, "")
}

// worksTagged is works for a session tagged with tag (the cutoff tag of the
// item it was minted from; "" for none).
func worksTagged(t interface{ Fatalf(string, ...any) }, doc, user string, issued time.Time, tag string) bool {
	role := []iameval.Policy{ceiling}
	if doc != "" {
		p, err := iameval.Parse(doc)
		if err != nil {
			t.Fatalf("rendered policy does not parse: %v\n%s", err, doc)
		}
		role = append(role, p)
	}
	ctx := map[string]string{"aws:SourceIdentity": user, "aws:TokenIssueTime": issued.UTC().Truncate(time.Second).Format(time.RFC3339)}
	if tag != "" {
		ctx["aws:PrincipalTag/"+broker.CutoffTagKey] = tag
	}
	ok := true
	for _, action := range []string{"s3:GetObject", "s3:PutObject"} {
		ok = ok && iameval.Session(role, sessionPolicy, iameval.Request{Action: action, Resource: "arn:aws:s3:::lake/key", Context: ctx})
	}
	return ok
}

func TestARevokedUsersOlderSessionsStopAndNothingElseDoes(t *testing.T) {
	cut := t0.Add(3 * time.Second)
	_, doc, ch := revoke.Apply(revoke.List{}, []revoke.Entry{{UserID: "alice", Before: cut}}, t0, limits)
	if len(ch.Added) != 1 || ch.FellBack {
		t.Fatalf("change %+v", ch)
	}
	for _, c := range []struct {
		name   string
		user   string
		issued time.Time
		works  bool
	}{
		{"alice's session from before the cutoff is denied", "alice", cut.Add(-time.Second), false},
		{"alice's session from long before is denied", "alice", cut.Add(-10 * time.Minute), false},
		{"alice's session issued at the cutoff works", "alice", cut, true},
		{"alice's later session works", "alice", cut.Add(time.Minute), true},
		{"bob's old session is untouched", "bob", cut.Add(-time.Minute), true},
	} {
		if got := works(t, doc, c.user, c.issued); got != c.works {
			t.Errorf("%s: works = %v", c.name, got)
		}
	}
}

func TestALaterCutoffReplacesAnEarlierOneNeverTheReverse(t *testing.T) {
	l, _, _ := revoke.Apply(revoke.List{}, []revoke.Entry{{UserID: "alice", Before: t0.Add(time.Minute)}}, t0, limits)
	l, _, ch := revoke.Apply(l, []revoke.Entry{{UserID: "alice", Before: t0}}, t0, limits)
	if len(ch.Added) != 0 || !l.Users["alice"].Before.Equal(t0.Add(time.Minute)) {
		t.Errorf("an earlier cutoff changed the list: %+v %+v", ch, l)
	}
	l, _, ch = revoke.Apply(l, []revoke.Entry{{UserID: "alice", Before: t0.Add(2 * time.Minute)}}, t0, limits)
	if len(ch.Added) != 1 || !l.Users["alice"].Before.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("a later cutoff did not replace the earlier one: %+v %+v", ch, l)
	}
	if l.Version != 3 {
		t.Errorf("version %d after three applications, want 3", l.Version)
	}
}

func TestEntriesLeaveOnceEverySessionTheyMatchHasExpired(t *testing.T) {
	l, _, _ := revoke.Apply(revoke.List{}, []revoke.Entry{{UserID: "alice", Before: t0}}, t0, limits)
	expiry := limits.MaxSession + limits.Margin
	l, doc, ch := revoke.Apply(l, nil, t0.Add(expiry), limits)
	if ch.Pruned != 0 || doc == "" {
		t.Fatalf("entry pruned while a session could still match: %+v", l)
	}
	l, doc, ch = revoke.Apply(l, nil, t0.Add(expiry+time.Second), limits)
	if ch.Pruned != 1 || doc != "" || len(l.Users) != 0 {
		t.Errorf("expired entry kept: %+v, doc %q", l, doc)
	}
}

// An entry lasts as long as the sessions of whoever added it: a revoker or
// an operator configured with shorter sessions does not prune it early,
// nor does the fallback that absorbs it.
func TestAnEntryOutlivesAShorterConfiguredSession(t *testing.T) {
	hour := revoke.Limits{MaxSession: time.Hour, Margin: time.Minute, Budget: limits.Budget}
	l, _, _ := revoke.Apply(revoke.List{}, []revoke.Entry{{UserID: "alice", Before: t0}}, t0, hour)
	l, doc, ch := revoke.Apply(l, nil, t0.Add(30*time.Minute), limits)
	if ch.Pruned != 0 || !works(t, doc, "bob", t0) || works(t, doc, "alice", t0.Add(-time.Second)) {
		t.Fatalf("a one-hour entry was pruned by a 15-minute pruner: %+v", l)
	}
	tiny := limits
	tiny.Budget = 10
	l, doc, ch = revoke.Apply(l, []revoke.Entry{{UserID: "bob", Before: t0.Add(30 * time.Minute)}}, t0.Add(30*time.Minute), tiny)
	if !ch.FellBack || works(t, doc, "alice", t0.Add(-time.Second)) {
		t.Fatalf("setup: no fallback, or one that lets alice's old session through: %+v", l)
	}
	l, doc, _ = revoke.Apply(l, nil, t0.Add(50*time.Minute), limits)
	if works(t, doc, "alice", t0.Add(-time.Second)) {
		t.Errorf("the fallback that absorbed the one-hour entry was pruned at its own 15 minutes: %+v", l)
	}
	l, doc, _ = revoke.Apply(l, nil, t0.Add(time.Hour+time.Minute+time.Second), limits)
	if doc != "" {
		t.Errorf("the fallback outlived every session it can match: %+v", l)
	}
}

// When the users do not fit the budget, one cutoff for everyone takes their
// place: at the latest of theirs, so no listed user's old session survives.
func TestAListTooLargeFallsBackToRevokingEverySessionBeforeATime(t *testing.T) {
	var l revoke.List
	var doc string
	var ch revoke.Change
	latest := t0
	n := 0
	for !ch.FellBack {
		n++
		latest = t0.Add(time.Duration(n) * time.Second)
		l, doc, ch = revoke.Apply(l, []revoke.Entry{{UserID: fmt.Sprintf("3f8e2a5c-0b6d-4c1e-9a7f-%012d", n), Before: latest}}, t0, limits)
		if revoke.Size(doc) > limits.Budget {
			t.Fatalf("after %d users the policy takes %d characters, over the budget of %d", n, revoke.Size(doc), limits.Budget)
		}
	}
	// README "Revocation" and BENCHMARKS.md quote this figure.
	if n-1 != 35 {
		t.Errorf("%d distinct cutoffs held before the fallback, the documents say 35: update them", n-1)
	}
	if !l.All.Before.Equal(latest) || len(l.Users) != 0 {
		t.Fatalf("fallback list %+v, want All = %v and no users", l, latest)
	}
	for i := 1; i <= n; i++ {
		if works(t, doc, fmt.Sprintf("3f8e2a5c-0b6d-4c1e-9a7f-%012d", i), latest.Add(-time.Second)) {
			t.Errorf("user %d's old session survived the fallback", i)
		}
	}
	if works(t, doc, "anyone", latest.Add(-time.Second)) || !works(t, doc, "anyone", latest) {
		t.Error("the fallback does not cut every session at its time")
	}

	// Users revoked at once share one statement: many more fit, 167 of
	// them (the documents' figure) and not one more.
	var batch []revoke.Entry
	for i := range 168 {
		batch = append(batch, revoke.Entry{UserID: fmt.Sprintf("3f8e2a5c-0b6d-4c1e-9a7f-%012d", i), Before: t0})
	}
	_, doc, ch = revoke.Apply(revoke.List{}, batch[:167], t0, limits)
	if ch.FellBack || revoke.Size(doc) > limits.Budget {
		t.Errorf("167 users revoked at one time fell back (%d characters)", revoke.Size(doc))
	}
	if _, _, ch = revoke.Apply(revoke.List{}, batch, t0, limits); !ch.FellBack {
		t.Error("168 users revoked at one time fit: update the documents' figure")
	}
}

// Whatever the order and timing of revocations, every entry still in force
// denies its user's older sessions, no later session of a user is denied,
// and the policy never exceeds its budget.
func TestPropertyTheListDeniesExactlyWhatItMust(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		lim := revoke.Limits{MaxSession: 15 * time.Minute, Margin: time.Minute, Budget: rapid.IntRange(600, 3000).Draw(t, "budget")}
		var l revoke.List
		var doc string
		now := t0
		want := map[string]time.Time{} // the latest cutoff asked for each user
		for step := range rapid.IntRange(1, 40).Draw(t, "steps") {
			now = now.Add(time.Duration(rapid.IntRange(0, 120).Draw(t, "wait")) * time.Second)
			user := fmt.Sprintf("user-%d", rapid.IntRange(0, 30).Draw(t, "user"))
			before := now.Add(time.Duration(rapid.IntRange(0, 5).Draw(t, "ahead")) * time.Second).Truncate(time.Second)
			l, doc, _ = revoke.Apply(l, []revoke.Entry{{UserID: user, Before: before}}, now, lim)
			if before.After(want[user]) {
				want[user] = before
			}
			if revoke.Size(doc) > lim.Budget {
				t.Fatalf("step %d: %d characters over a budget of %d", step, revoke.Size(doc), lim.Budget)
			}
			for u, cut := range want {
				if now.Sub(cut) > lim.MaxSession+lim.Margin {
					continue // every matching session has expired
				}
				if works(t, doc, u, cut.Add(-time.Second)) {
					t.Fatalf("step %d: %s's session from before %v works\n%s", step, u, cut, doc)
				}
				cutoff := cut
				if l.All.Before.After(cutoff) {
					cutoff = l.All.Before
				}
				if !works(t, doc, u, cutoff) {
					t.Fatalf("step %d: %s's session issued at %v is denied\n%s", step, u, cutoff, doc)
				}
				// A session minted under the user's cutoff carries its
				// tag: only the fallback, which spares nobody, denies it.
				tagged := worksTagged(t, doc, u, cut.Add(-time.Second), broker.CutoffTag(u, cut))
				if fallback := !l.All.Before.Before(cut); tagged == fallback {
					t.Fatalf("step %d: %s's session tagged with the cutoff %v: works %v, with the fallback at %v\n%s", step, u, cut, tagged, l.All.Before, doc)
				}
				if worksTagged(t, doc, u, cut.Add(-time.Second), broker.CutoffTag(u, cut.Add(-time.Millisecond))) {
					t.Fatalf("step %d: %s's session tagged with another cutoff works\n%s", step, u, doc)
				}
			}
		}
	})
}

// Cutoffs within one second share a statement, rounded up to that second;
// each user's own tag is spared.
func TestRenderIsStableAndCompact(t *testing.T) {
	bob, alice, carol := t0.Add(-400*time.Millisecond), t0, t0.Add(300*time.Millisecond)
	l := revoke.List{Users: map[string]revoke.Cutoff{"bob": {Before: bob}, "alice": {Before: alice}, "carol": {Before: carol}}}
	tags := func(tags ...string) string {
		slices.Sort(tags)
		return `"` + strings.Join(tags, `","`) + `"`
	}
	want := `{"Version":"2012-10-17","Statement":[` +
		`{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":"2026-11-30T12:00:00Z"},"StringEquals":{"aws:SourceIdentity":["alice","bob"]},` +
		`"StringNotEquals":{"aws:PrincipalTag/credbroker:cutoff":[` + tags(broker.CutoffTag("alice", alice), broker.CutoffTag("bob", bob)) + `]}}},` +
		`{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":"2026-11-30T12:00:01Z"},"StringEquals":{"aws:SourceIdentity":["carol"]},` +
		`"StringNotEquals":{"aws:PrincipalTag/credbroker:cutoff":[` + tags(broker.CutoffTag("carol", carol)) + `]}}}]}`
	if diff := cmp.Diff(want, revoke.Render(l)); diff != "" {
		t.Errorf("render (-want +got):\n%s", diff)
	}
	if revoke.Render(revoke.List{}) != "" {
		t.Error("an empty list renders a policy")
	}
}
