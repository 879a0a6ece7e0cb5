package credentials_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/testkit/fakeclock"

	"github.com/aws/aws-lambda-go/events"

	"github.com/credbroker/credbroker/internal/auditqueue"
	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/credentials"
	"github.com/credbroker/credbroker/internal/policy"
)

// fakes are in-memory stand-ins of every dependency of the request path,
// counting the calls each makes; the token is the user id.
type fakes struct {
	reads, assumes, emits atomic.Int64
	items                 map[string]broker.UserPolicy
	// issue, when set, replaces the default AssumeRole.
	issue func(ctx context.Context, req broker.IssueRequest) (broker.Credentials, error)
	// audit, when set, replaces the default PutEvents.
	audit func(ctx context.Context, evs ...broker.AuditEvent) error
	mu    sync.Mutex
	sent  []broker.AuditEvent
}

func newFakes(t *testing.T, byUser map[string]map[string][]broker.Place) *fakes {
	t.Helper()
	f := &fakes{items: map[string]broker.UserPolicy{}}
	for user, byProject := range byUser {
		res, err := policy.Compiler{}.Compile(byProject)
		if err != nil {
			t.Fatal(err)
		}
		f.items[user] = broker.UserPolicy{UserID: user, Version: res.Version, Grants: res.Grants, Sets: res.Sets, ByProject: res.ByProject}
	}
	return f
}

func (f *fakes) service(edit ...func(*credentials.Service)) *credentials.Service {
	s := &credentials.Service{
		Verifier: verifierFunc(func(_ context.Context, token string) (broker.Principal, error) {
			return broker.Principal{UserID: token}, nil
		}),
		Policies: policyReaderFunc(func(_ context.Context, user string) (broker.UserPolicy, error) {
			f.reads.Add(1)
			p, ok := f.items[user]
			if !ok {
				return broker.UserPolicy{}, broker.Errorf(broker.NotFound, "get", "none")
			}
			return p, nil
		}),
		Issuer: issuerFunc(func(ctx context.Context, req broker.IssueRequest) (broker.Credentials, error) {
			n := f.assumes.Add(1)
			if f.issue != nil {
				return f.issue(ctx, req)
			}
			return broker.Credentials{AccessKeyID: fmt.Sprintf("ASIA%04d", n), SecretAccessKey: "s", SessionToken: "t",
				Expiration: time.Now().Add(req.Duration)}, nil
		}),
		Auditor: broker.AuditorFunc(func(ctx context.Context, evs ...broker.AuditEvent) error {
			f.emits.Add(1)
			if f.audit != nil {
				if err := f.audit(ctx, evs...); err != nil {
					return err
				}
			}
			f.mu.Lock()
			f.sent = append(f.sent, evs...)
			f.mu.Unlock()
			return nil
		}),
		Cache:  credentials.NewCache(64, nil),
		Logger: discard(),
	}
	for _, e := range edit {
		e(s)
	}
	return s
}

func (f *fakes) issued() []broker.CredentialsIssuedDetail {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []broker.CredentialsIssuedDetail
	for _, e := range f.sent {
		if d, ok := e.Detail.(broker.CredentialsIssuedDetail); ok {
			out = append(out, d)
		}
	}
	return out
}

// ask sends one request for user through Handle.
func ask(t *testing.T, s *credentials.Service, user, query string) (int, credentials.Answer) {
	t.Helper()
	ev := events.APIGatewayV2HTTPRequest{RawPath: credentials.Path, RawQueryString: query, Headers: map[string]string{"authorization": "Bearer " + user}}
	ev.RequestContext.HTTP.Method = "GET"
	resp, err := s.Handle(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	var a credentials.Answer
	if resp.StatusCode == 200 {
		if err := json.Unmarshal([]byte(resp.Body), &a); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, a
}

func manyBuckets(n int) map[string][]broker.Place {
	var places []broker.Place
	for i := range n {
		places = append(places, broker.Place{Bucket: fmt.Sprintf("bucket-with-a-long-name-%04d", i), Access: broker.Write})
	}
	return map[string][]broker.Place{"p": places}
}

// A miss mints every set, in one PutEvents; the answer after it is served
// from the cache: one read, no AssumeRole, no PutEvents.
func TestAHitIsOneReadAndNothingElse(t *testing.T) {
	f := newFakes(t, map[string]map[string][]broker.Place{"alice": manyBuckets(60)})
	svc := f.service()
	status, first := ask(t, svc, "alice", "")
	sets := len(first.CredentialSets)
	if status != 200 || sets < 3 {
		t.Fatalf("first answer: status %d with %d sets, want 200 with at least 3", status, sets)
	}
	if r, a, e := f.reads.Load(), f.assumes.Load(), f.emits.Load(); r != 1 || a != int64(sets) || e != 1 {
		t.Fatalf("miss: %d reads, %d AssumeRole, %d PutEvents; want 1, %d, 1", r, a, e, sets)
	}
	if d := f.issued(); len(d) != 1 || len(d[0].AccessKeyIDs) != sets || d[0].FromCache {
		t.Fatalf("the miss was audited as %+v", d)
	}
	f.reads.Store(0)
	f.assumes.Store(0)
	f.emits.Store(0)
	for range 5 {
		if status, a := ask(t, svc, "alice", ""); status != 200 || a.CredentialSets[0].AccessKeyID != first.CredentialSets[0].AccessKeyID {
			t.Fatalf("hit: status %d, keys %v", status, a.CredentialSets)
		}
	}
	if r, a, e := f.reads.Load(), f.assumes.Load(), f.emits.Load(); r != 5 || a != 0 || e != 0 {
		t.Errorf("5 hits: %d reads, %d AssumeRole, %d PutEvents; want 5, 0, 0", r, a, e)
	}
}

// Concurrent misses for one answer make one AssumeRole per set and one
// PutEvents between them; every request gets the same, audited keys.
func TestConcurrentMissesForOneAnswerShareOneMint(t *testing.T) {
	const clients = 16
	f := newFakes(t, map[string]map[string][]broker.Place{"alice": {"p": {{Bucket: "lake", Access: broker.Read}}}})
	// The first AssumeRole is held until every request has read the
	// policy item, so that all of them miss the cache at the same time.
	allRead := make(chan struct{})
	var reads atomic.Int64
	svc := f.service(func(s *credentials.Service) {
		inner := s.Policies
		s.Policies = policyReaderFunc(func(ctx context.Context, user string) (broker.UserPolicy, error) {
			p, err := inner.GetPolicy(ctx, user)
			if reads.Add(1) == clients {
				close(allRead)
			}
			return p, err
		})
	})
	f.issue = func(_ context.Context, req broker.IssueRequest) (broker.Credentials, error) {
		<-allRead
		return broker.Credentials{AccessKeyID: "ASIASHARED", SecretAccessKey: "s", SessionToken: "t", Expiration: time.Now().Add(req.Duration)}, nil
	}
	var wg sync.WaitGroup
	keys := make([]string, clients)
	for i := range clients {
		wg.Go(func() {
			status, a := ask(t, svc, "alice", "")
			if status != 200 {
				t.Errorf("request %d: status %d", i, status)
				return
			}
			keys[i] = a.CredentialSets[0].AccessKeyID
		})
	}
	wg.Wait()
	if a, e := f.assumes.Load(), f.emits.Load(); a != 1 || e != 1 {
		t.Errorf("%d concurrent misses: %d AssumeRole and %d PutEvents calls, want 1 and 1", clients, a, e)
	}
	for i, k := range keys {
		if k != "ASIASHARED" {
			t.Errorf("request %d got key %q", i, k)
		}
	}
}

// In fail-closed mode, a mint the bus does not record is withheld from
// every request that waited for it, and cached for none.
func TestFailClosedWithholdsAMergedMintTheBusRefused(t *testing.T) {
	f := newFakes(t, map[string]map[string][]broker.Place{"alice": {"p": {{Bucket: "lake", Access: broker.Read}}}})
	f.audit = func(context.Context, ...broker.AuditEvent) error {
		return broker.Errorf(broker.Transient, "emit", "bus down")
	}
	cache := credentials.NewCache(8, nil)
	svc := f.service(func(s *credentials.Service) { s.Cache = cache })
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if status, _ := ask(t, svc, "alice", ""); status != 503 {
				t.Errorf("status %d with the bus down in fail-closed mode, want 503", status)
			}
		})
	}
	wg.Wait()
	if cache.Len() != 0 {
		t.Errorf("%d withheld sets cached", cache.Len())
	}
	f.audit = nil
	if status, _ := ask(t, svc, "alice", ""); status != 200 {
		t.Errorf("bus back: status %d", status)
	}
}

// In best-effort mode the answer does not wait for the bus: it comes back
// while PutEvents is still blocked, and the event is delivered after.
func TestBestEffortAnswersWithoutWaitingAndStillDelivers(t *testing.T) {
	f := newFakes(t, map[string]map[string][]broker.Place{"alice": {"p": {{Bucket: "lake", Access: broker.Read}}}})
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	f.audit = func(context.Context, ...broker.AuditEvent) error {
		once.Do(func() { close(entered) })
		<-release
		return nil
	}
	var queue *auditqueue.Queue
	svc := f.service(func(s *credentials.Service) {
		queue = &auditqueue.Queue{Next: s.Auditor, Logger: discard()}
		s.AuditMode, s.Background = credentials.BestEffort, queue
	})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { queue.Run(ctx, time.Minute); close(done) }()

	status, a := ask(t, svc, "alice", "")
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	<-entered // the event is on its way, the answer already back
	if n := len(f.issued()); n != 0 {
		t.Fatalf("%d events delivered before the bus answered", n)
	}
	close(release)
	stop()
	<-done
	d := f.issued()
	if len(d) != 1 || d[0].AccessKeyIDs[0] != a.CredentialSets[0].AccessKeyID {
		t.Errorf("delivered %+v, want the answer's issuance", d)
	}
}

// When STS refuses a set as too large once packed, the answer is split;
// the next request for the same policy version goes straight to the split
// sets without paying the refused call again.
func TestARememberedSplitIsUsedByTheNextRequest(t *testing.T) {
	f := newFakes(t, map[string]map[string][]broker.Place{"alice": manyBuckets(12)})
	var refused atomic.Int64
	f.issue = func(_ context.Context, req broker.IssueRequest) (broker.Credentials, error) {
		if len(req.Policy) > policy.MaxPolicyBytes/2 {
			refused.Add(1)
			return broker.Credentials{}, broker.Wrap(broker.Invalid, "assume role", broker.ErrPolicyTooLarge)
		}
		return broker.Credentials{AccessKeyID: "ASIA", SecretAccessKey: "s", SessionToken: "t", Expiration: time.Now().Add(req.Duration)}, nil
	}
	svc := f.service(func(s *credentials.Service) { s.Cache = nil }) // every request mints
	status, first := ask(t, svc, "alice", "")
	if status != 200 || len(first.CredentialSets) < 2 || refused.Load() != 1 {
		t.Fatalf("first request: status %d, %d sets, %d refused; want 200, at least 2, 1", status, len(first.CredentialSets), refused.Load())
	}
	status, second := ask(t, svc, "alice", "")
	if status != 200 || len(second.CredentialSets) != len(first.CredentialSets) {
		t.Fatalf("second request: status %d, %d sets", status, len(second.CredentialSets))
	}
	if n := refused.Load(); n != 1 {
		t.Errorf("the second request paid %d more refused calls", n-1)
	}
}

// stsAt mints credentials stamped by clk, as STS stamps them with its own.
func stsAt(clk *fakeclock.Clock) func(context.Context, broker.IssueRequest) (broker.Credentials, error) {
	var n atomic.Int64
	return func(_ context.Context, req broker.IssueRequest) (broker.Credentials, error) {
		return broker.Credentials{AccessKeyID: fmt.Sprintf("ASIASTS%04d", n.Add(1)), SecretAccessKey: "s", SessionToken: "t",
			Expiration: clk.Now().Add(req.Duration)}, nil
	}
}

// A narrowing's cutoff is no reason to wait: the endpoint mints at once,
// and tags every session with the cutoff of the item it read, which the
// deny of that cutoff spares; a user never revoked gets the tag of no
// cutoff, which the user's first revocation denies.
func TestSessionsCarryTheTagOfTheCutoffTheyWereMintedUnder(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cutoff time.Duration // from now; 0 for none
	}{
		{name: "cutoff ahead: tagged, not delayed", cutoff: 3 * time.Second},
		{name: "cutoff past: tagged", cutoff: -time.Hour},
		{name: "never revoked: tagged with no cutoff"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := fakeclock.New(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
			f := newFakes(t, map[string]map[string][]broker.Place{"alice": {"p": {{Bucket: "lake", Access: broker.Read}}}})
			item := f.items["alice"]
			if tc.cutoff != 0 {
				item.RevokedBefore = clk.Now().Add(tc.cutoff)
			}
			f.items["alice"] = item
			var tags []string
			var mu sync.Mutex
			issue := stsAt(clk)
			f.issue = func(ctx context.Context, req broker.IssueRequest) (broker.Credentials, error) {
				mu.Lock()
				tags = append(tags, req.CutoffTag)
				mu.Unlock()
				return issue(ctx, req)
			}
			svc := f.service(func(s *credentials.Service) { s.Now = clk.Now })

			if status, _ := ask(t, svc, "alice", ""); status != 200 {
				t.Fatalf("status %d", status)
			}
			want := broker.CutoffTag("alice", item.RevokedBefore)
			if len(tags) != 1 || tags[0] != want {
				t.Errorf("AssumeRole tags %q, want [%q]", tags, want)
			}
			if r := f.reads.Load(); r != 1 {
				t.Errorf("%d reads, want 1", r)
			}
		})
	}
}

// An operator's revocation moves the cutoff without changing the policy
// version: the cached credentials, minted under the earlier cutoff (whose
// tag the new deny does not spare), are no longer served.
func TestCachedCredentialsMintedUnderAnotherCutoffAreNotServed(t *testing.T) {
	clk := fakeclock.New(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	f := newFakes(t, map[string]map[string][]broker.Place{"alice": {"p": {{Bucket: "lake", Access: broker.Read}}}})
	f.issue = stsAt(clk)
	svc := f.service(func(s *credentials.Service) {
		s.Now = clk.Now
		s.Cache = credentials.NewCache(8, clk.Now)
	})
	_, first := ask(t, svc, "alice", "")
	clk.Sleep(context.Background(), time.Minute)
	item := f.items["alice"]
	item.RevokedBefore = broker.RevokeBefore(clk.Now())
	f.items["alice"] = item
	_, second := ask(t, svc, "alice", "")
	if f.assumes.Load() != 2 || second.CredentialSets[0].AccessKeyID == first.CredentialSets[0].AccessKeyID {
		t.Errorf("%d AssumeRole calls; the cached set issued before the cutoff was served again", f.assumes.Load())
	}
}

// Cache-Control: no-cache (a client whose credentials S3 refused) gets
// credentials minted now, unless the cached ones are only seconds old.
func TestNoCacheMintsAfreshUnlessTheCachedSetIsSecondsOld(t *testing.T) {
	clk := fakeclock.New(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	f := newFakes(t, map[string]map[string][]broker.Place{"alice": {"p": {{Bucket: "lake", Access: broker.Read}}}})
	f.issue = stsAt(clk)
	svc := f.service(func(s *credentials.Service) { s.Now, s.Cache = clk.Now, credentials.NewCache(8, clk.Now) })
	askNoCache := func() string {
		ev := events.APIGatewayV2HTTPRequest{RawPath: credentials.Path,
			Headers: map[string]string{"authorization": "Bearer alice", "cache-control": "no-cache"}}
		ev.RequestContext.HTTP.Method = "GET"
		resp, _ := svc.Handle(context.Background(), ev)
		var a credentials.Answer
		_ = json.Unmarshal([]byte(resp.Body), &a)
		return a.CredentialSets[0].AccessKeyID
	}
	_, first := ask(t, svc, "alice", "")
	if got := askNoCache(); got != first.CredentialSets[0].AccessKeyID || f.assumes.Load() != 1 {
		t.Errorf("no-cache a second after the mint: key %s, %d AssumeRole; want the cached key", got, f.assumes.Load())
	}
	clk.Sleep(context.Background(), time.Minute)
	if got := askNoCache(); got == first.CredentialSets[0].AccessKeyID || f.assumes.Load() != 2 {
		t.Errorf("no-cache a minute after the mint: key %s, %d AssumeRole; want a fresh mint", got, f.assumes.Load())
	}
	if _, plain := ask(t, svc, "alice", ""); f.assumes.Load() != 2 || plain.CredentialSets[0].AccessKeyID == first.CredentialSets[0].AccessKeyID {
		t.Error("a plain request after the fresh mint was not served the fresh set from the cache")
	}
}

// Credentials must be issued within the issue window of the read they come
// from, or a revocation committed after the read would not cover them.
func TestAnAssumeRoleOutlastingTheIssueWindowHandsNothingOut(t *testing.T) {
	f := newFakes(t, map[string]map[string][]broker.Place{"alice": {"p": {{Bucket: "lake", Access: broker.Read}}}})
	f.issue = func(ctx context.Context, req broker.IssueRequest) (broker.Credentials, error) {
		<-ctx.Done() // STS answers only after the window has closed
		return broker.Credentials{}, broker.Wrap(broker.Transient, "assume role", ctx.Err())
	}
	svc := f.service(func(s *credentials.Service) { s.RequestTimeout = time.Minute })
	start := time.Now()
	status, _ := ask(t, svc, "alice", "")
	if status != 503 {
		t.Fatalf("status %d, want 503", status)
	}
	if waited := time.Since(start); waited > credentials.DefaultRequestTimeout {
		t.Errorf("waited %v for STS: the issue window (%v) did not bound the call", waited, broker.IssueWindow)
	}
}

// Credentials issued within the issue window and then recorded are an
// answer, however long the record took within its own deadline: the
// request waits for the shared mint as long as the mint may take, instead
// of answering 503 for credentials that the bus has recorded and that
// the next request gets from the cache.
func TestARecordFinishingAfterTheIssueWindowStillAnswers(t *testing.T) {
	f := newFakes(t, map[string]map[string][]broker.Place{"alice": {"p": {{Bucket: "lake", Access: broker.Read}}}})
	const window = 100 * time.Millisecond
	f.audit = func(ctx context.Context, _ ...broker.AuditEvent) error {
		// A slow bus: the record lands after the window, within its own
		// deadline (AuditTimeout, 1.5 s by default).
		select {
		case <-time.After(2 * window):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	svc := f.service()
	credentials.SetIssueWindow(svc, window)
	status, a := ask(t, svc, "alice", "")
	if status != 200 {
		t.Fatalf("status %d, want 200: the credentials were issued in the window and recorded", status)
	}
	if got := f.issued(); len(got) != 1 || len(a.CredentialSets) != 1 {
		t.Errorf("%d CredentialsIssued events and %d sets, want 1 and 1", len(got), len(a.CredentialSets))
	}
}
