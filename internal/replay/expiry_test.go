package replay_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/credbroker/credbroker/internal/replay"
)

// An expiry whose recompute is on its way is pending, not drift; once the
// timer's bound has long passed it is drift, and a rebuild or a replay
// after the expiry gives what having been there gave: no grant.
func TestAnExpiryPendingIsNotDriftAndRecoveryAfterItDropsTheGrant(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	start := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	now := start
	clock := func() time.Time { return now }
	f.proj.Now, f.svc.Now = clock, clock
	expiry := start.Add(8 * time.Hour)
	f.bucket("p1", "lake", "")
	f.bucket("p2", "pond", "")
	f.put(map[string]types.AttributeValue{"pk": s("USER#alice"), "sk": s("PROJECT#p1"), "role": s("write"), "expiresAt": s(expiry.Format(time.RFC3339))})
	f.member("alice", "p2", "read")
	f.project()
	if got := f.item("alice"); len(got.Grants) != 2 {
		t.Fatalf("grants %+v, want lake and pond", got.Grants)
	}

	now = expiry.Add(3 * time.Second)
	if _, err := f.svc.Verify(ctx); err != nil {
		t.Errorf("verify 3 s after the expiry, its recompute pending: %v, want no drift", err)
	}
	now = expiry.Add(replay.ExpiryGrace + time.Second)
	var drift *replay.DriftError
	if _, err := f.svc.Verify(ctx); !errors.As(err, &drift) {
		t.Errorf("verify long after the expiry with the grant still there: %v, want drift", err)
	}
	if _, err := f.svc.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.item("alice"); len(got.Grants) != 1 || got.Grants[0].Bucket != "pond" {
		t.Errorf("grants after the rebuild %+v, want pond only", got.Grants)
	}
	if _, err := f.svc.Verify(ctx); err != nil {
		t.Errorf("verify after the rebuild: %v", err)
	}
	// Replaying the stream from the start, after the expiry, grants
	// nothing that expired either.
	if _, err := f.svc.Replay(ctx, start.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := f.item("alice"); len(got.Grants) != 1 || got.Grants[0].Bucket != "pond" {
		t.Errorf("grants after the replay %+v, want pond only", got.Grants)
	}
}
