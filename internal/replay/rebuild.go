// Package replay recovers and checks the policy table as a whole: Rebuild
// recomputes every user from the membership table, Verify compares the
// table with a recomputation without writing, and Replay feeds the
// membership table's stream through the projector's own Lambda handler.
//
// Streams keep records for 24 hours only, so Rebuild is the durable
// recovery path and Replay is for the recent window. Nothing here writes
// the policy table directly: every write goes through the projector's
// Recompute, whose claims make a stale result lose against a newer one, so
// every operation is safe while the live projector runs and safe to run
// again after an interruption (each is idempotent and starts over).
//
// Tables are read with parallel Scan segments, page by page: memory stays
// bounded by the page size, the number of segments and the concurrency,
// whatever the size of the tables.
package replay

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"golang.org/x/sync/errgroup"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/projector"
)

// MembershipScanner reads the membership table in parallel Scan segments.
type MembershipScanner interface {
	// ScanMemberships reads segment of total segments with strongly
	// consistent reads, calling fn with each item in Scan order (the items
	// of one partition together). An error from fn stops the scan and is
	// returned.
	ScanMemberships(ctx context.Context, segment, total int, fn func(broker.SourceItem) error) error
}

// PolicyScanner reads the policy table in parallel Scan segments.
type PolicyScanner interface {
	// ScanPolicyTable reads segment of total segments with strongly
	// consistent reads, calling user for each policy item (whether it
	// grants anything; when a successful recompute last stamped it) and entry
	// for each member-index entry. An error from a callback stops the scan
	// and is returned.
	ScanPolicyTable(ctx context.Context, segment, total int,
		user func(userID string, grants bool, checkedAt time.Time) error,
		entry func(projectID string, m broker.Member) error) error
}

// Recomputer is the projector's per-user logic (projector.Projector).
type Recomputer interface {
	// Recompute recomputes and commits one user under a claim, maintaining
	// the member index as the hint says.
	Recompute(ctx context.Context, userID string, h projector.Hint, causes []string) (bool, error)
	// Compute returns the policy the user should have now, writing nothing.
	Compute(ctx context.Context, userID string) (broker.UserPolicy, error)
	// ComputeAt is Compute with membership expiries judged at an instant.
	ComputeAt(ctx context.Context, userID string, at time.Time) (broker.UserPolicy, error)
	// Validate applies the source-record rules as the projector does; an
	// invalid item grants nothing (docs/contract.md "Source records").
	Validate(it broker.SourceItem) (broker.ParsedItem, error)
}

// Store is what the operations read besides whole-table scans
// (ddbstore.Store).
type Store interface {
	// GetPolicy reads the user's item; NotFound when there is none. An item
	// whose document cannot be decoded gives an error wrapping the
	// encoding/json error, which Verify reports as a difference.
	GetPolicy(ctx context.Context, userID string) (broker.UserPolicy, error)
	// MembershipExists reads one membership item strongly consistently.
	MembershipExists(ctx context.Context, userID, projectID string) (bool, error)
	// UserMemberships reads every item of USER#<userId> whose sort key
	// starts with PROJECT#, strongly consistently.
	UserMemberships(ctx context.Context, userID string) ([]broker.SourceItem, error)
	// MemberTokens reads the user's member-index entries for the projects.
	MemberTokens(ctx context.Context, userID string, projects []string) (map[string]int64, error)
}

// StreamReader reads the membership table's stream (ddbstream.Reader).
type StreamReader interface {
	// ReadAll reads every shard from TRIM_HORIZON, parents before
	// children, calling fn with each non-empty page; an open shard ends
	// after idleReads empty pages in a row.
	ReadAll(ctx context.Context, idleReads int, fn func(ctx context.Context, shardID string, recs []events.DynamoDBEventRecord) error) error
}

// Handler is the projector's Lambda handler (projector.Handler).
type Handler = projector.BatchHandler

// Sizer gives the tables' approximate item counts (ddbstore.Tables), for
// the ETA of long runs. DynamoDB refreshes them about every six hours.
type Sizer interface {
	ApproxItemCounts(ctx context.Context) (memberships, policies int64, err error)
}

// Service runs the operations. Its dependencies are injected; see
// functions/replay for the wiring. Rebuild needs Memberships, Policies,
// Store and Projector; Verify those and Auditor; Replay Stream and Handler.
type Service struct {
	Memberships MembershipScanner
	Policies    PolicyScanner
	Store       Store
	Projector   Recomputer
	Stream      StreamReader
	Handler     Handler
	// Auditor receives the PolicyDrift event of a verify that found drift.
	Auditor broker.Auditor
	// Sizes, when set, lets progress reports estimate the time left.
	Sizes  Sizer
	Logger *slog.Logger
	// Progress receives a status every ProgressEvery (default 10s) and at
	// the end of each phase; nil reports nothing but the final log line.
	Progress      Progress
	ProgressEvery time.Duration
	Now           func() time.Time

	// Segments is the number of parallel Scan segments (default 4).
	Segments int
	// Concurrency bounds the users processed at once (default 16).
	Concurrency int
	// RecheckAfter is how long after first seeing a difference Verify
	// looks again (default 5s; negative: at once): a change still on its
	// way through the stream is not drift.
	RecheckAfter time.Duration
	// MaxRechecks bounds the differences kept for the later recheck
	// (default 10,000); beyond it they are rechecked at once.
	MaxRechecks int
	// MaxListed bounds the users listed in reports (default 1,000); the
	// counts stay exact.
	MaxListed int
	// BatchSize is the most records Replay hands the handler at once
	// (default and maximum 100, like the event source mapping).
	BatchSize int
	// MaxAttempts bounds Replay's deliveries of one batch (default 5).
	MaxAttempts int
	// IdleReads is how many empty pages in a row end an open shard
	// (default 3).
	IdleReads int
}

func (s *Service) logger() *slog.Logger { return cmp.Or(s.Logger, slog.Default()) }

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) segments() int    { return max(1, cmp.Or(s.Segments, 4)) }
func (s *Service) concurrency() int { return max(1, cmp.Or(s.Concurrency, 16)) }
func (s *Service) maxListed() int   { return cmp.Or(s.MaxListed, 1000) }

// newRunID names a run: mode, start time and a random suffix, so that two
// runs started in the same second differ.
func newRunID(mode Mode, at time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return string(mode) + "-" + at.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// pipeline runs one producer per Scan segment, feeding a channel that
// workers drain. The channel's small buffer is what bounds memory: a scan
// waits while the workers are busy. A producer's error cancels the run;
// work reports its own failures and never stops the others.
func pipeline[T any](ctx context.Context, segments, workers int,
	produce func(ctx context.Context, segment int, emit func(T) error) error,
	work func(ctx context.Context, t T)) error {
	g, gctx := errgroup.WithContext(ctx)
	ch := make(chan T, workers)
	var producers sync.WaitGroup
	for seg := range segments {
		producers.Add(1)
		g.Go(func() error {
			defer producers.Done()
			return produce(gctx, seg, func(t T) error {
				select {
				case ch <- t:
					return nil
				case <-gctx.Done():
					return gctx.Err()
				}
			})
		})
	}
	go func() {
		producers.Wait()
		close(ch)
	}()
	for range workers {
		g.Go(func() error {
			for t := range ch {
				if gctx.Err() == nil {
					work(gctx, t)
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// userGroup is one user of the membership table: their partition's items
// arrive together in a segment, so consecutive items make one group.
type userGroup struct {
	userID string
	// projects holds the user's valid memberships as scanned: those the
	// member index must hold.
	projects []string
}

// scanUsers emits every user of one membership-table segment once. Only
// the current partition is held, so memory does not grow with the table.
// A partition whose user id breaks the schema is skipped: the projector
// rejects its records and never writes such a user. Every record that
// breaks the rules, of either kind, is counted in m.rejected.
func (s *Service) scanUsers(ctx context.Context, segment int, m *meter, emit func(userGroup) error) error {
	var cur *userGroup
	err := s.Memberships.ScanMemberships(ctx, segment, s.segments(), func(it broker.SourceItem) error {
		m.items.Add(1)
		if _, err := s.Projector.Validate(it); err != nil {
			m.rejected.Add(1)
		}
		ref, _ := broker.ParseRef(it.PK, it.SK)
		if ref.Kind != broker.MembershipRecord || ref.UserID == "" {
			return nil
		}
		if cur == nil || cur.userID != ref.UserID {
			if cur != nil {
				if err := emit(*cur); err != nil {
					return err
				}
			}
			cur = &userGroup{userID: ref.UserID}
		}
		if parsed, err := it.Parse(); err == nil && parsed.Kind == broker.MembershipRecord {
			cur.projects = append(cur.projects, parsed.Membership.ProjectID)
		}
		return nil
	})
	if err == nil && cur != nil {
		err = emit(*cur)
	}
	return err
}

// policyWork is one item of the policy table: a user's policy item, or a
// member-index entry when project is set.
type policyWork struct {
	userID    string
	grants    bool
	checkedAt time.Time
	project   string
	token     int64
}

func (s *Service) scanPolicies(ctx context.Context, segment int, m *meter, emit func(policyWork) error) error {
	return s.Policies.ScanPolicyTable(ctx, segment, s.segments(),
		func(userID string, grants bool, checkedAt time.Time) error {
			m.items.Add(1)
			return emit(policyWork{userID: userID, grants: grants, checkedAt: checkedAt})
		},
		func(projectID string, mem broker.Member) error {
			m.items.Add(1)
			return emit(policyWork{userID: mem.UserID, project: projectID, token: mem.Token})
		})
}

// listed collects user ids for a report up to a bound, counting all.
type listed struct {
	mu    sync.Mutex
	max   int
	users []string
	n     int
}

func (l *listed) add(user string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	if len(l.users) < l.max {
		l.users = append(l.users, user)
	}
}

func (l *listed) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string{}, l.users...)
}
