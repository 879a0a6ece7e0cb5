package replay_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/projector"
	"github.com/credbroker/credbroker/internal/replay"
	"github.com/credbroker/credbroker/internal/testkit/memstore"
)

// countingRecomputer counts recomputes per user.
type countingRecomputer struct {
	replay.Recomputer
	mu sync.Mutex
	n  map[string]int
}

func (c *countingRecomputer) Recompute(ctx context.Context, user string, h projector.Hint, causes []string) (bool, error) {
	c.mu.Lock()
	c.n[user]++
	c.mu.Unlock()
	return c.Recomputer.Recompute(ctx, user, h, causes)
}

func TestRebuildRecomputesEveryUserOnceWhateverTheSegments(t *testing.T) {
	items := org(300, 30)
	for _, segments := range []int{1, 4, 7} {
		t.Run(fmt.Sprint(segments, " segments"), func(t *testing.T) {
			store := memstore.New()
			users := map[string]bool{}
			for _, it := range items {
				store.PutSource(it)
				if ref, _ := broker.ParseRef(it.PK, it.SK); ref.Kind == broker.MembershipRecord {
					users[ref.UserID] = true
				}
			}
			quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
			proj := &projector.Projector{Source: store, Store: store, Index: store, Checkpoints: store, Logger: quiet,
				Auditor: broker.AuditorFunc(func(context.Context, ...broker.AuditEvent) error { return nil })}
			counter := &countingRecomputer{Recomputer: proj, n: map[string]int{}}
			svc := &replay.Service{Memberships: store, Policies: store, Store: store, Projector: counter,
				Segments: segments, Concurrency: 5, Logger: quiet}
			rep, err := svc.Rebuild(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if rep.Users != len(users) || len(counter.n) != len(users) {
				t.Errorf("recomputed %d distinct users (report %d), want %d", len(counter.n), rep.Users, len(users))
			}
			for u, n := range counter.n {
				if n != 1 {
					t.Errorf("%s recomputed %d times", u, n)
				}
			}
		})
	}
}

// org is a generated membership table: users in a few of the projects
// each (1 to 5, 3 on average), projects with 1 to 3 buckets.
func org(users, projects int) []broker.SourceItem {
	rng := rand.New(rand.NewPCG(1, 2))
	var items []broker.SourceItem
	for p := range projects {
		for b := range 1 + rng.IntN(3) {
			items = append(items, broker.SourceItem{PK: fmt.Sprintf("PROJECT#proj-%04d", p), SK: fmt.Sprintf("BUCKET#bucket-%04d-%d", p, b)})
		}
	}
	for u := range users {
		for _, p := range rng.Perm(projects)[:1+rng.IntN(5)] {
			items = append(items, broker.SourceItem{PK: fmt.Sprintf("USER#user-%05d", u), SK: fmt.Sprintf("PROJECT#proj-%04d", p),
				Role: broker.StringAttr([]string{"read", "write"}[rng.IntN(2)])})
		}
	}
	return items
}
