package replay

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/projector"
)

// Rebuild recomputes every user of the membership table, then repairs what
// the membership table no longer explains:
//
//  1. Each user with a membership item is recomputed once (Recompute,
//     which also rewrites the user's member-index entries).
//  2. The policy table is scanned. A policy item that still grants
//     something and whose checkedAt is older than the run's start was
//     recomputed neither by step 1 nor by the live projector since: its
//     user has no membership left, and the recompute turns it into a
//     tombstone. Only a recompute that succeeded stamps checkedAt (step 1
//     asks even unchanged ones to), never a claim alone: a recompute that
//     claimed the item and then failed leaves it to this step. A member-index entry whose membership no longer exists
//     is handed to Recompute as a prune hint; Recompute removes it on its
//     token after its commit, so a concurrent re-join is never undone.
//
// Both steps go through Recompute's claims, so the live projector may run
// meanwhile. A second run finds nothing to change. An interrupted run is
// simply run again.
func (s *Service) Rebuild(ctx context.Context) (Report, error) {
	start := s.now()
	rep := Report{Mode: ModeRebuild, RunID: newRunID(ModeRebuild, start), StartedAt: start}
	causes := []string{"rebuild:" + rep.RunID}
	log := s.logger().With("runId", rep.RunID, "mode", ModeRebuild)
	log.Info("rebuild started", "segments", s.segments(), "concurrency", s.concurrency())
	memTotal, polTotal := s.sizes(ctx)
	failed := &listed{max: s.maxListed()}
	var superseded, orphans, stale atomic.Int64

	recompute := func(ctx context.Context, m *meter, user string, h projector.Hint) bool {
		changed, err := s.Projector.Recompute(ctx, user, h, causes)
		switch {
		case broker.KindOf(err) == broker.Conflict:
			// A newer claim won: its recompute read newer state than ours.
			superseded.Add(1)
		case err != nil:
			m.failed.Add(1)
			failed.add(user)
			log.Error("recompute failed", "userId", user, "err", err, "kind", broker.KindOf(err).String())
			return false
		case changed:
			m.changed.Add(1)
		}
		return true
	}

	m1 := s.startMeter(ctx, rep.RunID, ModeRebuild, "memberships", memTotal)
	err := pipeline(ctx, s.segments(), s.concurrency(),
		func(ctx context.Context, seg int, emit func(userGroup) error) error {
			return s.scanUsers(ctx, seg, m1, emit)
		},
		func(ctx context.Context, g userGroup) {
			m1.users.Add(1)
			recompute(ctx, m1, g.userID, projector.Hint{Stamp: true})
		})
	st1 := m1.finish()
	rep.Users, rep.Changed = int(st1.Users), int(st1.Changed)
	rep.Rejected = int(m1.rejected.Load())

	// Users whose checkedAt is older than the start were not reached by
	// step 1. Stamps are whole milliseconds.
	cutoff := start.Truncate(time.Millisecond)
	if err == nil {
		m2 := s.startMeter(ctx, rep.RunID, ModeRebuild, "policies", polTotal)
		err = pipeline(ctx, s.segments(), s.concurrency(),
			func(ctx context.Context, seg int, emit func(policyWork) error) error {
				return s.scanPolicies(ctx, seg, m2, emit)
			},
			func(ctx context.Context, w policyWork) {
				if w.project == "" {
					if !w.grants || !w.checkedAt.Before(cutoff) {
						return
					}
					m2.users.Add(1)
					orphans.Add(1)
					recompute(ctx, m2, w.userID, projector.Hint{})
					return
				}
				exists, err := s.Store.MembershipExists(ctx, w.userID, w.project)
				if err != nil {
					m2.failed.Add(1)
					failed.add(w.userID)
					log.Error("read membership of index entry", "userId", w.userID, "project", w.project, "err", err)
					return
				}
				if exists {
					return
				}
				stale.Add(1)
				recompute(ctx, m2, w.userID, projector.Hint{Prune: map[string]int64{w.project: w.token}})
			})
		st2 := m2.finish()
		rep.Changed += int(st2.Changed)
	}

	rep.Orphans, rep.StaleIndex, rep.Superseded = int(orphans.Load()), int(stale.Load()), int(superseded.Load())
	rep.Failed, rep.FailedUsers = failed.n, failed.list()
	rep.Truncated = rep.Failed > len(rep.FailedUsers)
	rep.FinishedAt = s.now()
	log.Info("rebuild finished", "users", rep.Users, "orphans", rep.Orphans, "rejected", rep.Rejected, "staleIndex", rep.StaleIndex,
		"changed", rep.Changed, "superseded", rep.Superseded, "failed", rep.Failed,
		"seconds", rep.FinishedAt.Sub(start).Seconds(), "err", err)
	if err != nil {
		return rep, broker.Wrap(broker.Transient, "rebuild incomplete; run it again (it is idempotent)", err)
	}
	if rep.Failed > 0 {
		return rep, broker.Errorf(broker.Transient, "rebuild", "%d users failed (e.g. %v); run it again (it is idempotent)", rep.Failed, rep.FailedUsers[:min(5, len(rep.FailedUsers))])
	}
	return rep, nil
}
