package credentials

import (
	"context"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/credbroker/credbroker/internal/broker"
)

// answerKey names the credential sets of one answer: a user's policy at
// one version, narrowed to a project or not, split smaller or not, minted
// under the user's revocation cutoff (their sessions carry its tag); and,
// with fresh (Cache-Control: no-cache), that no set from the cache older
// than freshAge serves it; and that no set issued before denyBefore (the
// deny list's fallback, a whole second) serves it.
type answerKey struct {
	userID, version, project string
	split                    bool
	cutoff                   time.Time
	fresh                    bool
	denyBefore               time.Time
}

// freshAge is how old a cached set may be and still serve a request that
// asked for fresh credentials: a client whose credentials S3 refused gets
// new ones, yet a client that keeps asking cannot make an AssumeRole per
// request.
const freshAge = 10 * time.Second

func (k answerKey) set(i int) CacheKey {
	return CacheKey{UserID: k.userID, PolicyVersion: k.version, Project: k.project, Split: k.split, Cutoff: k.cutoffMillis(), Set: i}
}

// cutoffMillis is the cutoff as the cache keys it: 0 for none.
func (k answerKey) cutoffMillis() int64 {
	if k.cutoff.IsZero() {
		return 0
	}
	return k.cutoff.UnixMilli()
}

// policy is the key without what only selects credentials: the answer's
// policies are the same whatever the cutoff or the freshness asked.
func (k answerKey) policy() answerKey {
	return answerKey{userID: k.userID, version: k.version, project: k.project, split: k.split}
}

// oldest is the issue time before which no cached set serves the answer.
func (k answerKey) oldest(now time.Time) time.Time {
	if k.fresh && now.Add(-freshAge).After(k.denyBefore) {
		return now.Add(-freshAge)
	}
	return k.denyBefore
}

// flight is the singleflight key: the fields joined with a separator that
// none of them can contain (ids and versions are printable).
func (k answerKey) flight() string {
	return k.userID + "\x00" + k.version + "\x00" + k.project + "\x00" + strconv.FormatBool(k.split) +
		"\x00" + strconv.FormatInt(k.cutoffMillis(), 10) + "\x00" + strconv.FormatBool(k.fresh) +
		"\x00" + strconv.FormatInt(k.denyBefore.Unix(), 10)
}

// issuedSet is the credentials of one set and whether this request's
// AssumeRole minted them (rather than the cache or another request).
type issuedSet struct {
	creds  broker.Credentials
	minted bool
}

// obtain returns credentials for every set of the answer. When the cache
// holds them all, that is the whole cost. Otherwise one flight per answer
// mints the missing sets: concurrent requests for the same answer wait for
// it instead of calling AssumeRole themselves, and the flight records the
// issuance (record) before any request hands the credentials out, so a
// set withheld for want of an audit record is never served by anyone.
// AssumeRole must return by issueBy (the issue window of the read).
func (s *Service) obtain(ctx, rctx context.Context, issueBy time.Time, k answerKey, sets []broker.PolicySet,
	record func(context.Context, []issuedSet) error) ([]issuedSet, error) {
	if out, ok := s.cached(k, len(sets)); ok {
		return out, nil
	}
	// The flight outlives a caller that gives up, so that the others
	// waiting for it still get their answer; it keeps the first caller's
	// deadline for AssumeRole, and recording gets a deadline of its own.
	led := false
	ch := s.flights.DoChan(k.flight(), func() (v any, err error) {
		defer func() {
			// singleflight panics again on a goroutine of its own, which
			// no recover reaches: the auditor's panic must end here.
			if r := recover(); r != nil {
				v, err = nil, broker.Errorf(broker.Internal, "issue", "panic: %v\n%s", r, debug.Stack())
			}
		}()
		led = true
		base := context.WithoutCancel(ctx)
		ictx, cancel := context.WithDeadline(base, issueBy)
		defer cancel()
		return s.mint(ictx, base, k, sets, record)
	})
	// The caller waits as long as the flight may take: credentials issued
	// in the window and then recorded are an answer, not a 503.
	wctx, cancel := context.WithDeadline(rctx, issueBy.Add(s.auditTimeout()))
	defer cancel()
	select {
	case <-wctx.Done():
		return nil, broker.Wrap(broker.Transient, "issue", wctx.Err())
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		out := r.Val.([]issuedSet)
		if !led {
			// Another request minted and recorded these: for this one
			// they are like cache hits.
			out = append([]issuedSet(nil), out...)
			for i := range out {
				out[i].minted = false
			}
		}
		return out, nil
	}
}

// cached returns every set of the answer from the cache, or false.
func (s *Service) cached(k answerKey, n int) ([]issuedSet, bool) {
	out := make([]issuedSet, n)
	oldest := k.oldest(s.now())
	for i := range out {
		c, ok := s.Cache.Get(k.set(i), oldest)
		if !ok {
			return nil, false
		}
		out[i].creds = c
	}
	return out, true
}

// mint calls AssumeRole, in parallel, for every set the cache lacks,
// records the issuance and caches the new sets. Any failure fails the
// whole answer: an answer never lacks a set, and credentials of a failed
// answer are neither cached nor handed out.
func (s *Service) mint(ctx, base context.Context, k answerKey, sets []broker.PolicySet,
	record func(context.Context, []issuedSet) error) ([]issuedSet, error) {
	duration := s.sessionDuration()
	if duration < MinSessionDuration || duration > MaxSessionDuration {
		return nil, broker.Errorf(broker.Internal, "issue", "session duration %v out of range", duration)
	}
	name := SessionName(k.userID)
	tag := broker.CutoffTag(k.userID, k.cutoff)
	out := make([]issuedSet, len(sets))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(maxParallelIssue)
	oldest := k.oldest(s.now())
	for i, set := range sets {
		if c, ok := s.Cache.Get(k.set(i), oldest); ok {
			out[i].creds = c
			continue
		}
		g.Go(func() (err error) {
			defer func() {
				// A panic on this goroutine would end the process, not
				// reach Handle's recover.
				if r := recover(); r != nil {
					err = broker.Errorf(broker.Internal, "issue", "panic: %v\n%s", r, debug.Stack())
				}
			}()
			c, err := s.Issuer.Issue(gctx, broker.IssueRequest{UserID: k.userID, SessionName: name, Policy: set.Policy, Duration: duration, CutoffTag: tag})
			if err != nil {
				return dependencyError("assume role", err)
			}
			out[i] = issuedSet{creds: c, minted: true}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for _, is := range out {
		// STS's clock is the one IAM compares: a set it stamped before
		// the fallback's cutoff is denied, so it is neither recorded,
		// cached nor handed out.
		if issued := is.creds.Expiration.Add(-duration); is.minted && issued.Before(k.denyBefore) {
			return nil, waitForCutoff("issue", k.denyBefore, k.denyBefore.Sub(issued))
		}
	}
	if err := record(base, out); err != nil {
		return nil, err
	}
	for i, is := range out {
		if is.minted {
			s.Cache.Put(k.set(i), is.creds, is.creds.Expiration.Add(-duration))
		}
	}
	return out, nil
}

// splitMemory remembers the answers whose sets STS refused as too large
// once packed, so that later requests for the same policy version go
// straight to the smaller sets instead of paying the refused call again.
// A new policy version is a new key: its sets are tried whole first. The
// zero value is ready to use.
type splitMemory struct {
	once  sync.Once
	items *lru[answerKey, struct{}]
}

// splitMemorySize bounds the answers remembered; they are rare.
const splitMemorySize = 4096

func (m *splitMemory) lru() *lru[answerKey, struct{}] {
	m.once.Do(func() { m.items = newLRU[answerKey, struct{}](splitMemorySize) })
	return m.items
}

func (m *splitMemory) has(k answerKey) bool {
	_, ok := m.lru().get(k, nil)
	return ok
}

func (m *splitMemory) add(k answerKey) { m.lru().put(k, struct{}{}) }
