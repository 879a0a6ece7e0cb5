// Package memstore is an in-memory membership table and policy table with
// the semantics of ddbstore: every read strongly consistent, a newer claim
// voids older ones, index removals conditional on their token. It is a
// hand-written fake for what moto cannot serve in reasonable time (fan-outs
// to 10,000 members, in-process benchmarks); internal/storetest runs one
// conformance suite against it and against ddbstore on moto, so the two
// cannot drift apart.
package memstore

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/revoker"
)

// Store holds both tables. The zero value is not usable; call New.
type Store struct {
	mu              sync.Mutex
	source          map[string]map[string]broker.SourceItem // pk -> sk -> item
	policies        map[string]*row
	index           map[string]map[string]int64 // project -> user -> token
	sorted          map[string][]string         // project -> its members in order, until the index changes
	checkpoints     map[string]string
	denyList        revoker.List
	denyListCorrupt bool
	pagesOwner      string
	pagesUntil      time.Time

	// Calls counts every store call, like DynamoDB calls.
	Calls atomic.Int64
}

type row struct {
	claim int64
	// corrupt is the claim counter as a hand edit or a bug left it, when it
	// is not a whole int64 (ddbstore's item holds any attribute value).
	corrupt string
	// badDoc is why the document cannot be decoded, when a hand edit broke
	// it; the claim counter still works, as with ddbstore's items.
	badDoc    error
	checkedAt time.Time
	written   bool
	policy    broker.UserPolicy
	outbox    []broker.PolicyChangedDetail
}

var (
	_ broker.SourceReader = (*Store)(nil)
	_ broker.PolicyStore  = (*Store)(nil)
	_ broker.MemberIndex  = (*Store)(nil)
	_ broker.Checkpoints  = (*Store)(nil)
	_ revoker.PagesLease  = (*Store)(nil)
)

// New returns an empty store.
func New() *Store {
	return &Store{
		source:      map[string]map[string]broker.SourceItem{},
		policies:    map[string]*row{},
		index:       map[string]map[string]int64{},
		sorted:      map[string][]string{},
		checkpoints: map[string]string{},
	}
}

func (s *Store) lock() func() {
	s.Calls.Add(1)
	s.mu.Lock()
	return s.mu.Unlock
}

// PutSource writes a membership-table item.
func (s *Store) PutSource(it broker.SourceItem) {
	defer s.lock()()
	if s.source[it.PK] == nil {
		s.source[it.PK] = map[string]broker.SourceItem{}
	}
	s.source[it.PK][it.SK] = it
}

// DeleteSource deletes a membership-table item.
func (s *Store) DeleteSource(pk, sk string) {
	defer s.lock()()
	delete(s.source[pk], sk)
}

// UserMemberships implements broker.SourceReader.
func (s *Store) UserMemberships(_ context.Context, userID string) ([]broker.SourceItem, error) {
	return s.query(broker.UserKeyPrefix+userID, broker.ProjectKeyPrefix), nil
}

// ProjectBuckets implements broker.SourceReader.
func (s *Store) ProjectBuckets(_ context.Context, projectID string) ([]broker.SourceItem, error) {
	return s.query(broker.ProjectKeyPrefix+projectID, broker.BucketKeyPrefix), nil
}

// ProjectMemberships implements broker.SourceReader, counting one call per
// 100 users as DynamoDB's batch reads do.
func (s *Store) ProjectMemberships(_ context.Context, projectID string, userIDs []string) (map[string]broker.SourceItem, error) {
	out := make(map[string]broker.SourceItem, len(userIDs))
	for chunk := range slices.Chunk(userIDs, 100) {
		func() {
			defer s.lock()()
			for _, u := range chunk {
				if it, ok := s.source[broker.UserKeyPrefix+u][broker.ProjectKeyPrefix+projectID]; ok {
					out[u] = it
				}
			}
		}()
	}
	return out, nil
}

// MembershipExists reads one membership item.
func (s *Store) MembershipExists(_ context.Context, userID, projectID string) (bool, error) {
	defer s.lock()()
	_, ok := s.source[broker.UserKeyPrefix+userID][broker.ProjectKeyPrefix+projectID]
	return ok, nil
}

func (s *Store) query(pk, skPrefix string) []broker.SourceItem {
	defer s.lock()()
	var out []broker.SourceItem
	for sk, it := range s.source[pk] {
		if strings.HasPrefix(sk, skPrefix) {
			out = append(out, it)
		}
	}
	slices.SortFunc(out, func(a, b broker.SourceItem) int { return strings.Compare(a.SK, b.SK) })
	return out
}

// CorruptClaim makes the user's claim counter unreadable, as a hand edit
// that stored it as a string or a fraction would; raw describes it.
func (s *Store) CorruptClaim(userID, raw string) {
	defer s.lock()()
	r := s.policies[userID]
	if r == nil {
		r = &row{policy: broker.UserPolicy{UserID: userID}}
		s.policies[userID] = r
	}
	r.corrupt = raw
}

// GetPolicy implements broker.PolicyReader.
func (s *Store) GetPolicy(_ context.Context, userID string) (broker.UserPolicy, error) {
	defer s.lock()()
	r := s.policies[userID]
	if r == nil {
		return broker.UserPolicy{}, broker.Errorf(broker.NotFound, "get policy", "no policy item")
	}
	if r.corrupt != "" {
		return broker.UserPolicy{}, broker.Wrap(broker.Internal, "decode policy item", fmt.Errorf("%w: claim counter %q", broker.ErrCorruptItem, r.corrupt))
	}
	if r.badDoc != nil {
		return broker.UserPolicy{}, r.badDoc
	}
	return r.policy, nil
}

// Claim implements broker.PolicyStore. A corrupt counter is reset, with
// the item, to a ticket from the clock, as ddbstore does.
func (s *Store) Claim(_ context.Context, userID string, now time.Time) (broker.Claim, error) {
	defer s.lock()()
	r := s.policies[userID]
	if r == nil {
		r = &row{policy: broker.UserPolicy{UserID: userID}}
		s.policies[userID] = r
	}
	if r.corrupt != "" {
		why := fmt.Sprintf("claim counter reset: %q is not a whole 64-bit number", r.corrupt)
		*r = row{claim: max(now.UnixMicro(), 1), policy: broker.UserPolicy{UserID: userID}}
		return broker.Claim{UserID: userID, Ticket: r.claim, Prev: r.policy, Corrupt: why}, nil
	}
	r.claim++
	if r.badDoc != nil {
		// The claim stands: the recompute will overwrite the item.
		return broker.Claim{UserID: userID, Ticket: r.claim, Prev: broker.UserPolicy{UserID: userID}, Corrupt: r.badDoc.Error()}, nil
	}
	return broker.Claim{UserID: userID, Ticket: r.claim, Prev: r.policy, Outbox: slices.Clone(r.outbox)}, nil
}

// AdvanceCutoff gives the user a new revocation cutoff, as ddbstore does.
func (s *Store) AdvanceCutoff(_ context.Context, userID string, want time.Time) (time.Time, error) {
	defer s.lock()()
	r := s.policies[userID]
	if r == nil {
		r = &row{policy: broker.UserPolicy{UserID: userID}}
		s.policies[userID] = r
	}
	r.policy.RevokedBefore = broker.NextCutoff(r.policy.RevokedBefore, want)
	r.claim++ // as ddbstore: a recompute that claimed earlier cannot commit over it
	return r.policy.RevokedBefore, nil
}

// Touch implements broker.PolicyStore.
func (s *Store) Touch(_ context.Context, c broker.Claim, checkedAt time.Time) error {
	defer s.lock()()
	r := s.policies[c.UserID]
	if r == nil || r.corrupt != "" || r.claim != c.Ticket {
		return broker.Errorf(broker.Conflict, "touch policy", "claim %d superseded", c.Ticket)
	}
	r.checkedAt = checkedAt
	return nil
}

// Commit implements broker.PolicyStore.
func (s *Store) Commit(_ context.Context, c broker.Claim, p broker.UserPolicy, outbox []broker.PolicyChangedDetail) error {
	defer s.lock()()
	r := s.policies[c.UserID]
	if r == nil || r.corrupt != "" || r.claim != c.Ticket {
		return broker.Errorf(broker.Conflict, "commit policy", "claim %d superseded", c.Ticket)
	}
	p.UserID = c.UserID
	if len(p.Grants) == 0 {
		p.Grants, p.Sets, p.ByProject, p.Expires = nil, nil, nil, nil
	}
	r.policy, r.outbox, r.written, r.checkedAt, r.badDoc = p, slices.Clone(outbox), true, p.UpdatedAt, nil
	return nil
}

// ClearOutbox implements broker.PolicyStore.
func (s *Store) ClearOutbox(_ context.Context, c broker.Claim) error {
	defer s.lock()()
	r := s.policies[c.UserID]
	if r == nil || r.corrupt != "" || r.claim != c.Ticket {
		return broker.Errorf(broker.Conflict, "clear outbox", "claim %d superseded", c.Ticket)
	}
	r.outbox = nil
	return nil
}

// Hand edits of the policy table, as an operator or a bug could make them
// with PutItem, UpdateItem or DeleteItem on ddbstore's items, for the tests
// of the tools that find and repair them (replay's Verify and Rebuild).

// PutPolicyItem replaces the user's item (p.UserID) with one that holds p,
// the claim counter claim and the stamp checkedAt, and no outbox.
func (s *Store) PutPolicyItem(p broker.UserPolicy, claim int64, checkedAt time.Time) {
	defer s.lock()()
	s.policies[p.UserID] = &row{claim: claim, checkedAt: checkedAt, written: true, policy: p}
}

// EditPolicy changes what the user's item holds, keeping its claim counter,
// stamp and outbox; the document is replaced, so one that could not be
// decoded can be again.
func (s *Store) EditPolicy(userID string, edit func(*broker.UserPolicy)) {
	defer s.lock()()
	r := s.policies[userID]
	if r == nil {
		r = &row{policy: broker.UserPolicy{UserID: userID}}
		s.policies[userID] = r
	}
	edit(&r.policy)
	r.badDoc = nil
}

// CorruptDocument makes the user's document undecodable, cause saying why,
// as ddbstore reads an item whose JSON a hand edit broke: GetPolicy fails
// with an error wrapping broker.ErrCorruptItem and cause, Claim hands out
// the next ticket with an empty Prev and the reason in Corrupt, and the
// next commit replaces the document.
func (s *Store) CorruptDocument(userID string, cause error) {
	defer s.lock()()
	r := s.policies[userID]
	if r == nil {
		r = &row{policy: broker.UserPolicy{UserID: userID}}
		s.policies[userID] = r
	}
	r.badDoc = broker.Wrap(broker.Internal, "decode policy item", fmt.Errorf("%w: %w", broker.ErrCorruptItem, cause))
}

// DeletePolicyItem deletes the user's item.
func (s *Store) DeletePolicyItem(userID string) {
	defer s.lock()()
	delete(s.policies, userID)
}

// ClearOutboxes implements broker.PolicyStore, counting one call per 100
// claims as DynamoDB's transactions do. A voided claim's outbox is left.
func (s *Store) ClearOutboxes(_ context.Context, claims []broker.Claim) error {
	for chunk := range slices.Chunk(claims, 100) {
		func() {
			defer s.lock()()
			for _, c := range chunk {
				if r := s.policies[c.UserID]; r != nil && r.corrupt == "" && r.claim == c.Ticket {
					r.outbox = nil
				}
			}
		}()
	}
	return nil
}

// MemberTokens implements broker.MemberIndex.
func (s *Store) MemberTokens(_ context.Context, userID string, projects []string) (map[string]int64, error) {
	defer s.lock()()
	out := map[string]int64{}
	for _, p := range projects {
		if tok, ok := s.index[p][userID]; ok {
			out[p] = tok
		}
	}
	return out, nil
}

// PutMembers implements broker.MemberIndex.
func (s *Store) PutMembers(_ context.Context, userID string, projects []string, token int64) error {
	defer s.lock()()
	for _, p := range projects {
		if s.index[p] == nil {
			s.index[p] = map[string]int64{}
		}
		if _, ok := s.index[p][userID]; !ok {
			delete(s.sorted, p)
		}
		s.index[p][userID] = token
	}
	return nil
}

// PutProjectMembers implements broker.MemberIndex, counting one call per
// 25 entries as DynamoDB's batch writes do.
func (s *Store) PutProjectMembers(_ context.Context, projectID string, members []broker.Member) error {
	for chunk := range slices.Chunk(members, 25) {
		func() {
			defer s.lock()()
			if s.index[projectID] == nil {
				s.index[projectID] = map[string]int64{}
			}
			for _, m := range chunk {
				if _, ok := s.index[projectID][m.UserID]; !ok {
					delete(s.sorted, projectID)
				}
				s.index[projectID][m.UserID] = m.Token
			}
		}()
	}
	return nil
}

// RemoveMember implements broker.MemberIndex.
func (s *Store) RemoveMember(_ context.Context, projectID, userID string, token int64) (bool, error) {
	defer s.lock()()
	if tok, ok := s.index[projectID][userID]; !ok || tok != token {
		return false, nil
	}
	delete(s.index[projectID], userID)
	delete(s.sorted, projectID)
	return true, nil
}

// ProjectMembers implements broker.MemberIndex, in user id order like a
// DynamoDB query on the sort key. The project's sorted members are kept
// until its index changes, so that paging through 100,000 members costs
// what DynamoDB's pages do rather than a sort per page.
func (s *Store) ProjectMembers(_ context.Context, projectID, cursor string, limit int) (broker.MemberPage, error) {
	defer s.lock()()
	sorted, ok := s.sorted[projectID]
	if !ok {
		sorted = slices.Sorted(maps.Keys(s.index[projectID]))
		s.sorted[projectID] = sorted
	}
	start, found := slices.BinarySearch(sorted, cursor)
	if found {
		start++
	}
	users := sorted[start:]
	var page broker.MemberPage
	if limit > 0 && len(users) > limit {
		users = users[:limit]
		page.Next = users[limit-1]
	}
	for _, u := range users {
		page.Members = append(page.Members, broker.Member{UserID: u, Token: s.index[projectID][u]})
	}
	return page, nil
}

// Cutoff implements revoker.Cutoffs.
func (s *Store) Cutoff(_ context.Context, userID string) (time.Time, error) {
	defer s.lock()()
	if r := s.policies[userID]; r != nil {
		return r.policy.RevokedBefore, nil
	}
	return time.Time{}, nil
}

// LoadDenyList implements revoker.Store.
func (s *Store) LoadDenyList(context.Context) (revoker.List, error) {
	defer s.lock()()
	if s.denyListCorrupt {
		return revoker.List{Version: s.denyList.Version}, broker.Wrap(broker.Internal, "load deny list", fmt.Errorf("%w: made unreadable by the test", broker.ErrCorruptItem))
	}
	l := s.denyList
	l.Revoked = maps.Clone(l.Revoked)
	l.Users = maps.Clone(l.Users)
	l.Unannounced = slices.Clone(l.Unannounced)
	return l, nil
}

// CorruptDenyList makes the stored deny list unreadable (it keeps its
// version), as an item damaged by hand would be.
func (s *Store) CorruptDenyList() {
	defer s.lock()()
	s.denyListCorrupt = true
}

// DeleteDenyList removes the stored deny list, as a mistaken clean-up
// would; RestoreDenyList puts back an older copy, as a backup would.
func (s *Store) DeleteDenyList() { s.RestoreDenyList(revoker.List{}) }

// RestoreDenyList replaces the stored deny list with l.
func (s *Store) RestoreDenyList(l revoker.List) {
	defer s.lock()()
	s.denyList, s.denyListCorrupt = l, false
}

// SaveDenyList implements revoker.Store.
func (s *Store) SaveDenyList(_ context.Context, prev int64, next revoker.List) error {
	defer s.lock()()
	if s.denyList.Version != prev {
		return broker.Errorf(broker.Conflict, "save deny list", "version %d, not %d", s.denyList.Version, prev)
	}
	next.Revoked = maps.Clone(next.Revoked)
	next.Users = maps.Clone(next.Users)
	next.Unannounced = slices.Clone(next.Unannounced)
	s.denyList, s.denyListCorrupt = next, false
	return nil
}

// TakePages implements revoker.PagesLease.
func (s *Store) TakePages(_ context.Context, owner string, now, until time.Time) error {
	defer s.lock()()
	if s.pagesOwner != "" && s.pagesOwner != owner && !s.pagesUntil.Before(now) {
		return broker.Errorf(broker.Conflict, "take the deny list's pages", "held until %s", s.pagesUntil.Format(time.RFC3339Nano))
	}
	s.pagesOwner, s.pagesUntil = owner, until
	return nil
}

// RenewPages implements revoker.PagesLease.
func (s *Store) RenewPages(_ context.Context, owner string, now, until time.Time) error {
	defer s.lock()()
	if s.pagesOwner != owner || s.pagesUntil.Before(now) {
		return broker.Errorf(broker.Conflict, "renew the deny list's pages", "no longer held by %s", owner)
	}
	s.pagesUntil = until
	return nil
}

// ReleasePages implements revoker.PagesLease.
func (s *Store) ReleasePages(_ context.Context, owner string) error {
	defer s.lock()()
	if s.pagesOwner == owner {
		s.pagesOwner, s.pagesUntil = "", time.Time{}
	}
	return nil
}

// FallbackCutoff is ddbstore's: the deny list's fallbacks' cutoff
// (revoker.List.Fallback) to the millisecond, zero when there is none.
func (s *Store) FallbackCutoff(context.Context) (time.Time, error) {
	defer s.lock()()
	if at := s.denyList.Fallback(); !at.IsZero() {
		return at.UTC().Truncate(time.Millisecond), nil
	}
	return time.Time{}, nil
}

// LoadCheckpoint implements broker.Checkpoints.
func (s *Store) LoadCheckpoint(_ context.Context, key string) (string, error) {
	defer s.lock()()
	return s.checkpoints[key], nil
}

// SaveCheckpoint implements broker.Checkpoints; expiry is not modelled.
func (s *Store) SaveCheckpoint(_ context.Context, key, cursor string, _ time.Time) error {
	defer s.lock()()
	s.checkpoints[key] = cursor
	return nil
}

// DeleteCheckpoint implements broker.Checkpoints.
func (s *Store) DeleteCheckpoint(_ context.Context, key string) error {
	defer s.lock()()
	delete(s.checkpoints, key)
	return nil
}
