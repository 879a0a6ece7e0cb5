// Package client fetches temporary S3 credentials from a credbroker
// credential endpoint (docs/contract.md "Credential endpoint") and hands them to the
// AWS SDK for Go v2, one aws.CredentialsProvider per bucket or key.
//
// A Client asks GET {apiUrl}/auths/resources with a Cognito access token
// from a TokenSource (package client/cognitoauth provides one), keeps the
// answer until a margin before its earliest expiry, and routes each bucket
// or key to the credential set whose grants cover it: a user whose grants
// do not fit one session policy gets several sets, each reaching only the
// grants it lists.
//
//   - Caching: an answer is reused until Margin (5 minutes) before its
//     earliest expiry, but never for less than half its remaining lifetime,
//     so that an answer that arrives nearly expired is not refetched in a
//     loop. Concurrent callers share one fetch. An answer with a new
//     policyVersion drops every answer of the old version (the ?project=
//     answers included). A Cache keeps answers between processes. Reload
//     asks again past the cache, for a target granted since.
//   - Errors: a 401 refreshes the token once and retries once; a 403 is an
//     AccessError naming the target (errors.Is ErrNoAccess); a 503 (or
//     API Gateway's 429) is retried after its Retry-After (without one,
//     after a jittered backoff that doubles per retry), at most
//     MaxRetries times and MaxRetryWait in all; a 400 is ErrBadRequest with
//     the server's message. When a refetch fails for a transient reason, an
//     answer that has not expired yet is served meanwhile.
//   - Revocation: after S3 refuses a set (AccessDenied), Invalidate, or
//     Provider.RetryOnAccessDenied as an API option of the S3 client, drops
//     the answer; the refetch sends Cache-Control: no-cache so that the
//     endpoint mints fresh credentials instead of answering from its cache.
//     Answers say which revocations apply (revokedBefore, allRevokedBefore,
//     each set's issued): once one answer tells of a revocation, no held
//     answer it denies is served again, whatever its project, and the Cache
//     carries that to other processes. Options.Revalidate asks the endpoint
//     again after a while, for a client that cannot see S3's refusals.
package client

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/credbroker/credbroker/internal/backoff"
)

// Path is the credential endpoint's path under the API URL.
const Path = "/auths/resources"

// Defaults of Options.
const (
	DefaultMargin                = 5 * time.Minute
	DefaultMaxRetries            = 3
	DefaultMaxRetryWait          = 30 * time.Second
	DefaultDeniedRefetchInterval = 30 * time.Second
)

// TokenSource supplies the Cognito access token the endpoint expects.
type TokenSource interface {
	// Token returns a current access token.
	Token(ctx context.Context) (string, error)
	// Refresh returns a new access token: the endpoint refused the last
	// one (401).
	Refresh(ctx context.Context) (string, error)
}

// StaticToken is a TokenSource of one token, for scripts and tests; its
// Refresh returns the same token.
type StaticToken string

func (t StaticToken) Token(context.Context) (string, error)   { return string(t), nil }
func (t StaticToken) Refresh(context.Context) (string, error) { return string(t), nil }

// Options configure a Client. The zero value of each field is its default.
type Options struct {
	// HTTPClient sends the requests; default a client with a 30 s timeout.
	HTTPClient *http.Client
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Sleep waits before a retry, or returns ctx's error; default a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Margin before the earliest expiry at which an answer is refetched
	// (never more than half the lifetime it had when it arrived).
	Margin time.Duration
	// MaxRetries of a 503 or 429; negative means none.
	MaxRetries int
	// Backoff is the wait before retry n (1, 2, ...) of an answer without
	// Retry-After (API Gateway's 429 when the stage throttles); default
	// full jitter under a ceiling of 1 s doubling to 8 s, so that the
	// clients of a throttled login wave do not all come back at once.
	Backoff func(retry int) time.Duration
	// MaxRetryWait caps the time waited for retries of one fetch: a
	// Retry-After beyond it ends the retries at once.
	MaxRetryWait time.Duration
	// DeniedRefetchInterval is the least time between two refetches forced
	// by S3 refusing a set (RetryOnAccessDenied): a denial that a fresh set
	// does not cure is a real one, and must not cost a mint per request.
	// Up to MaxDeniedRefetches are allowed within it, DeniedRecheck apart.
	DeniedRefetchInterval time.Duration
	// Revalidate, when positive, is how long an answer is served before
	// the endpoint is asked again (it answers from its own cache when
	// nothing changed), so that a client that cannot see S3's refusals
	// (a credential_process) still learns of revocations. An answer that
	// cannot be revalidated for a transient reason is served meanwhile.
	Revalidate time.Duration
	// Cache keeps answers between processes; nil keeps them in memory only.
	// Use one cache per user and endpoint.
	Cache Cache
	// UserAgent, when set, is sent as User-Agent.
	UserAgent string
	// Logger receives warnings (an unusable cache, an answer served while
	// the endpoint is unavailable); default none. Nothing secret is logged.
	Logger *slog.Logger
}

// Client fetches, caches and routes credentials. It is safe for concurrent
// use.
type Client struct {
	endpoint string // API URL + Path
	tokens   TokenSource
	o        Options

	mu      sync.Mutex
	entries map[string]*entry // by project, "" for all grants
	version string            // the newest policyVersion
	gen     uint64            // counts changes of version
	loaded  bool              // o.Cache was read
	cutoffs cutoffs           // the revocations learned of

	persistMu sync.Mutex // orders writes of o.Cache
}

// entry is the cached answer of one scope.
type entry struct {
	answer    *Answer
	fetchedAt time.Time
	// checkedAt is when a revalidation last found the answer unchanged.
	checkedAt time.Time
	staleAt   time.Time
	// noCache: the next fetch asks the endpoint for fresh credentials.
	noCache bool
	// forced are when S3's refusals forced a refetch, within the last
	// DeniedRefetchInterval.
	forced []time.Time
	call   *call // the fetch in flight
}

// freshLocked reports whether e's answer may be served without a fetch.
func (c *Client) freshLocked(e *entry, now time.Time) bool {
	return e.answer != nil && !e.noCache && now.Before(e.staleAt) && !c.cutoffs.denies(e.answer) &&
		(c.o.Revalidate <= 0 || now.Before(latest(e.fetchedAt, e.checkedAt).Add(c.o.Revalidate)))
}

// call is one fetch that concurrent callers share. It outlives a caller
// that gives up while others wait, and stops when the last one does.
type call struct {
	done    chan struct{}
	noCache bool
	// revalidate: the held answer is good but for Options.Revalidate.
	revalidate bool
	answer     *Answer
	err        error
	cancel     context.CancelFunc
	waiters    int  // guarded by Client.mu
	abandoned  bool // every waiter gave up; guarded by Client.mu
}

// New returns a Client for the API at apiURL (the stack's apiUrl, e.g.
// https://abc.execute-api.eu-west-1.amazonaws.com). Plain http is accepted
// only for a loopback host (the local stack): the request carries the
// user's token and the answer carries credentials.
func New(apiURL string, tokens TokenSource, optFns ...func(*Options)) (*Client, error) {
	if tokens == nil {
		return nil, errors.New("credbroker: a TokenSource is required")
	}
	u, err := url.Parse(apiURL)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("credbroker: API URL %q is not an absolute URL without query", apiURL)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && loopback(u.Hostname()):
	default:
		return nil, fmt.Errorf("credbroker: API URL %q must use https (http only for a loopback address)", apiURL)
	}
	var o Options
	for _, f := range optFns {
		f(&o)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	if o.Backoff == nil {
		o.Backoff = func(retry int) time.Duration { return backoff.Jitter(retry, time.Second, 8*time.Second) }
	}
	o.Margin = cmp.Or(o.Margin, DefaultMargin)
	switch {
	case o.MaxRetries == 0:
		o.MaxRetries = DefaultMaxRetries
	case o.MaxRetries < 0:
		o.MaxRetries = 0
	}
	o.MaxRetryWait = cmp.Or(o.MaxRetryWait, DefaultMaxRetryWait)
	o.DeniedRefetchInterval = cmp.Or(o.DeniedRefetchInterval, DefaultDeniedRefetchInterval)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Client{
		endpoint: strings.TrimRight(u.String(), "/") + Path,
		tokens:   tokens,
		o:        o,
		entries:  map[string]*entry{},
	}, nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Answer returns the answer for all the user's grants (project "") or for
// one project's, from the cache while it is fresh. The caller may keep and
// change the result: it is a copy.
func (c *Client) Answer(ctx context.Context, project string) (*Answer, error) {
	a, err := c.get(ctx, project, cached)
	if err != nil {
		return nil, err
	}
	return a.clone(), nil
}

// Refresh fetches the answer now, asking the endpoint for freshly minted
// credentials (Cache-Control: no-cache), and caches it.
func (c *Client) Refresh(ctx context.Context, project string) (*Answer, error) {
	a, err := c.get(ctx, project, minted)
	if err != nil {
		return nil, err
	}
	return a.clone(), nil
}

// Reload fetches the answer now, past this Client's cache but letting the
// endpoint answer from its own (which mints only when the user's grants
// changed or its sets are half spent), and caches it. Call it when a
// target that the cached answer does not cover may have been granted
// since it was fetched.
func (c *Client) Reload(ctx context.Context, project string) (*Answer, error) {
	a, err := c.get(ctx, project, reloaded)
	if err != nil {
		return nil, err
	}
	return a.clone(), nil
}

// Invalidate drops every cached answer; the next fetch of each asks the
// endpoint for freshly minted credentials. Call it when S3 refuses
// credentials that should work (AccessDenied after a revocation).
func (c *Client) Invalidate() {
	c.mu.Lock()
	for _, e := range c.entries {
		e.answer, e.noCache = nil, true
	}
	snap := c.snapshotLocked()
	c.mu.Unlock()
	c.persist(snap)
}

// Credentials returns the credentials of the set that reaches t.
func (c *Client) Credentials(ctx context.Context, t Target) (aws.Credentials, error) {
	a, err := c.get(ctx, t.Project, cached)
	if err != nil {
		if errors.Is(err, ErrNoAccess) {
			return aws.Credentials{}, &AccessError{Target: t, Err: err}
		}
		return aws.Credentials{}, err
	}
	set, err := a.SetFor(t)
	if err != nil {
		return aws.Credentials{}, err
	}
	return set.Credentials(), nil
}

// projectID is the endpoint's rule for project ids (docs/contract.md "Source records").
var projectID = regexp.MustCompile(`^[A-Za-z0-9._:@=+-]{1,128}$`)

// fetchMode says where get may take an answer from.
type fetchMode int

const (
	cached   fetchMode = iota // the cache while it is fresh
	reloaded                  // the endpoint, which may answer from its cache
	minted                    // the endpoint, freshly minted (no-cache)
)

func (c *Client) get(ctx context.Context, project string, mode fetchMode) (*Answer, error) {
	if project != "" && !projectID.MatchString(project) {
		return nil, fmt.Errorf("%w: invalid project id %q: 1-128 characters of A-Z a-z 0-9 . _ : @ = + -", ErrBadRequest, project)
	}
	for {
		c.mu.Lock()
		if !c.loaded {
			c.loaded = true
			c.loadLocked(ctx)
		}
		e := c.entries[project]
		if e == nil {
			e = &entry{}
			c.entries[project] = e
		}
		if mode == cached && c.freshLocked(e, c.o.Now()) {
			a := e.answer
			c.mu.Unlock()
			return a, nil
		}
		// A fetch for fresh credentials is wanted by Refresh, and after
		// Invalidate or a refusal by S3.
		fresh := mode == minted || e.noCache
		cl := e.call
		if cl == nil || cl.abandoned {
			fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
			now := c.o.Now()
			cl = &call{done: make(chan struct{}), noCache: fresh, cancel: cancel,
				revalidate: mode == cached && !fresh && e.answer != nil && now.Before(e.staleAt) && !c.cutoffs.denies(e.answer)}
			e.call = cl
			go c.run(fctx, project, e, cl, c.gen)
		}
		cl.waiters++
		c.mu.Unlock()
		select {
		case <-cl.done:
		case <-ctx.Done():
			c.mu.Lock()
			if cl.waiters--; cl.waiters == 0 {
				cl.abandoned = true
				cl.cancel()
			}
			c.mu.Unlock()
			return nil, ctx.Err()
		}
		if fresh && !cl.noCache {
			continue // waited out a plain fetch; this caller wants a fresh mint
		}
		return cl.answer, cl.err
	}
}

// run performs one shared fetch and publishes its outcome.
func (c *Client) run(ctx context.Context, project string, e *entry, cl *call, gen uint64) {
	defer cl.cancel()
	defer close(cl.done)
	a, err := c.fetch(ctx, project, cl.noCache)
	c.mu.Lock()
	if err == nil && a.PolicyVersion != c.version && c.gen != gen {
		// Another answer set the version while this one was in flight;
		// which of the two is newer is unknown. One more fetch, started
		// after that answer arrived, decides.
		c.mu.Unlock()
		a, err = c.fetch(ctx, project, cl.noCache)
		c.mu.Lock()
	}
	now := c.o.Now()
	if e.call == cl {
		e.call = nil
	}
	switch {
	case err == nil && e.noCache && !cl.noCache:
		// Invalidated while this plain fetch was in flight: its answer
		// may hold what the invalidation is about. Its callers asked
		// before and get it; nothing is cached, and the next caller
		// fetches fresh credentials.
		cl.answer = a
		c.mu.Unlock()
		return
	case err == nil && cl.revalidate && e.answer != nil && a.PolicyVersion == e.answer.PolicyVersion && !c.cutoffs.denies(e.answer):
		// Nothing changed that concerns the held answer: it stays, and
		// whoever holds its keys keeps them.
		c.dropDeniedLocked()
		e.checkedAt = now
		cl.answer = e.answer
	case err == nil:
		// fetch learned the answer's cutoffs already.
		c.dropDeniedLocked()
		if a.PolicyVersion != c.version {
			// The user's grants changed: nothing of the old version
			// may be served any more.
			for _, other := range c.entries {
				if other != e {
					other.answer = nil
				}
			}
			c.version = a.PolicyVersion
			c.gen++
		}
		e.answer, e.fetchedAt, e.checkedAt, e.noCache = a, now, time.Time{}, false
		e.staleAt = a.staleAt(now, c.o.Margin)
		cl.answer = a
	case transient(err) && e.answer != nil && !e.noCache && now.Before(e.answer.Expiration) && !c.cutoffs.denies(e.answer):
		// The endpoint is down but the held answer has not expired:
		// serve it, and try again in a while rather than on every call.
		e.staleAt = now.Add(min(time.Minute, e.answer.Expiration.Sub(now)/2))
		cl.answer = e.answer
		c.o.Logger.WarnContext(ctx, "credbroker: credential endpoint unavailable; serving the held credentials until they expire",
			"project", project, "expiration", e.answer.Expiration, "err", err)
		c.mu.Unlock()
		return
	default:
		cl.err = err
		c.mu.Unlock()
		return
	}
	snap := c.snapshotLocked()
	c.mu.Unlock()
	// Before close(done): a command that exits right after its answer
	// must not lose the write.
	c.persist(snap)
}

// staleAt is when an answer that arrived at now must be refetched: margin
// before its credentials expire (at most half their life), or when one of
// its grants ends, whichever comes first. At a grant's end AWS already
// denies it, and only a new answer says so; an end already passed (the
// endpoint's clock ahead of ours) is left to the endpoint, or every call
// would refetch.
func (a *Answer) staleAt(now time.Time, margin time.Duration) time.Time {
	t := a.Expiration.Add(-min(margin, a.Expiration.Sub(now)/2))
	if a.grantsEnd.After(now) && a.grantsEnd.Before(t) {
		return a.grantsEnd
	}
	return t
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
