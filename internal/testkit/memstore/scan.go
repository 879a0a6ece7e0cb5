package memstore

import (
	"cmp"
	"context"
	"hash/fnv"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
)

// Whole-table scans with the shape of ddbstore's (rebuild's
// MembershipScanner and PolicyScanner): a partition falls in one segment
// by a hash of its key, and its items come together, in sort-key order.
// Callbacks run without the lock held, one partition at a time, so they
// may call the store, as a scan's consumer calls DynamoDB between pages.

func inSegment(pk string, segment, total int) bool {
	h := fnv.New32a()
	_, _ = h.Write([]byte(pk))
	return int(h.Sum32()%uint32(total)) == segment
}

func checkSegment(op string, segment, total int) error {
	if total < 1 || segment < 0 || segment >= total {
		return broker.Errorf(broker.Invalid, op, "segment %d of %d", segment, total)
	}
	return nil
}

// ScanMemberships calls fn with every membership-table item of the
// segment, partition by partition.
func (s *Store) ScanMemberships(ctx context.Context, segment, total int, fn func(broker.SourceItem) error) error {
	if err := checkSegment("scan memberships", segment, total); err != nil {
		return err
	}
	for _, pk := range s.sourceKeys(segment, total) {
		if err := ctx.Err(); err != nil {
			return broker.Wrap(broker.Transient, "scan memberships", err)
		}
		for _, it := range s.partition(pk) {
			if err := fn(it); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Store) sourceKeys(segment, total int) []string {
	defer s.lock()()
	var pks []string
	for pk := range s.source {
		if inSegment(pk, segment, total) {
			pks = append(pks, pk)
		}
	}
	slices.Sort(pks)
	return pks
}

func (s *Store) partition(pk string) []broker.SourceItem {
	defer s.lock()()
	items := slices.Collect(maps.Values(s.source[pk]))
	slices.SortFunc(items, func(a, b broker.SourceItem) int { return strings.Compare(a.SK, b.SK) })
	return items
}

// ScanPolicyTable calls user for every policy item of the segment and
// entry for every member-index entry.
func (s *Store) ScanPolicyTable(ctx context.Context, segment, total int,
	user func(userID string, grants bool, checkedAt time.Time) error,
	entry func(projectID string, m broker.Member) error) error {
	const op = "scan policy table"
	if err := checkSegment(op, segment, total); err != nil {
		return err
	}
	users, projects := s.policyKeys(segment, total)
	for _, u := range users {
		if err := ctx.Err(); err != nil {
			return broker.Wrap(broker.Transient, op, err)
		}
		grants, checked, ok := s.policyRow(u)
		if !ok {
			continue
		}
		if err := user(u, grants, checked); err != nil {
			return err
		}
	}
	for _, p := range projects {
		if err := ctx.Err(); err != nil {
			return broker.Wrap(broker.Transient, op, err)
		}
		for _, m := range s.entries(p) {
			if err := entry(p, m); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Store) policyKeys(segment, total int) (users, projects []string) {
	defer s.lock()()
	for u := range s.policies {
		if inSegment(broker.UserKeyPrefix+u, segment, total) {
			users = append(users, u)
		}
	}
	for p, members := range s.index {
		if len(members) > 0 && inSegment(broker.ProjectKeyPrefix+p, segment, total) {
			projects = append(projects, p)
		}
	}
	slices.Sort(users)
	slices.Sort(projects)
	return users, projects
}

func (s *Store) policyRow(userID string) (grants bool, checkedAt time.Time, ok bool) {
	defer s.lock()()
	r := s.policies[userID]
	if r == nil {
		return false, time.Time{}, false
	}
	// ddbstore reports an item as granting when it has a document, even
	// one that cannot be decoded.
	return len(r.policy.Grants) > 0 || r.badDoc != nil, r.checkedAt, true
}

func (s *Store) entries(projectID string) []broker.Member {
	defer s.lock()()
	out := make([]broker.Member, 0, len(s.index[projectID]))
	for u, tok := range s.index[projectID] {
		out = append(out, broker.Member{UserID: u, Token: tok})
	}
	slices.SortFunc(out, func(a, b broker.Member) int { return cmp.Compare(a.UserID, b.UserID) })
	return out
}
