package projector_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/projector"
)

// members writes n membership records of project and projects them
// (which also builds the member index).
func (f *fixture) members(project string, n int) []string {
	f.t.Helper()
	users := make([]string, n)
	var changes []projector.Change
	for i := range users {
		users[i] = fmt.Sprintf("user-%05d", i)
		f.member(users[i], project, "read")
		img := broker.SourceItem{PK: "USER#" + users[i], SK: "PROJECT#" + project, Role: broker.StringAttr("read")}
		changes = append(changes, projector.Change{EventID: "setup-" + users[i], EventName: "INSERT", SequenceNumber: fmt.Sprint(i), Keys: img, New: &img})
	}
	for start := 0; start < len(changes); start += 100 {
		out := f.proj.Process(context.Background(), changes[start:min(start+100, len(changes))])
		if len(out.Failed) > 0 {
			f.t.Fatalf("setup: %d failed", len(out.Failed))
		}
	}
	return users
}

// countingStore counts claims per user: how many times each was recomputed.
// fail, when set, makes the claims of the users it names fail.
type countingStore struct {
	broker.PolicyStore
	fail   func(user string) error
	mu     sync.Mutex
	claims map[string]int
}

func (c *countingStore) Claim(ctx context.Context, user string, now time.Time) (broker.Claim, error) {
	c.mu.Lock()
	c.claims[user]++
	c.mu.Unlock()
	if c.fail != nil {
		if err := c.fail(user); err != nil {
			return broker.Claim{}, err
		}
	}
	return c.PolicyStore.Claim(ctx, user, now)
}

func (c *countingStore) count(user string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.claims[user]
}

// A fan-out that cannot finish before the invocation's deadline saves its
// cursor and hands the change back; the redelivered change resumes where it
// stopped instead of starting over, and the checkpoint is then removed.
func TestAFanoutNearTheDeadlineResumesFromItsCheckpoint(t *testing.T) {
	f := newFixture(t)
	f.bucket("p1", "lake", "")
	users := f.members("p1", 30)
	f.unbucket("p1", "lake")
	removal := projector.Change{EventID: "removal-1", EventName: "REMOVE", SequenceNumber: "900",
		Keys: broker.SourceItem{PK: "PROJECT#p1", SK: "BUCKET#lake"}}

	// A clock that moves one minute per page read; the invocation has 150s.
	start := time.Now().Add(time.Hour)
	var minutes atomic.Int64
	clock := func() time.Time { return start.Add(time.Duration(minutes.Load()) * time.Minute) }
	counting := &countingStore{PolicyStore: f.store, claims: map[string]int{}}
	p := *f.proj
	p.Now, p.PageSize, p.DeadlineMargin, p.Store = clock, 10, time.Minute, counting
	p.Index = pageTicker{MemberIndex: f.store, tick: func() { minutes.Add(1) }}

	ctx, cancel := context.WithDeadline(context.Background(), start.Add(150*time.Second))
	defer cancel()
	out := p.Process(ctx, []projector.Change{removal})
	if len(out.Failed) != 1 {
		t.Fatalf("want the change handed back near the deadline, got %+v", out)
	}
	first := len(counting.claims)
	if first != 20 {
		t.Fatalf("recomputed %d members before the deadline, want two pages (20)", first)
	}
	cursor, err := f.store.LoadCheckpoint(context.Background(), "p1#removal-1")
	if err != nil || cursor == "" {
		t.Fatalf("no checkpoint saved: %q, %v", cursor, err)
	}

	out = p.Process(context.Background(), []projector.Change{removal})
	if len(out.Failed) != 0 {
		t.Fatalf("redelivery failed: %+v", out)
	}
	for _, u := range users {
		if n := counting.claims[u]; n != 1 {
			t.Errorf("%s recomputed %d times, want once across both deliveries", u, n)
		}
		if got := f.item(u); !got.Empty() {
			t.Errorf("%s keeps %v", u, places(got))
		}
	}
	if cursor, _ := f.store.LoadCheckpoint(context.Background(), "p1#removal-1"); cursor != "" {
		t.Errorf("checkpoint left behind: %q", cursor)
	}
}

// pageTicker advances the test clock on every page of the member index.
type pageTicker struct {
	broker.MemberIndex
	tick func()
}

func (p pageTicker) ProjectMembers(ctx context.Context, project, cursor string, limit int) (broker.MemberPage, error) {
	page, err := p.MemberIndex.ProjectMembers(ctx, project, cursor, limit)
	p.tick()
	return page, err
}
