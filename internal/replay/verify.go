package replay

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
)

// Verify compares the policy table with a recomputation from the membership
// table, writing nothing:
//
//  1. For each user of the membership table it compares Compute with the
//     stored item (no item and a tombstone both mean an empty policy) and
//     checks that every valid membership has its member-index entry.
//  2. It scans the policy table for items that grant something to users
//     without any membership item (extra), and for member-index entries
//     whose membership does not exist (extraIndex), which Rebuild removes.
//
// Items are compared as the projector compares them before a commit
// (broker.UserPolicy.SameContent: version, grants, session policies,
// per-project places), not by version alone: the endpoint hands out what
// the document holds, whatever the version says. An item whose document
// cannot be decoded is different, not a failure to check: Rebuild
// overwrites it.
//
// A difference is looked at again RecheckAfter after it was first seen,
// once the scans are done, and reported only if it is still there: a
// change on its way through the stream is not drift. When drift remains,
// Verify emits a PolicyDrift audit event and returns a *DriftError.
func (s *Service) Verify(ctx context.Context) (Report, error) {
	start := s.now()
	rep := Report{Mode: ModeVerify, RunID: newRunID(ModeVerify, start), StartedAt: start}
	log := s.logger().With("runId", rep.RunID, "mode", ModeVerify)
	log.Info("verify started", "segments", s.segments(), "concurrency", s.concurrency())
	memTotal, polTotal := s.sizes(ctx)
	v := &verifier{s: s, log: log, failed: &listed{max: s.maxListed()}, limit: cmp.Or(s.MaxRechecks, 10000),
		findings: findingList{max: s.maxListed(), counts: map[Kind]int{}}}

	m1 := s.startMeter(ctx, rep.RunID, ModeVerify, "memberships", memTotal)
	err := pipeline(ctx, s.segments(), s.concurrency(),
		func(ctx context.Context, seg int, emit func(userGroup) error) error {
			return s.scanUsers(ctx, seg, m1, emit)
		},
		func(ctx context.Context, g userGroup) {
			m1.users.Add(1)
			v.checkUser(ctx, m1, g.userID, g.projects)
		})
	rep.Users = int(m1.finish().Users)
	rep.Rejected = int(m1.rejected.Load())

	if err == nil {
		m2 := s.startMeter(ctx, rep.RunID, ModeVerify, "policies", polTotal)
		err = pipeline(ctx, s.segments(), s.concurrency(),
			func(ctx context.Context, seg int, emit func(policyWork) error) error {
				return s.scanPolicies(ctx, seg, m2, emit)
			},
			func(ctx context.Context, w policyWork) {
				switch {
				case w.project != "":
					v.checkEntry(ctx, m2, w.userID, w.project)
				case w.grants:
					v.checkOrphan(ctx, m2, w.userID)
				}
			})
		rep.Orphans = int(m2.finish().Users)
	}

	if err == nil {
		err = v.recheckAll(ctx, rep.RunID)
	}

	var cut bool
	rep.Findings, cut = v.findings.result()
	c := v.findings.counts
	rep.Missing, rep.Different, rep.Extra = c[Missing], c[Different], c[Extra]
	rep.MissingIndex, rep.ExtraIndex = c[MissingIndex], c[ExtraIndex]
	rep.Cleared = int(v.cleared.Load())
	rep.Failed, rep.FailedUsers = v.failed.n, v.failed.list()
	rep.Truncated = cut || rep.Failed > len(rep.FailedUsers)
	rep.FinishedAt = s.now()

	if rep.Rejected > 0 {
		log.Warn("source records break the rules and grant nothing; `credbroker admin rejected` lists them", "rejected", rep.Rejected)
	}
	log.Info("verify finished", "users", rep.Users, "orphans", rep.Orphans, "rejected", rep.Rejected, "drift", rep.Drift(),
		"missing", rep.Missing, "different", rep.Different, "extra", rep.Extra, "missingIndex", rep.MissingIndex, "extraIndex", rep.ExtraIndex,
		"cleared", rep.Cleared, "failed", rep.Failed, "seconds", rep.FinishedAt.Sub(start).Seconds(), "err", err)
	if rep.Drift() > 0 {
		for _, f := range rep.Findings {
			log.Warn("policy drift", "kind", f.Kind, "userId", f.UserID, "project", f.Project)
		}
		s.emitDrift(ctx, log, rep, cut)
	}
	switch {
	case err != nil:
		return rep, broker.Wrap(broker.Transient, "verify incomplete", err)
	case rep.Failed > 0:
		return rep, broker.Errorf(broker.Transient, "verify", "%d users could not be checked (e.g. %v); drift so far: %d",
			rep.Failed, rep.FailedUsers[:min(5, len(rep.FailedUsers))], rep.Drift())
	case rep.Drift() > 0:
		return rep, &DriftError{Report: rep}
	}
	return rep, nil
}

// verifier holds the state of one Verify run.
type verifier struct {
	s        *Service
	log      *slog.Logger
	failed   *listed
	cleared  atomic.Int64
	limit    int
	mu       sync.Mutex
	suspects []suspect
	findings findingList
}

// findingList keeps the first max findings in report order, so that memory
// stays bounded however much drift there is, and counts all of them.
type findingList struct {
	max    int
	counts map[Kind]int
	kept   []Finding
}

func compareFindings(a, b Finding) int {
	return cmp.Or(cmp.Compare(a.UserID, b.UserID), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Project, b.Project))
}

func (l *findingList) add(fs ...Finding) {
	for _, f := range fs {
		l.counts[f.Kind]++
		l.kept = append(l.kept, f)
		// Cutting only at twice the bound keeps the sorting cost of a
		// finding logarithmic.
		if len(l.kept) >= 2*max(l.max, 1) {
			slices.SortFunc(l.kept, compareFindings)
			l.kept = l.kept[:l.max]
		}
	}
}

// result returns the kept findings sorted, and whether some were cut.
func (l *findingList) result() ([]Finding, bool) {
	slices.SortFunc(l.kept, compareFindings)
	l.kept = l.kept[:min(len(l.kept), l.max)]
	total := 0
	for _, n := range l.counts {
		total += n
	}
	return slices.Clone(l.kept), total > len(l.kept)
}

// suspect is a user found different once, awaiting the recheck.
type suspect struct {
	userID string
	// compare asks for the user's item to be compared again.
	compare bool
	// projects are memberships found without an index entry.
	projects []string
	// stale is an index entry found without its membership.
	stale string
	seen  time.Time
}

// checkUser compares one user of the membership table.
func (v *verifier) checkUser(ctx context.Context, m *meter, user string, projects []string) {
	kind, err := v.compare(ctx, user)
	if err != nil {
		v.fail(m, user, err)
		return
	}
	var noEntry []string
	if len(projects) > 0 {
		tokens, err := v.s.Store.MemberTokens(ctx, user, projects)
		if err != nil {
			v.fail(m, user, err)
			return
		}
		for _, p := range projects {
			if _, ok := tokens[p]; !ok {
				noEntry = append(noEntry, p)
			}
		}
	}
	if kind != "" || len(noEntry) > 0 {
		v.suspect(ctx, m, suspect{userID: user, compare: kind != "", projects: noEntry, seen: v.s.now()})
	}
}

// checkOrphan looks at a policy item that grants something: if its user
// has no membership item at all, step 1 did not see it.
func (v *verifier) checkOrphan(ctx context.Context, m *meter, user string) {
	if broker.ValidateUserID(user) == nil {
		items, err := v.s.Store.UserMemberships(ctx, user)
		if err != nil {
			v.fail(m, user, err)
			return
		}
		if len(items) > 0 {
			return // compared in step 1, or joined since
		}
	}
	m.users.Add(1)
	kind, err := v.compare(ctx, user)
	if err != nil {
		v.fail(m, user, err)
		return
	}
	if kind != "" {
		v.suspect(ctx, m, suspect{userID: user, compare: true, seen: v.s.now()})
	}
}

// checkEntry looks at a member-index entry: Rebuild removes it when its
// membership does not exist, so Verify reports it.
func (v *verifier) checkEntry(ctx context.Context, m *meter, user, project string) {
	exists, err := v.s.Store.MembershipExists(ctx, user, project)
	if err != nil {
		v.fail(m, user, err)
		return
	}
	if !exists {
		v.suspect(ctx, m, suspect{userID: user, stale: project, seen: v.s.now()})
	}
}

// compare returns the kind of difference between what the user should
// have and what the table holds, or "".
func (v *verifier) compare(ctx context.Context, user string) (Kind, error) {
	want, err := v.s.Projector.Compute(ctx, user)
	if err != nil {
		return "", err
	}
	have, err := v.s.Store.GetPolicy(ctx, user)
	if broker.KindOf(err) == broker.NotFound {
		have, err = broker.UserPolicy{UserID: user}, nil
	}
	if undecodable(err) {
		v.log.Warn("policy item cannot be decoded", "userId", user, "err", err)
		return Different, nil
	}
	if err != nil {
		return "", err
	}
	switch {
	case want.Empty() && have.Empty():
		return "", nil
	case have.Empty():
		return Missing, nil
	case want.Empty():
		return Extra, nil
	case !want.SameContent(have):
		pending, err := v.expiryPending(ctx, user, have)
		if err != nil || pending {
			return "", err
		}
		return Different, nil
	}
	return "", nil
}

// ExpiryGrace is how long after a membership expiry verify takes an item
// that still holds what the membership granted as its recompute pending,
// not drift: the expiry timer's bound on AWS (60 s) with room to spare.
const ExpiryGrace = 2 * time.Minute

// expiryPending reports whether have is what the user should have had just
// before an expiry of the last ExpiryGrace: the item differs only by the
// recompute that expiry's timer is on its way to run. The grants it still
// lists reach nothing, the session policies stopped them at the expiry.
func (v *verifier) expiryPending(ctx context.Context, user string, have broker.UserPolicy) (bool, error) {
	now := v.s.now()
	for _, e := range have.Expires {
		if e.After(now) || now.Sub(e) > ExpiryGrace {
			continue
		}
		then, err := v.s.Projector.ComputeAt(ctx, user, e.Add(-time.Millisecond))
		if err != nil {
			return false, err
		}
		if then.SameContent(have) {
			v.log.Info("expiry recompute pending, not drift", "userId", user, "expiresAt", e)
			return true, nil
		}
	}
	return false, nil
}

// undecodable reports whether err is a policy item failing to decode (see
// Store.GetPolicy).
func undecodable(err error) bool { return errors.Is(err, broker.ErrCorruptItem) }

func (v *verifier) fail(m *meter, user string, err error) {
	m.failed.Add(1)
	v.failed.add(user)
	v.log.Error("verify user failed", "userId", user, "err", err, "kind", broker.KindOf(err).String())
}

// suspect keeps a difference for the recheck, or rechecks it now when the
// list is full.
func (v *verifier) suspect(ctx context.Context, m *meter, su suspect) {
	v.mu.Lock()
	if len(v.suspects) < v.limit {
		v.suspects = append(v.suspects, su)
		v.mu.Unlock()
		return
	}
	v.mu.Unlock()
	v.recheck(ctx, m, su)
}

// recheckAll waits until RecheckAfter has passed since the last difference
// was seen, then looks at every kept difference again.
func (v *verifier) recheckAll(ctx context.Context, runID string) error {
	if len(v.suspects) == 0 {
		return nil
	}
	wait := cmp.Or(v.s.RecheckAfter, 5*time.Second)
	if v.s.RecheckAfter < 0 {
		wait = 0
	}
	var last time.Time
	for _, su := range v.suspects {
		if su.seen.After(last) {
			last = su.seen
		}
	}
	if d := last.Add(wait).Sub(v.s.now()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	m := v.s.startMeter(ctx, runID, ModeVerify, "recheck", int64(len(v.suspects)))
	defer m.finish()
	suspects := v.suspects
	return pipeline(ctx, 1, v.s.concurrency(),
		func(ctx context.Context, _ int, emit func(suspect) error) error {
			for _, su := range suspects {
				m.items.Add(1)
				if err := emit(su); err != nil {
					return err
				}
			}
			return nil
		},
		func(ctx context.Context, su suspect) { v.recheck(ctx, m, su) })
}

// recheck looks at one suspect again and records what is still different.
func (v *verifier) recheck(ctx context.Context, m *meter, su suspect) {
	m.users.Add(1)
	var found []Finding
	if su.compare {
		kind, err := v.compare(ctx, su.userID)
		if err != nil {
			v.fail(m, su.userID, err)
			return
		}
		if kind != "" {
			found = append(found, Finding{Kind: kind, UserID: su.userID})
		}
	}
	for _, p := range su.projects {
		exists, err := v.s.Store.MembershipExists(ctx, su.userID, p)
		if err != nil {
			v.fail(m, su.userID, err)
			return
		}
		if !exists {
			continue // left the project since
		}
		tokens, err := v.s.Store.MemberTokens(ctx, su.userID, []string{p})
		if err != nil {
			v.fail(m, su.userID, err)
			return
		}
		if _, ok := tokens[p]; !ok {
			found = append(found, Finding{Kind: MissingIndex, UserID: su.userID, Project: p})
		}
	}
	if p := su.stale; p != "" {
		exists, err := v.s.Store.MembershipExists(ctx, su.userID, p)
		if err != nil {
			v.fail(m, su.userID, err)
			return
		}
		if !exists {
			tokens, err := v.s.Store.MemberTokens(ctx, su.userID, []string{p})
			if err != nil {
				v.fail(m, su.userID, err)
				return
			}
			if _, ok := tokens[p]; ok { // else pruned since
				found = append(found, Finding{Kind: ExtraIndex, UserID: su.userID, Project: p})
			}
		}
	}
	if len(found) == 0 {
		v.cleared.Add(1)
		return
	}
	v.mu.Lock()
	v.findings.add(found...)
	v.mu.Unlock()
}

// emitDrift sends the PolicyDrift event; cut says the findings were cut
// to MaxListed. A bus failure is logged: the drift is in the report, the
// log and the exit status anyway.
func (s *Service) emitDrift(ctx context.Context, log *slog.Logger, rep Report, cut bool) {
	if s.Auditor == nil {
		return
	}
	var users []string
	for _, f := range rep.Findings {
		if len(users) == 0 || users[len(users)-1] != f.UserID {
			users = append(users, f.UserID)
		}
	}
	d := broker.PolicyDriftDetail{
		SchemaVersion: broker.AuditSchemaVersion, RunID: rep.RunID, CheckedUsers: rep.Users + rep.Orphans,
		Missing: rep.Missing, Extra: rep.Extra, Different: rep.Different, MissingIndex: rep.MissingIndex, ExtraIndex: rep.ExtraIndex,
		Users: users[:min(len(users), s.maxListed())], Truncated: cut || len(users) > s.maxListed(), CheckedAt: rep.FinishedAt,
	}
	ev := broker.AuditEvent{Source: broker.SourceReplay, DetailType: broker.DetailPolicyDrift, Time: rep.FinishedAt, Detail: d}
	if err := s.Auditor.Emit(ctx, ev); err != nil {
		log.Error("emit PolicyDrift", "err", err, "runId", rep.RunID)
	}
}
