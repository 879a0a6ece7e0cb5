package projector_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/projector"
)

// The model: a few users, projects and buckets, so that operations collide.
var (
	cUsers    = []string{"u1", "u2", "u3"}
	cProjects = []string{"p1", "p2"}
	cBuckets  = []string{"b-one", "b-two", "b-three"}
	cPrefixes = []string{"", "raw/", "raw/2024/"}
)

type op struct {
	kind           string // member, leave, bucket, unbucket
	user, project  string
	role           string
	bucket, prefix string
}

// state is the membership table as the model sees it after an op.
type state struct {
	members map[[2]string]broker.Access // (user, project)
	buckets map[[2]string]string        // (project, bucket) -> prefix
}

func (s state) apply(o op) state {
	n := state{members: map[[2]string]broker.Access{}, buckets: map[[2]string]string{}}
	for k, v := range s.members {
		n.members[k] = v
	}
	for k, v := range s.buckets {
		n.buckets[k] = v
	}
	switch o.kind {
	case "member":
		n.members[[2]string{o.user, o.project}] = broker.Access(o.role)
	case "leave":
		delete(n.members, [2]string{o.user, o.project})
	case "bucket":
		n.buckets[[2]string{o.project, o.bucket}] = o.prefix
	case "unbucket":
		delete(n.buckets, [2]string{o.project, o.bucket})
	}
	return n
}

func randomOp(rng *rand.Rand) op {
	o := op{user: cUsers[rng.IntN(len(cUsers))], project: cProjects[rng.IntN(len(cProjects))],
		bucket: cBuckets[rng.IntN(len(cBuckets))], prefix: cPrefixes[rng.IntN(len(cPrefixes))]}
	o.role = []string{"read", "write"}[rng.IntN(2)]
	o.kind = []string{"member", "member", "leave", "bucket", "bucket", "unbucket"}[rng.IntN(6)]
	return o
}

// Several writers change memberships and buckets while several projector
// workers process the changes in random batches, reordered and duplicated,
// concurrently. Whenever a change has been processed, no item of a user it
// concerns grants anything for its project that the membership table has
// not granted at some point since that change; after quiescence every item
// equals a recomputation from scratch.
func TestConcurrentChangesConvergeAndNeverOutliveTheirRevocation(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4, 5}
	if s := os.Getenv("PROJECTOR_SEED"); s != "" {
		n, _ := strconv.ParseUint(s, 10, 64)
		seeds = []uint64{n}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) { runConcurrency(t, seed, 60) })
	}
}

func runConcurrency(t *testing.T, seed uint64, nOps int) {
	f := newFixture(t)
	rng := rand.New(rand.NewPCG(seed, 42))
	ops := make([]op, nOps)
	for i := range ops {
		ops[i] = randomOp(rng)
	}

	var (
		mu       sync.Mutex
		cond     = sync.NewCond(&mu)
		states   = []state{{members: map[[2]string]broker.Access{}, buckets: map[[2]string]string{}}}
		applied  []op // applied[k] turned states[k] into states[k+1]
		pending  []projector.Change
		inflight int
		writing  = 3
	)
	seqOf := map[string]int{} // sequence number -> index in applied

	// Writers: every write is applied under mu, so the model's order is the
	// table's commit order; the change is queued only after its commit.
	work := make(chan op)
	var writers sync.WaitGroup
	for range writing {
		writers.Go(func() {
			for o := range work {
				mu.Lock()
				switch o.kind {
				case "member":
					f.member(o.user, o.project, o.role)
				case "leave":
					f.leave(o.user, o.project)
				case "bucket":
					f.bucket(o.project, o.bucket, o.prefix)
				case "unbucket":
					f.unbucket(o.project, o.bucket)
				}
				k := len(applied)
				applied = append(applied, o)
				states = append(states, states[k].apply(o))
				c := changeOf(o, k)
				seqOf[c.SequenceNumber] = k
				pending = append(pending, c)
				cond.Broadcast()
				mu.Unlock()
			}
			mu.Lock()
			writing--
			cond.Broadcast()
			mu.Unlock()
		})
	}
	go func() {
		for _, o := range ops {
			work <- o
		}
		close(work)
	}()

	var failures []string
	var workers sync.WaitGroup
	for w := range 3 {
		wrng := rand.New(rand.NewPCG(seed, uint64(w)))
		workers.Go(func() {
			for {
				mu.Lock()
				for len(pending) == 0 && (writing > 0 || inflight > 0) {
					cond.Wait()
				}
				if len(pending) == 0 {
					mu.Unlock()
					return
				}
				// A random batch in random order; some changes stay queued
				// to arrive again later (at-least-once delivery).
				n := 1 + wrng.IntN(min(4, len(pending)))
				var batch []projector.Change
				for range n {
					i := wrng.IntN(len(pending))
					batch = append(batch, pending[i])
					if wrng.IntN(4) != 0 {
						pending = append(pending[:i], pending[i+1:]...)
					}
				}
				inflight++
				mu.Unlock()

				out := f.proj.Process(context.Background(), batch)
				failed := map[string]bool{}
				for _, s := range out.Failed {
					failed[s] = true
				}
				var problems []string
				for _, c := range batch {
					if !failed[c.SequenceNumber] {
						problems = append(problems, f.checkAfter(c, func() ([]state, []op, int) {
							mu.Lock()
							defer mu.Unlock()
							return states, applied, seqOf[c.SequenceNumber]
						})...)
					}
				}
				mu.Lock()
				for _, c := range batch {
					if failed[c.SequenceNumber] {
						pending = append(pending, c)
					}
				}
				failures = append(failures, problems...)
				inflight--
				cond.Broadcast()
				mu.Unlock()
			}
		})
	}
	writers.Wait()
	workers.Wait()
	for _, p := range failures {
		t.Error(p)
	}
	f.assertConverged(cUsers...)
}

func changeOf(o op, k int) projector.Change {
	c := projector.Change{EventID: fmt.Sprintf("op-%d", k), SequenceNumber: fmt.Sprintf("%08d", k)}
	switch o.kind {
	case "member", "leave":
		c.Keys = broker.SourceItem{PK: "USER#" + o.user, SK: "PROJECT#" + o.project}
	default:
		c.Keys = broker.SourceItem{PK: "PROJECT#" + o.project, SK: "BUCKET#" + o.bucket}
	}
	img := c.Keys
	switch o.kind {
	case "member":
		img.Role = broker.StringAttr(o.role)
		c.EventName, c.New = "INSERT", &img
	case "bucket":
		if o.prefix != "" {
			img.Prefix = broker.StringAttr(o.prefix)
		}
		c.EventName, c.New = "INSERT", &img
	default:
		c.EventName, c.Old = "REMOVE", &img
	}
	return c
}

// checkAfter checks, once change c is processed, the items of the users it
// concerns: what they grant for c's project must be possible since c.
// snapshot returns the model's states and ops so far (under its lock) and
// the index of c's op.
func (f *fixture) checkAfter(c projector.Change, snapshot func() ([]state, []op, int)) []string {
	states, applied, k := snapshot()
	o := applied[k]
	users := []string{o.user}
	if o.kind == "bucket" || o.kind == "unbucket" {
		users = nil
		for key := range states[k+1].members {
			if key[1] == o.project {
				users = append(users, key[0])
			}
		}
	}

	var problems []string
	for _, u := range users {
		item := f.item(u) // read before the snapshot below: every state it can reflect is in it
		states, _, _ := snapshot()
		since := states[k+1:]
		for _, pl := range item.ByProject[o.project] {
			if !possible(since, u, o.project, pl) {
				problems = append(problems, fmt.Sprintf("after op %d (%+v) was processed, %s's item grants %+v via %s, which no state since granted",
					k, o, u, pl, o.project))
			}
		}
	}
	return problems
}

func possible(since []state, user, project string, pl broker.Place) bool {
	member, owns := false, false
	for _, s := range since {
		if a, ok := s.members[[2]string{user, project}]; ok && a == pl.Access {
			member = true
		}
		if p, ok := s.buckets[[2]string{project, pl.Bucket}]; ok && normalize(p) == pl.Prefix {
			owns = true
		}
	}
	return member && owns
}

func normalize(p string) string {
	n, _ := broker.NormalizePrefix(p)
	return n
}
