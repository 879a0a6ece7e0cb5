package revoker

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/credbroker/credbroker/internal/backoff"
	"github.com/credbroker/credbroker/internal/broker"
)

// Store keeps the deny list durably, with optimistic concurrency.
type Store interface {
	// LoadDenyList reads the list (the zero List when there is none). When
	// the stored item cannot be read, it returns an error wrapping
	// broker.ErrCorruptItem and a List whose Version is the token that
	// SaveDenyList needs to replace the item.
	LoadDenyList(ctx context.Context) (List, error)
	// SaveDenyList writes next if the stored list still has version prev;
	// it returns a Conflict error otherwise.
	SaveDenyList(ctx context.Context, prev int64, next List) error
}

// Cutoffs keeps each user's cutoff in the user's policy item. The endpoint
// tags the sessions it mints with the cutoff it read (broker.CutoffTag) and
// serves no cached credentials minted under another.
type Cutoffs interface {
	// AdvanceCutoff gives the user a new cutoff, want or just after the
	// current one (broker.NextCutoff), and returns it.
	AdvanceCutoff(ctx context.Context, userID string, want time.Time) (time.Time, error)
	// Cutoff returns the user's current cutoff (zero when none).
	Cutoff(ctx context.Context, userID string) (time.Time, error)
}

// Role is the base role's revocation policies: its pages.
type Role interface {
	// Budgets is how many characters each page may take: [0] the inline
	// policy (IAM's limit for all inline policies of the role, less the
	// role's other policies and a margin), then one per customer managed
	// policy the role may have for the list.
	Budgets(ctx context.Context) ([]int, error)
	// Current returns page i's document ("" when it denies nothing).
	Current(ctx context.Context, page int) (string, error)
	// Apply makes doc page i's document; "" denies nothing.
	Apply(ctx context.Context, page int, doc string) error
}

// PagesLease lets one run at a time put the role's pages: IAM has no
// conditional put, so a run's put that lands after another run's newer
// one would take entries off the role that the other has announced.
type PagesLease interface {
	// TakePages takes the lease for owner until until, unless another
	// owner holds one that has not run out at now: a Conflict error then.
	TakePages(ctx context.Context, owner string, now, until time.Time) error
	// RenewPages extends owner's lease to until, if owner still holds it
	// at now; a Conflict error otherwise (it ran out, whoever took it
	// since).
	RenewPages(ctx context.Context, owner string, now, until time.Time) error
	// ReleasePages gives owner's lease back; one it no longer holds is
	// left alone.
	ReleasePages(ctx context.Context, owner string) error
}

// Request asks for revocations, or, with no entries, only for expired
// entries to be pruned.
type Request struct {
	Entries []Entry
	// Reason is broker.ReasonNarrowed or broker.ReasonOperator.
	Reason string
	// Causes name what asked for it (changeIds, an operator's request id).
	Causes []string
}

// Service applies revocations: the durable list first, then the role's
// policy, then the audit events. Every step is idempotent, so a request
// that fails half-way is simply delivered again.
//
// The role's policy is what IAM enforces, so the list must never shrink
// below it by accident: each run reads the policy first, and when the
// stored list lacks a live entry the policy holds (the item was deleted,
// cannot be read, or was restored from an old backup), it puts the entry
// back before anything else, logs an error and counts
// MetricDenyListRecovered (docs/security.md "If the deny-list item is lost").
type Service struct {
	Store   Store
	Cutoffs Cutoffs
	Role    Role
	Auditor broker.Auditor
	Logger  *slog.Logger
	Now     func() time.Time
	// Metric counts an alarming event; nil counts nothing.
	Metric func(name string)
	// MaxSession is the longest session the endpoint issues.
	MaxSession time.Duration
	// Margin is kept on top of MaxSession before an entry is pruned
	// (default one minute).
	Margin time.Duration
	// Attempts bounds the retries of a lost optimistic write (default 8).
	Attempts int
	// Lease, when set, makes runs take turns (PagesLease); nil lets them
	// overlap.
	Lease PagesLease
}

// A run holds the pages' lease at most leaseFor (well within the
// function's 60 s timeout), and waits at most leaseWait for it.
const (
	leaseFor  = 20 * time.Second
	leaseWait = 25 * time.Second
)

// takePages waits for the pages' lease and returns its release, and the
// renewal to call before each put: a run whose lease ran out stops there.
func (s *Service) takePages(ctx context.Context) (release func(), renew func(context.Context) error, err error) {
	if s.Lease == nil {
		return func() {}, func(context.Context) error { return nil }, nil
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	owner := hex.EncodeToString(id[:])
	waited := time.Now() // the wait is real time, whatever clock the lease keeps
	for attempt := 1; ; attempt++ {
		now := s.now()
		err := s.Lease.TakePages(ctx, owner, now, now.Add(leaseFor))
		if err == nil {
			release = func() {
				if err := s.Lease.ReleasePages(context.WithoutCancel(ctx), owner); err != nil {
					// It runs out on its own within leaseFor.
					s.logger().Warn("release the deny list's pages", "err", err)
				}
			}
			renew = func(ctx context.Context) error {
				now := s.now()
				err := s.Lease.RenewPages(ctx, owner, now, now.Add(leaseFor))
				if broker.KindOf(err) == broker.Conflict {
					return broker.Wrap(broker.Transient, "revoke", fmt.Errorf("this run's lease on the deny list's pages ran out: %w", err))
				}
				return err
			}
			return release, renew, nil
		}
		if broker.KindOf(err) != broker.Conflict {
			return nil, nil, err
		}
		if time.Since(waited) > leaseWait {
			return nil, nil, broker.Wrap(broker.Transient, "revoke", fmt.Errorf("another run held the deny list's pages for over %v: %w", leaseWait, err))
		}
		if err := backoff.Sleep(ctx, backoff.Jitter(attempt, 20*time.Millisecond, 500*time.Millisecond)); err != nil {
			return nil, nil, broker.Wrap(broker.Transient, "revoke", err)
		}
	}
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) logger() *slog.Logger { return cmp.Or(s.Logger, slog.Default()) }

func (s *Service) count(metric string) {
	if s.Metric != nil {
		s.Metric(metric)
	}
}

// Revoke applies the request and returns its entries as applied. For an
// operator's request it first gives the users new cutoffs in their policy
// items, and denies every session of theirs issued before the new cutoff
// took effect but those minted under it: the sessions minted under
// whatever earlier cutoff included. (A narrowing's cutoff is in the item
// already.) With no entries it prunes, and announces what other runs left
// unannounced.
func (s *Service) Revoke(ctx context.Context, req Request) ([]Entry, error) {
	release, renew, err := s.takePages(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	budgets, err := s.Role.Budgets(ctx)
	if err != nil {
		return nil, err
	}
	// What IAM enforces now, read before the list: anything the pages hold
	// was saved in the list before it was put, so a list loaded after this
	// read holds it too, unless the list was lost. Page 0 carries the
	// generation of the list it was rendered from; the other pages are read
	// only when that says the list lost something.
	role := &roleView{pages: make([]string, len(budgets)), known: make([]bool, len(budgets)), renew: renew}
	if err := s.read(ctx, role, 0); err != nil {
		return nil, err
	}
	entries := make([]Entry, len(req.Entries))
	for i, e := range req.Entries {
		if e.Reason == "" {
			e.Reason, e.Causes = req.Reason, req.Causes
		}
		entries[i] = e
	}
	if req.Reason == broker.ReasonOperator && len(entries) > 0 {
		// Past the user's cutoff in the deny list too, should the item's
		// have been lost (a corrupt item is rewritten without it): the new
		// cutoff's tag must be one that no earlier session carries.
		listed, err := s.Store.LoadDenyList(ctx)
		if err != nil && !errors.Is(err, broker.ErrCorruptItem) {
			return nil, err
		}
		for i, e := range entries {
			want := latest(e.Before, broker.RevokeBefore(s.now()))
			before, err := s.Cutoffs.AdvanceCutoff(ctx, e.UserID, broker.NextCutoff(listed.LatestCutoff(e.UserID), want))
			if err != nil {
				return nil, err
			}
			// A request that read the item before the new cutoff landed
			// mints within the issue window of its read, by a clock within
			// the margin of this one: now, once the write has returned,
			// bounds them, however long the write took.
			entries[i].Before = before
			entries[i].IssuedBefore = latest(before, s.now().Add(broker.IssueWindow+broker.ClockMargin))
		}
	}
	lim := Limits{MaxSession: s.MaxSession, Margin: cmp.Or(s.Margin, time.Minute), Budgets: budgets}
	cur, saved, docs, err := s.save(ctx, entries, role, lim)
	if errors.Is(err, broker.ErrItemTooLarge) {
		// More entries than the store's item holds (docs/security.md
		// "Size, pages and capacity"): fall back to the fallbacks, which
		// always fit, rather than leave the revocation unapplied.
		s.logger().Error("the deny list is too large to store; falling back to revoking every session before a time", "entries", len(entries), "err", err)
		lim.Budgets = make([]int, len(budgets))
		cur, saved, docs, err = s.save(ctx, entries, role, lim)
	}
	if err != nil {
		return nil, err
	}
	saved, err = s.apply(ctx, cur, saved, docs, role)
	if errors.Is(err, broker.ErrRolePolicyTooLarge) {
		// IAM counted more than a budget allowed: fall back now to one
		// cutoff for everyone on page 0, which always fits, rather than
		// leave the revocation unapplied.
		s.logger().Error("IAM refused a page of the deny list as too large; falling back to revoking every session before a time", "budgets", lim.Budgets, "err", err)
		lim.Budgets = make([]int, len(budgets))
		if cur, saved, docs, err = s.save(ctx, nil, role, lim); err == nil {
			role.known = make([]bool, len(budgets)) // what the failed run wrote is unknown: read the pages again
			saved, err = s.apply(ctx, cur, saved, docs, role)
		}
	}
	if err != nil {
		s.distrustPages(ctx, err)
		return nil, err
	}
	if err := s.announce(ctx, saved, entries); err != nil {
		return nil, err
	}
	return entries, nil
}

// distrustPages raises the stored list's generation after a run failed
// while putting pages, so that the next run reads every page instead of
// trusting page 0's generation: this run may have put a page after a
// concurrent run put a newer one and then failed before its page 0, and
// page 0 alone would not show it. If it cannot, the next run trusts page 0
// as before; the error says so.
func (s *Service) distrustPages(ctx context.Context, cause error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	var err error
	for range 3 {
		var cur List
		if cur, err = s.Store.LoadDenyList(ctx); err != nil {
			break
		}
		next := cur
		next.Version, next.Generation = cur.Version+1, cur.Generation+1
		if err = s.Store.SaveDenyList(ctx, cur.Version, next); err == nil || broker.KindOf(err) != broker.Conflict {
			break
		}
	}
	if err != nil {
		s.logger().Error("a run failed while putting the deny list's pages and could not mark them for a full read; a page it put may be older than page 0 says until the pages change", "cause", cause, "err", err)
	}
}

// roleView is what a run knows of the role's pages.
type roleView struct {
	pages    []string
	known    []bool
	enforced Enforced // of the pages known
	// renew extends the run's lease on the pages before each put.
	renew func(context.Context) error
}

// put puts page i, the run's lease renewed first.
func (s *Service) put(ctx context.Context, role *roleView, i int, doc string) error {
	if role.renew != nil {
		if err := role.renew(ctx); err != nil {
			return err
		}
	}
	return s.Role.Apply(ctx, i, doc)
}

func (r *roleView) all() bool { return !slices.Contains(r.known, false) }

// read reads the role's pages (all of them when none is given) into r.
func (s *Service) read(ctx context.Context, r *roleView, pages ...int) error {
	if len(pages) == 0 {
		for i := range r.pages {
			if !r.known[i] {
				pages = append(pages, i)
			}
		}
	}
	for _, i := range pages {
		doc, err := s.Role.Current(ctx, i)
		if err != nil {
			return err
		}
		r.pages[i], r.known[i] = doc, true
	}
	known := make([]string, len(r.pages)) // a page not read yet as empty
	for i, doc := range r.pages {
		if r.known[i] {
			known[i] = doc
		}
	}
	e, err := ParseEnforced(known)
	if err != nil {
		// Not ours (edited by hand?): replacing it could lift denies.
		return broker.Errorf(broker.Internal, "revoke", "%v: restore the policy the revoker wrote or remove it (docs/security.md \"If the deny-list item is lost\")", err)
	}
	r.enforced = e
	return nil
}

// save adds the entries to the stored list under optimistic concurrency:
// a concurrent revocation that wrote first makes this one read again and
// add its entries to that list, so none is ever lost. What the role's pages
// enforce and the list lost is put back first. A call that would change
// nothing writes nothing. It returns the list it loaded (as stored, or as
// put back), the list saved and its pages' documents.
func (s *Service) save(ctx context.Context, entries []Entry, role *roleView, lim Limits) (List, List, []string, error) {
	attempts := cmp.Or(s.Attempts, 8)
	for attempt := 1; ; attempt++ {
		cur, err := s.Store.LoadDenyList(ctx)
		corrupt := errors.Is(err, broker.ErrCorruptItem)
		if err != nil && !corrupt {
			return List{}, List{}, nil, err
		}
		prev := cur.Version
		if corrupt {
			cur = List{Version: prev}
		}
		now := s.now()
		recovered := false
		if corrupt || cur.Generation < role.enforced.Generation || (cur.empty() && role.pages[0] != "") {
			if !role.all() {
				if err := s.read(ctx, role); err != nil {
					return List{}, List{}, nil, err
				}
			}
			if gap := cur.Lost(role.enforced, now); !gap.Empty() || corrupt {
				if cur, err = s.restore(ctx, cur, gap, corrupt, err); err != nil {
					return List{}, List{}, nil, err
				}
				recovered = true
			}
			if cur.Generation < role.enforced.Generation {
				// Carry on from the role's generation, not the lost or
				// older item's: a backup restored later must still read as
				// older than the role.
				cur.Generation, recovered = role.enforced.Generation, true
			}
		}
		// An entry put back for a user's tag alone gives way to the user's
		// own entry, which spares the user's current cutoff: the latest
		// there is.
		for _, e := range entries {
			if k, ok := cur.RawOf(e.UserID); ok {
				c, err := s.Cutoffs.Cutoff(ctx, e.UserID)
				if err != nil {
					return List{}, List{}, nil, err
				}
				cur.Users = maps.Clone(cur.Users)
				raw := cur.Users[k]
				raw.Before, raw.Tag = latest(c, e.Before).UTC().Truncate(time.Millisecond), ""
				if own, listed := cur.Users[e.UserID]; listed {
					raw = own.widen(raw)
				}
				cur.Users[e.UserID] = raw
				delete(cur.Users, k)
				recovered = true
			}
		}
		next, docs, ch := Apply(cur, entries, now, lim)
		if !recovered && !corrupt && ch.Pruned == 0 && ch.Noted == 0 && len(ch.Pages) == 0 && sameList(cur, next) {
			return cur, cur, docs, nil // nothing to write
		}
		err = s.Store.SaveDenyList(ctx, prev, next)
		if err == nil {
			if ch.Covered > 0 {
				// Expected when a user's narrowings arrive out of order.
				s.logger().Info("narrowings whose previous cutoff the deny list did not know: their users' sessions issued before it are denied by time", "narrowings", ch.Covered)
			}
			if ch.FellBack {
				s.logger().Warn("deny list too large for the role's pages: every session issued before a time is revoked",
					"issuedBefore", next.All.Before, "budgets", lim.Budgets)
			}
			return cur, next, docs, nil
		}
		if broker.KindOf(err) != broker.Conflict || attempt >= attempts {
			return List{}, List{}, nil, err
		}
		if err := backoff.Sleep(ctx, backoff.Jitter(attempt, 20*time.Millisecond, time.Second)); err != nil {
			return List{}, List{}, nil, broker.Wrap(broker.Transient, "revoke", err)
		}
	}
}

// restore puts back into l what the role's pages enforce and l lost. A
// user whose entry spares another cutoff than the role's takes the user's
// current cutoff, read from the user's policy item.
func (s *Service) restore(ctx context.Context, l List, gap Gap, corrupt bool, loadErr error) (List, error) {
	cutoffs := map[string]time.Time{}
	for u := range gap.Differ {
		c, err := s.Cutoffs.Cutoff(ctx, u)
		if err != nil {
			return List{}, err
		}
		cutoffs[u] = c
	}
	restored := l.Restore(gap, cutoffs)
	if !corrupt && sameList(l, restored) {
		return l, nil // the list was newer than the role: nothing lost
	}
	s.count(MetricDenyListRecovered)
	s.logger().Error("the deny-list item was lost, unreadable or older than the role's policies: putting back what the role's policies still deny (docs/security.md \"If the deny-list item is lost\")",
		"unreadable", corrupt, "loadError", loadErr, "tagsRestored", len(gap.Revoked), "usersRestored", len(gap.Missing)+len(gap.Differ), "allRestored", !gap.All.Before.IsZero())
	return restored, nil
}

// sameList reports whether a and b hold the same entries and notices,
// whatever their versions.
func sameList(a, b List) bool {
	a.Version, b.Version = 0, 0
	return reflect.DeepEqual(normal(a), normal(b))
}

func normal(l List) List {
	if len(l.Users) == 0 {
		l.Users = nil
	}
	if len(l.Revoked) == 0 {
		l.Revoked = nil
	}
	if len(l.Unannounced) == 0 {
		l.Unannounced = nil
	}
	return l
}

// apply puts the saved list's pages on the role, the managed ones first
// and page 0, which carries the list's generation, last, so that a page 0
// at a generation says that every page of it is on the role. It writes only
// the pages that differ from the role's: known from the run's reads, or,
// when page 0 is at the generation of the list the run loaded, that list's
// pages. Then it makes sure that no newer list was saved meanwhile: two
// revokers that save v1 and v2 may put them in the other order, so whoever
// puts last reads the list again and puts the newest, until what it put is
// the newest. It returns the list now on the role.
func (s *Service) apply(ctx context.Context, loaded, saved List, docs []string, role *roleView) (List, error) {
	if role.enforced.Generation == loaded.Generation && loaded.Generation > 0 {
		for i, doc := range Render(loaded, len(docs)) {
			if !role.known[i] {
				role.pages[i], role.known[i] = doc, true
			}
		}
	} else if !role.all() {
		// Another run's pages may be half written (or this is the first
		// run): read what is there rather than rewrite every page, which
		// would cost a new version of each unchanged one.
		if err := s.read(ctx, role); err != nil {
			return List{}, err
		}
	}
	onRole := slices.Clone(role.pages)
	known := slices.Clone(role.known)
	for range cmp.Or(s.Attempts, 8) {
		order, ok := writeOrder(onRole, docs, known, s.now())
		if !ok {
			s.logger().Warn("entries move both ways between pages in one run: some are off the role until its last page is put", "pages", len(docs))
		}
		for pos, i := range order {
			doc := docs[i]
			if i == 0 && pos < len(order)-1 {
				// Page 0 goes before a managed page that gives up what it
				// takes: with the generation it has, so that until the
				// last page is put, no run takes page 0's generation as
				// every page's.
				early := saved
				early.Generation = pageGeneration(onRole[0])
				doc = Render(early, len(docs))[0]
			}
			if known[i] && compact(doc) == compact(onRole[i]) {
				continue
			}
			if err := s.put(ctx, role, i, doc); err != nil {
				return List{}, err
			}
			onRole[i], known[i] = doc, true
		}
		if compact(docs[0]) != compact(onRole[0]) {
			if err := s.put(ctx, role, 0, docs[0]); err != nil {
				return List{}, err
			}
			onRole[0] = docs[0]
		}
		cur, err := s.Store.LoadDenyList(ctx)
		if err != nil {
			return List{}, err
		}
		if cur.Version <= saved.Version {
			return saved, nil
		}
		saved, docs = cur, Render(cur, len(docs))
		// Another run saved meanwhile: the pages may hold what it put, or
		// what a failed run put late, rather than what this one last put.
		for i := range docs {
			doc, err := s.Role.Current(ctx, i)
			if err != nil {
				return List{}, err
			}
			onRole[i], known[i] = doc, true
		}
	}
	return List{}, broker.Errorf(broker.Transient, "revoke", "the deny list kept changing while it was applied")
}

func compact(doc string) string { return strings.Join(strings.Fields(doc), "") }

// writeOrder orders the pages that differ from the role's so that no entry
// still in force is off every page in between: a page that gives up an
// entry another page takes goes after that page, and one that gives up an
// entry that a fallback on page 0 now covers goes after page 0. Otherwise
// the managed pages go first and page 0, which carries the generation,
// last. ok is false when the moves form a cycle (entries moving both ways
// between pages at once); the default order is kept then.
func writeOrder(onRole, docs []string, known []bool, now time.Time) (order []int, ok bool) {
	var write []int
	for i := 1; i < len(docs); i++ {
		if !known[i] || compact(docs[i]) != compact(onRole[i]) {
			write = append(write, i)
		}
	}
	def := append(slices.Clone(write), 0)
	if len(write) == 0 {
		return def, true
	}
	gains, loses := map[int]map[string]bool{}, map[int]map[string]bool{}
	for _, i := range def {
		var before map[string]time.Time
		if known[i] {
			var ok bool
			if before, ok = pageEntries(onRole[i]); !ok {
				return def, true // not ours: read() refuses it before here
			}
		}
		after, ok := pageEntries(docs[i])
		if !ok {
			return def, true
		}
		gains[i], loses[i] = map[string]bool{}, map[string]bool{}
		for k, until := range after {
			if _, had := before[k]; !had && until.After(now) {
				gains[i][k] = true
			}
		}
		for k, until := range before {
			if _, has := after[k]; !has && until.After(now) {
				loses[i][k] = true
			}
		}
	}
	fallback := slices.ContainsFunc(slices.Collect(maps.Keys(gains[0])), func(k string) bool {
		return strings.HasPrefix(k, "all ") || strings.HasPrefix(k, "resource ")
	})
	after := map[int]map[int]bool{} // after[i][j]: i goes after j
	for _, i := range def {
		after[i] = map[int]bool{}
		for k := range loses[i] {
			taken := false
			for _, j := range def {
				if j != i && gains[j][k] {
					after[i][j], taken = true, true
				}
			}
			if !taken && fallback && i != 0 {
				after[i][0] = true
			}
		}
	}
	for len(order) < len(def) {
		next := -1
		for _, i := range def { // managed pages in order, page 0 last
			if !slices.Contains(order, i) && !slices.ContainsFunc(slices.Collect(maps.Keys(after[i])), func(j int) bool { return !slices.Contains(order, j) }) {
				next = i
				break
			}
		}
		if next < 0 {
			return def, false
		}
		order = append(order, next)
	}
	return order, true
}

// pageEntries is what one page denies, each entry keyed, with how long it
// stays; false when the page is not one the revoker wrote.
func pageEntries(doc string) (map[string]time.Time, bool) {
	e, err := ParseEnforced([]string{doc})
	if err != nil {
		return nil, false
	}
	m := map[string]time.Time{}
	for _, r := range e.Revoked {
		m["tag "+r.Tag] = r.Until
	}
	for _, p := range e.Pairs {
		m["user "+p.User+" "+p.Cutoff] = p.Until
	}
	// A fallback's key holds its time: widened, it is a new entry.
	if !e.All.Before.IsZero() {
		m["all "+e.All.Before.Format(time.RFC3339)] = e.All.Until
	}
	for r, c := range e.Resource {
		m["resource "+r+" "+c.Before.Format(time.RFC3339)] = c.Until
	}
	return m, true
}

// pageGeneration is the generation a page 0 carries (0 for none).
func pageGeneration(doc string) int64 {
	e, err := ParseEnforced([]string{doc})
	if err != nil {
		return 0
	}
	return e.Generation
}
