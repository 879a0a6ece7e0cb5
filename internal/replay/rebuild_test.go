package replay_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/exitcode"
	"github.com/credbroker/credbroker/internal/projector"
	"github.com/credbroker/credbroker/internal/replay"
)

// populate writes a small organisation and projects it live.
func (f *fixture) populate() {
	f.t.Helper()
	f.member("alice", "p1", "write")
	f.member("alice", "p2", "read")
	f.member("bob", "p1", "read")
	f.member("carol", "p2", "write")
	f.member("dave", "p3", "read")
	f.member("erin", "p1", "read")
	f.bucket("p1", "lake-raw", "")
	f.bucket("p2", "exports", "team-a/")
	f.bucket("p3", "scratch", "")
	f.project()
}

// A forged document granting a bucket nobody granted.
const forgedDoc = `{"grants":[{"bucket":"forged","prefix":"","access":"write","projects":["p9"]}],"sets":[{"policy":"{}","grants":[0]}],"byProject":{"p9":[{"bucket":"forged","prefix":"","access":"write"}]}}`

// damage breaks the policy table in every way Verify must notice,
// including stale index entries, harmless but removed by Rebuild.
func (f *fixture) damage() {
	f.t.Helper()
	pol := f.policy
	// alice's item is lost.
	pol.DeleteItem(f.t, "alice")
	// bob's item is altered: other grants, other version.
	pol.SetDoc(f.t, "bob", "tampered", forgedDoc)
	// zed has no membership but an item granting a bucket.
	pol.PutItem(f.t, "zed", "bogus", forgedDoc, 1)
	// dave is a member (of p3) but his item grants what p3 does not.
	f.leave("dave", "p3")
	f.member("dave", "p4", "read") // p4 has no bucket
	pol.PutItem(f.t, "dave", "bogus", forgedDoc, 99)
	pol.PutEntry(f.t, "p4", "dave", 99)
	// carol's index entry for p2 is lost: a bucket change of p2 would miss her.
	pol.DeleteEntry(f.t, "p2", "carol")
	// yuri left p3 long ago, but the index still lists him.
	pol.PutEntry(f.t, "p3", "yuri", 7)
	// The membership changes above are not projected: damage, not news.
	f.projected = len(f.streamRecords())
}

func TestVerifyReportsDamageRebuildRepairsItAndASecondRebuildChangesNothing(t *testing.T) {
	f := newFixture(t)
	f.populate()
	ctx := context.Background()

	rep, err := f.svc.Verify(ctx)
	if err != nil || rep.Drift() != 0 {
		t.Fatalf("verify of a healthy table: drift %d, err %v, findings %+v", rep.Drift(), err, rep.Findings)
	}
	f.damage()

	rep, err = f.svc.Verify(ctx)
	var drift *replay.DriftError
	if !errors.As(err, &drift) || replay.ExitCode(err) != exitcode.Found {
		t.Fatalf("verify of a damaged table: err %v, want a DriftError", err)
	}
	want := []replay.Finding{
		{Kind: replay.Missing, UserID: "alice"},
		{Kind: replay.Different, UserID: "bob"},
		{Kind: replay.MissingIndex, UserID: "carol", Project: "p2"},
		{Kind: replay.Extra, UserID: "dave"},
		{Kind: replay.ExtraIndex, UserID: "dave", Project: "p3"},
		{Kind: replay.ExtraIndex, UserID: "yuri", Project: "p3"},
		{Kind: replay.Extra, UserID: "zed"},
	}
	if diff := cmp.Diff(want, rep.Findings); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
	if rep.Missing != 1 || rep.Different != 1 || rep.Extra != 2 || rep.MissingIndex != 1 || rep.ExtraIndex != 2 ||
		rep.Users != 5 || rep.Orphans != 1 || rep.Truncated {
		t.Errorf("counts: %+v", rep)
	}
	if got := f.audit.Of(broker.DetailPolicyDrift); len(got) != 1 {
		t.Errorf("%d PolicyDrift events, want 1", len(got))
	}

	changedBefore := len(f.audit.Of(broker.DetailPolicyChanged))
	rep, err = f.svc.Rebuild(ctx)
	if err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	// alice, bob, dave and zed change, and yuri, whose stale entry (like
	// dave's, who left p3) is pruned, gets a tombstone; erin's and carol's
	// items were fine.
	if rep.Users != 5 || rep.Orphans != 1 || rep.StaleIndex != 2 || rep.Changed != 5 || rep.Failed != 0 {
		t.Errorf("rebuild report: %+v", rep)
	}
	changes := f.audit.Of(broker.DetailPolicyChanged)[changedBefore:]
	var users []string
	for _, e := range changes {
		d := e.Detail.(broker.PolicyChangedDetail)
		users = append(users, d.UserID)
		if !slices.Equal(d.Causes, []string{"rebuild:" + rep.RunID}) {
			t.Errorf("PolicyChanged of %s has causes %v", d.UserID, d.Causes)
		}
	}
	slices.Sort(users)
	if diff := cmp.Diff([]string{"alice", "bob", "dave", "zed"}, users); diff != "" {
		t.Errorf("PolicyChanged users (-want +got):\n%s", diff)
	}
	if got := f.item("zed"); !got.Empty() {
		t.Errorf("zed still granted %+v", got.Grants)
	}
	if !f.hasEntry("p2", "carol") {
		t.Error("carol's index entry for p2 was not restored")
	}
	if f.hasEntry("p3", "yuri") || f.hasEntry("p3", "dave") {
		t.Error("stale index entries of p3 were not removed")
	}

	rep, err = f.svc.Verify(ctx)
	if err != nil || rep.Drift() != 0 {
		t.Fatalf("verify after rebuild: drift %d, err %v, findings %+v", rep.Drift(), err, rep.Findings)
	}

	before := f.policy.Snapshot(t)
	changedBefore = len(f.audit.Of(broker.DetailPolicyChanged))
	rep, err = f.svc.Rebuild(ctx)
	if err != nil {
		t.Fatalf("second rebuild: %v", err)
	}
	if rep.Changed != 0 || rep.Orphans != 0 || rep.StaleIndex != 0 {
		t.Errorf("second rebuild changed something: %+v", rep)
	}
	if got := f.audit.Of(broker.DetailPolicyChanged)[changedBefore:]; len(got) != 0 {
		t.Errorf("second rebuild emitted %d PolicyChanged events", len(got))
	}
	if diff := cmp.Diff(before, f.policy.Snapshot(t)); diff != "" {
		t.Errorf("second rebuild changed the table (-before +after):\n%s", diff)
	}
}

// A difference that the live projector repairs before the recheck is a
// change in flight, not drift.
func TestVerifyDoesNotReportADifferenceThatClearsBeforeTheRecheck(t *testing.T) {
	f := newFixture(t)
	f.populate()
	f.member("bob", "p2", "read") // committed, not yet projected
	svc := *f.svc
	svc.Store = &catchingUpStore{Store: f.store, user: "bob", catchUp: f.project}
	rep, err := svc.Verify(context.Background())
	if err != nil || rep.Drift() != 0 {
		t.Fatalf("drift %d, err %v, findings %+v", rep.Drift(), err, rep.Findings)
	}
	if rep.Cleared != 1 {
		t.Errorf("cleared %d differences, want bob's 1", rep.Cleared)
	}
}

// catchingUpStore lets the live projector catch up right after Verify's
// first look at user, before the recheck (hand-written: the timing of a
// stream cannot be arranged in moto).
type catchingUpStore struct {
	replay.Store
	user    string
	catchUp func()
	once    sync.Once
}

// MemberTokens is the last read of Verify's first look at a user.
func (c *catchingUpStore) MemberTokens(ctx context.Context, user string, projects []string) (map[string]int64, error) {
	toks, err := c.Store.MemberTokens(ctx, user, projects)
	if user == c.user {
		c.once.Do(c.catchUp)
	}
	return toks, err
}

// Writers change memberships and buckets while rebuilds run back to back.
// The live projector is given most changes, as the stream would give them;
// the changes of the d users and of project q2 are lost on their way (as
// when a stream's records expire unprocessed), so only a rebuild can
// repair those users.
func TestRebuildConcurrentWithLiveChangesConvergesAndRepairsDroppedChanges(t *testing.T) {
	f := newFixture(t)
	users := []string{"u1", "u2", "u3", "u4", "u5", "u6"}
	projects := []string{"p1", "p2", "p3"}
	buckets := []string{"b-one", "b-two", "b-three", "b-four"}
	for i, u := range users {
		f.member(u, projects[i%len(projects)], "read")
	}
	for i, b := range buckets {
		f.bucket(projects[i%len(projects)], b, "")
	}
	const writers = 3
	dropped := []string{"d0", "d1", "d2"} // dropped[w] is writer w's
	for _, d := range dropped {
		f.member(d, "q2", "read")
	}
	f.bucket("q1", "c-one", "")
	f.bucket("q2", "c-two", "")
	f.project()

	ctx := context.Background()
	// Rebuilds run back to back for as long as the writers write.
	var wg, writing sync.WaitGroup
	var rebuildErr error
	var rebuilds, retried int
	done := make(chan struct{})
	wg.Go(func() {
		for {
			rebuilds++
			// A user whose narrowing missed its commit window on a busy
			// moto fails the run as transient; an operator runs it again,
			// as the next round does.
			if _, err := f.svc.Rebuild(ctx); broker.IsTransient(err) {
				retried++
			} else if err != nil {
				rebuildErr = err
				return
			}
			select {
			case <-done:
				return
			default:
			}
		}
	})
	var mu sync.Mutex
	var problems []string
	for w := range writers {
		rng := rand.New(rand.NewPCG(uint64(w), 7))
		writing.Go(func() {
			for k := range 12 {
				// Lost deliveries: d<w> joins q1, and q2 gets a bucket.
				switch {
				case k == 4:
					f.member(dropped[w], "q1", "write")
				case k == 8 && w == 0:
					f.bucket("q2", "c-three", "")
				}
				u, p, b := users[rng.IntN(len(users))], projects[rng.IntN(len(projects))], buckets[rng.IntN(len(buckets))]
				var c projector.Change
				switch rng.IntN(4) {
				case 0:
					f.member(u, p, []string{"read", "write"}[rng.IntN(2)])
					c = change("INSERT", "USER#"+u, "PROJECT#"+p)
				case 1:
					f.leave(u, p)
					c = change("REMOVE", "USER#"+u, "PROJECT#"+p)
				case 2:
					f.bucket(p, b, "")
					c = change("INSERT", "PROJECT#"+p, "BUCKET#"+b)
				case 3:
					f.unbucket(p, b)
					c = change("REMOVE", "PROJECT#"+p, "BUCKET#"+b)
				}
				c.EventID, c.SequenceNumber = fmt.Sprintf("w%d-%d", w, k), fmt.Sprintf("%d%03d", w, k)
				// The live projector, as the stream would drive it; a
				// change it hands back is delivered again.
				for attempt := 0; ; attempt++ {
					out := f.proj.Process(ctx, []projector.Change{c})
					if len(out.Failed) == 0 {
						break
					}
					if attempt == 10 {
						mu.Lock()
						problems = append(problems, fmt.Sprintf("change %+v kept failing", c.Keys))
						mu.Unlock()
						break
					}
				}
			}
		})
	}
	writing.Wait()
	close(done)
	wg.Wait()
	t.Logf("%d rebuilds ran during the writes, %d of them incomplete (transient)", rebuilds, retried)
	for _, p := range problems {
		t.Error(p)
	}
	if rebuildErr != nil {
		t.Fatalf("rebuild: %v", rebuildErr)
	}
	// The live projector and the concurrent rebuilds leave every user
	// whose changes were delivered as a recomputation has it; the last
	// rebuild may have read a d user before their lost change.
	rep, err := f.svc.Verify(ctx)
	for _, fd := range rep.Findings {
		if !slices.Contains(dropped, fd.UserID) {
			t.Errorf("after the live changes and the concurrent rebuilds: %+v", fd)
		}
	}
	if err != nil && replay.ExitCode(err) != exitcode.Found {
		t.Fatalf("verify: %v", err)
	}

	// A rebuild started after the writes repairs what was lost (run again
	// while it says so, a few times at most).
	for attempt := 1; ; attempt++ {
		_, err := f.svc.Rebuild(ctx)
		if err == nil {
			break
		}
		if !broker.IsTransient(err) || attempt == 3 {
			t.Fatalf("rebuild after the writes (attempt %d): %v", attempt, err)
		}
	}
	rep, err = f.svc.Verify(ctx)
	if err != nil || rep.Drift() != 0 {
		t.Fatalf("after the last rebuild: drift %d, err %v, findings %+v", rep.Drift(), err, rep.Findings)
	}
	// Only a rebuild can have changed the d users: each now has q1's and
	// q2's new bucket, with a PolicyChanged event caused by a rebuild.
	for _, d := range dropped {
		var got []string
		for _, g := range f.item(d).Grants {
			got = append(got, g.Bucket+"/"+string(g.Access))
		}
		if diff := cmp.Diff([]string{"c-one/write", "c-three/read", "c-two/read"}, got); diff != "" {
			t.Errorf("%s's grants (-want +got):\n%s", d, diff)
		}
		byRebuild := false
		for _, e := range f.audit.Of(broker.DetailPolicyChanged) {
			det := e.Detail.(broker.PolicyChangedDetail)
			if det.UserID == d && slices.ContainsFunc(det.Causes, func(c string) bool { return strings.HasPrefix(c, "rebuild:") }) {
				byRebuild = true
			}
		}
		if !byRebuild {
			t.Errorf("no rebuild changed %s", d)
		}
	}
}

func change(name, pk, sk string) projector.Change {
	keys := broker.SourceItem{PK: pk, SK: sk}
	c := projector.Change{EventName: name, Keys: keys}
	img := keys
	if name == "REMOVE" {
		c.Old = &img
	} else {
		if strings.HasPrefix(pk, "USER#") {
			img.Role = broker.StringAttr("read")
		}
		c.New = &img
	}
	return c
}

// An orphan (an item that grants, a user without memberships) whose item a
// live recompute claimed during the run, and then failed to replace, is
// still turned into a tombstone: a claim does not count as a recompute.
func TestRebuildRepairsAnOrphanWhoseRecomputeFailedDuringTheRun(t *testing.T) {
	f := newFixture(t)
	f.populate()
	ctx := context.Background()
	f.policy.PutItem(t, "zed", "bogus", forgedDoc, 1)
	// The run starts an hour ago by its clock; the live projector's claim
	// on zed's item comes after that, and its recompute never commits.
	start := time.Now().Add(-time.Hour)
	f.svc.Now = func() time.Time { return start }
	if _, err := f.store.Claim(ctx, "zed", time.Now()); err != nil {
		t.Fatal(err)
	}
	rep, err := f.svc.Rebuild(ctx)
	if err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	if got := f.item("zed"); !got.Empty() || rep.Orphans != 1 {
		t.Errorf("zed still granted %+v after a rebuild that found %d orphans", got.Grants, rep.Orphans)
	}
}
