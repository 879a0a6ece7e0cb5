package projector_test

import (
	"context"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/projector"
)

// pausing wraps the real adapters and stops one user's recompute at a
// chosen point until the test lets it go: a way to force the interleavings
// that DynamoDB Streams allow but rarely produce.
type pausing struct {
	broker.SourceReader
	broker.MemberIndex
	broker.PolicyStore
	at, user string
	paused   chan struct{}
	resume   chan struct{}
	once     sync.Once

	mu      sync.Mutex
	commits []commitAttempt
}

type commitAttempt struct {
	user, version string
	ticket        int64
	err           error
}

func (p *pausing) pause(point, user string) {
	if point == p.at && user == p.user {
		p.once.Do(func() { close(p.paused); <-p.resume })
	}
}

func (p *pausing) UserMemberships(ctx context.Context, user string) ([]broker.SourceItem, error) {
	items, err := p.SourceReader.UserMemberships(ctx, user)
	p.pause("after reading memberships", user)
	return items, err
}

func (p *pausing) PutMembers(ctx context.Context, user string, projects []string, token int64) error {
	err := p.MemberIndex.PutMembers(ctx, user, projects, token)
	p.pause("after writing the index entry", user)
	return err
}

func (p *pausing) Commit(ctx context.Context, c broker.Claim, pol broker.UserPolicy, outbox []broker.PolicyChangedDetail) error {
	p.pause("after reading buckets", c.UserID)
	err := p.PolicyStore.Commit(ctx, c, pol, outbox)
	p.mu.Lock()
	p.commits = append(p.commits, commitAttempt{c.UserID, pol.Version, c.Ticket, err})
	p.mu.Unlock()
	return err
}

func (f *fixture) pausedProjector(at, user string) (*projector.Projector, *pausing) {
	h := &pausing{SourceReader: f.store, MemberIndex: f.store, PolicyStore: f.store, at: at, user: user,
		paused: make(chan struct{}), resume: make(chan struct{})}
	p := *f.proj
	p.Source, p.Index, p.Store = h, h, h
	return &p, h
}

func (f *fixture) deliverWith(p *projector.Projector, recs []events.DynamoDBEventRecord) events.DynamoDBEventResponse {
	payload, err := jsonRecords(recs)
	if err != nil {
		f.t.Fatal(err)
	}
	resp, err := (&projector.Handler{Projector: p}).Handle(context.Background(), []byte(payload))
	if err != nil {
		f.t.Fatal(err)
	}
	return resp
}

// A member joins a project at the moment a bucket is removed from it. With
// an eventually consistent GSI the bucket's fan-out can miss the new member,
// whose own recompute read the buckets before the removal: the member would
// keep the bucket. Every pause point of the joiner's recompute is tried.
func TestAMemberJoiningDuringABucketRemovalDoesNotKeepTheBucket(t *testing.T) {
	for _, at := range []string{"after reading memberships", "after writing the index entry", "after reading buckets"} {
		t.Run("joiner paused "+at, func(t *testing.T) {
			f := newFixture(t)
			f.bucket("p1", "lake", "")
			f.member("bob", "p1", "read")
			f.deliver(f.streamRecords())
			n := len(f.streamRecords())

			f.member("alice", "p1", "read")
			join := f.streamRecords()[n:]
			joiner, h := f.pausedProjector(at, "alice")
			done := make(chan events.DynamoDBEventResponse)
			go func() { done <- f.deliverWith(joiner, join) }()
			<-h.paused

			f.unbucket("p1", "lake")
			removal := f.streamRecords()[n+len(join):]
			if resp := f.deliver(removal); len(resp.BatchItemFailures) != 0 {
				t.Fatalf("removal failed: %v", seqs(resp))
			}
			close(h.resume)
			if resp := <-done; len(resp.BatchItemFailures) != 0 {
				t.Fatalf("join failed: %v", seqs(resp))
			}
			for _, u := range []string{"alice", "bob"} {
				if got := f.item(u); !got.Empty() {
					t.Errorf("%s keeps %v after the bucket was removed", u, places(got))
				}
			}
			f.assertConverged("alice", "bob")
		})
	}
}

// A recompute that read the state before a revocation must not overwrite
// the revocation, however late it writes.
func TestAStaleRecomputeNeverOverwritesANewerOne(t *testing.T) {
	f := newFixture(t)
	f.bucket("p1", "lake", "")
	f.member("alice", "p1", "write")
	recs := f.streamRecords()

	stale, h := f.pausedProjector("after reading buckets", "alice")
	done := make(chan events.DynamoDBEventResponse)
	go func() { done <- f.deliverWith(stale, recs) }()
	<-h.paused // it has read alice's write access and is about to commit

	f.leave("alice", "p1")
	if resp := f.deliver(f.streamRecords()[len(recs):]); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("revocation failed: %v", seqs(resp))
	}
	revoked := f.item("alice")
	if !revoked.Empty() {
		t.Fatalf("revocation not applied: %v", places(revoked))
	}
	close(h.resume)
	if resp := <-done; len(resp.BatchItemFailures) != 0 {
		t.Fatalf("stale delivery failed instead of retrying: %v", seqs(resp))
	}
	if got := f.item("alice"); !got.Empty() {
		t.Fatalf("stale recompute overwrote the revocation: %v", places(got))
	}
	if len(h.commits) == 0 || broker.KindOf(h.commits[0].err) != broker.Conflict {
		t.Errorf("the stale commit should have lost its claim: %+v", h.commits)
	}
	for _, c := range h.commits[1:] {
		if c.err == nil && c.version != revoked.Version {
			t.Errorf("a later commit wrote version %s, not the revoked state", c.version)
		}
	}
}
