// Package credentials is the credential endpoint, GET /auths/resources
// (docs/contract.md "Credential endpoint"), as an API Gateway HTTP API (payload 2.0)
// handler.
//
// An answer from the warm instance's cache costs one token verification
// (keys cached per process) and one strongly consistent GetItem of the
// user's precompiled policy item, nothing else (beside it, at most every 2 s
// per warm instance and in parallel, a read of the deny list's fallback
// cutoff: Fallback). An answer that mints adds
// one AssumeRole per missing credential set, the sets in parallel, and one
// PutEvents. A rejected token reaches neither DynamoDB nor STS.
package credentials

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"golang.org/x/sync/singleflight"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/emf"
	"github.com/credbroker/credbroker/internal/policy"
)

// Path is the one route of the credentials.
const Path = "/auths/resources"

// Defaults and limits of Service.
const (
	DefaultSessionDuration = 15 * time.Minute
	MinSessionDuration     = 15 * time.Minute
	// MaxSessionDuration is one hour because AssumeRole from a Lambda
	// function's role is role chaining, which AWS caps at one hour.
	MaxSessionDuration    = time.Hour
	DefaultRequestTimeout = 8 * time.Second
	DefaultAuditTimeout   = 1500 * time.Millisecond
	// RetryAfterSeconds is the Retry-After of a 503 whose cause may pass
	// in moments (a dependency failing or throttling).
	RetryAfterSeconds = 2
	// InternalRetryAfterSeconds is the Retry-After of a 503 that retrying
	// soon cannot fix (a corrupt policy item, a bug): the item is repaired
	// by the user's next change or a rebuild, and meanwhile clients should
	// not hammer the credentials.
	InternalRetryAfterSeconds = 30
	// maxParallelIssue bounds concurrent AssumeRole calls of one request.
	maxParallelIssue = 4
)

// Service answers GET /auths/resources. Verifier, Policies, Issuer and
// Auditor are required; every other field has a default. Fields must not
// change once Handle is in use.
type Service struct {
	Verifier broker.TokenVerifier
	Policies broker.PolicyReader
	Issuer   broker.CredentialIssuer
	// Auditor sends the events an answer waits for: CredentialsIssued in
	// fail-closed mode.
	Auditor broker.Auditor
	// Background takes the events no answer waits for — every denial, and
	// CredentialsIssued in best-effort mode — and sends them after the
	// answer (an auditqueue.Queue). nil sends them through Auditor before
	// answering.
	Background broker.Auditor
	// Compiler compiles one project's places for ?project= answers; its
	// Partition must be the base role's.
	Compiler policy.Compiler
	// Cache of issued sets; nil disables it.
	Cache *Cache
	// Fallback is the deny list's fallback cutoff; nil knows of none.
	Fallback  *Fallback
	AuditMode AuditMode
	// SessionDuration of issued credentials, 15 minutes to 1 hour (default
	// 15 minutes: a leaked set is useful for less time, at the price of
	// clients coming back more often).
	SessionDuration time.Duration
	// RequestTimeout bounds verification, the policy read and AssumeRole,
	// SDK retries included (default 8s, under the function's 10s timeout).
	RequestTimeout time.Duration
	// AuditTimeout bounds each audit emission an answer waits for, which
	// runs after the request's own deadline (default 1.5s).
	AuditTimeout time.Duration
	Logger       *slog.Logger
	Metrics      *emf.Writer
	// Now is the clock of cache freshness and audit times (default
	// time.Now).
	Now func() time.Time

	// flights merges concurrent mints of one answer into one; splits
	// remembers the answers STS refused as too large once packed.
	flights singleflight.Group
	splits  splitMemory
	// issueWindow replaces broker.IssueWindow in the moto tier's tests
	// only (export_test.go): moto on a loaded machine is no real-time
	// system. It is unexported because the revoker's cutoffs assume
	// broker.IssueWindow; a longer window in production would let a
	// credential outlive a revocation.
	issueWindow time.Duration
}

// Validate reports every missing dependency and out-of-range setting.
func (s *Service) Validate() error {
	var problems []string
	if s.Verifier == nil {
		problems = append(problems, "Verifier is required")
	}
	if s.Policies == nil {
		problems = append(problems, "Policies is required")
	}
	if s.Issuer == nil {
		problems = append(problems, "Issuer is required")
	}
	if s.Auditor == nil {
		problems = append(problems, "Auditor is required")
	}
	if d := s.SessionDuration; d != 0 && (d < MinSessionDuration || d > MaxSessionDuration || d%time.Second != 0) {
		problems = append(problems, fmt.Sprintf("SessionDuration %v is outside %v..%v in whole seconds", d, MinSessionDuration, MaxSessionDuration))
	}
	if s.RequestTimeout < 0 || s.AuditTimeout < 0 {
		problems = append(problems, "RequestTimeout and AuditTimeout must not be negative")
	}
	if s.AuditMode != FailClosed && s.AuditMode != BestEffort {
		problems = append(problems, fmt.Sprintf("unknown AuditMode %d", s.AuditMode))
	}
	if len(problems) > 0 {
		return broker.Errorf(broker.Internal, "credentials service", "%s", strings.Join(problems, "; "))
	}
	return nil
}

// logger puts the request id of the context on every line.
func (s *Service) logger() *slog.Logger {
	return slog.New(LogHandler(cmp.Or(s.Logger, slog.Default()).Handler()))
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) sessionDuration() time.Duration {
	return cmp.Or(s.SessionDuration, DefaultSessionDuration)
}

// Handle serves one API Gateway HTTP API event. It never returns an error
// and never panics: every failure is an HTTP answer.
func (s *Service) Handle(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (resp events.APIGatewayV2HTTPResponse, _ error) {
	start := time.Now()
	rq := newRequestMeta(ev)
	ctx = context.WithValue(ctx, requestIDKey{}, rq.id)
	log := s.logger()
	defer func() {
		if r := recover(); r != nil {
			log.ErrorContext(ctx, "panic while serving a credential request", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			o := &outcome{err: broker.Errorf(broker.Internal, "handle", "panic: %v", r)}
			resp = o.response()
			s.metric(ctx, log, rq, o, time.Since(start))
			func() {
				defer func() { _ = recover() }() // the auditor may be what panicked
				s.deny(ctx, rq, o)
			}()
		}
	}()

	o := s.serve(ctx, ev, rq, log)
	if o.err != nil {
		s.deny(ctx, rq, o)
	}
	s.logOutcome(ctx, log, o, time.Since(start))
	s.metric(ctx, log, rq, o, time.Since(start))
	return o.response(), nil
}

// outcome is what serving one request came to.
type outcome struct {
	err       error // nil on success
	presented bool  // a bearer token was presented (for the 401 challenge)
	userID    string
	project   string
	body      []byte // the 200 body
	keyIDs    []string
	minted    int // sets this request's AssumeRole calls minted
	compiled  bool
	compile   time.Duration
}

// serve runs the request path in contract order: request shape, token,
// one policy read, then credentials.
func (s *Service) serve(ctx context.Context, ev events.APIGatewayV2HTTPRequest, rq requestMeta, log *slog.Logger) *outcome {
	o := &outcome{}
	fail := func(err error) *outcome { o.err = err; return o }
	project, err := parseRequest(ev)
	if err != nil {
		return fail(err)
	}
	o.project = project
	token, presented, err := bearerToken(ev.Headers)
	o.presented = presented
	if err != nil {
		return fail(err)
	}

	rctx, cancel := context.WithTimeout(ctx, cmp.Or(s.RequestTimeout, DefaultRequestTimeout))
	defer cancel()

	principal, err := s.Verifier.Verify(rctx, token)
	if err != nil {
		return fail(dependencyError("verify token", err, broker.Unauthenticated))
	}
	o.userID = principal.UserID

	// The fallback's cutoff comes from a value refreshed every few
	// seconds, read (when due) in parallel with the policy.
	fallback := make(chan time.Time, 1)
	if s.Fallback == nil {
		fallback <- time.Time{}
	} else {
		go func() { fallback <- s.Fallback.Get(rctx) }()
	}
	pol, readAt, err := s.readPolicy(rctx, principal.UserID)
	denyBefore := ceilSecond(<-fallback)
	if err != nil {
		return fail(err)
	}
	if wait := denyBefore.Sub(s.now()); wait > 0 {
		// IAM would deny whatever is minted now: say when to come back
		// rather than hand out credentials known to be dead.
		return fail(waitForCutoff("issue", denyBefore, wait))
	}

	answer := answerKey{userID: principal.UserID, version: pol.Version, project: project,
		cutoff: pol.RevokedBefore, fresh: noCache(ev.Headers), denyBefore: denyBefore}
	var grants []broker.Grant
	var sets []broker.PolicySet
	if project != "" {
		start := time.Now()
		grants, sets, err = s.projectSets(ctx, log, pol, project)
		o.compile, o.compiled = time.Since(start), true
	} else {
		grants, sets = pol.Grants, pol.Sets
	}
	if err == nil && s.splits.has(answer.policy()) {
		// STS refused these sets before: go straight to the smaller ones.
		answer.split = true
		grants, sets, err = s.split(grants, pol.Expires)
	}
	if err == nil {
		err = checkSets(grants, sets)
	}
	if err != nil {
		return fail(err)
	}

	record := func(actx context.Context, issued []issuedSet) error {
		return s.recordIssuance(actx, log, principal, rq, answer, grants, sets, issued)
	}
	// Credentials must be issued within broker.IssueWindow of the read, so
	// that a revocation committed after the read covers them.
	issueBy := readAt.Add(s.window())
	issued, err := s.obtain(ctx, rctx, issueBy, answer, sets, record)
	if errors.Is(err, broker.ErrPolicyTooLarge) && !answer.split {
		log.WarnContext(ctx, "STS refused a packed session policy as too large; splitting the sets, and remembering it for this policy version",
			"userId", principal.UserID, "sets", len(sets))
		s.splits.add(answer.policy())
		answer.split = true
		if grants, sets, err = s.split(grants, pol.Expires); err == nil {
			issued, err = s.obtain(ctx, rctx, issueBy, answer, sets, record)
		}
	}
	if err != nil {
		return fail(err)
	}

	body, keyIDs, err := buildAnswer(principal, pol.Version, grants, sets, issued, answer, s.sessionDuration())
	if err != nil {
		return fail(err)
	}
	o.body, o.keyIDs = body, keyIDs
	for _, is := range issued {
		if is.minted {
			o.minted++
		}
	}
	return o
}

// window is the time allowed from the policy read to the issued
// credentials: broker.IssueWindow outside tests.
func (s *Service) window() time.Duration {
	if s.issueWindow > 0 {
		return s.issueWindow
	}
	return broker.IssueWindow
}

// readPolicy reads the user's item and returns it with the time the read
// started (the machine's monotonic clock: it bounds a deadline). A cutoff in
// the item needs no waiting: the sessions minted from it carry its tag,
// which its deny spares (docs/security.md "How").
func (s *Service) readPolicy(ctx context.Context, userID string) (broker.UserPolicy, time.Time, error) {
	readAt := time.Now()
	pol, err := s.Policies.GetPolicy(ctx, userID)
	switch {
	case broker.KindOf(err) == broker.NotFound:
		return pol, readAt, &broker.Error{Kind: broker.NoAccess, Op: "get policy", Message: "no access granted", Err: err}
	case err != nil:
		return pol, readAt, dependencyError("get policy", err)
	case pol.Empty():
		return pol, readAt, broker.Errorf(broker.NoAccess, "get policy", "no access granted")
	case pol.UserID != userID:
		// The item names its user; one that names another (or none)
		// was written by something other than the projector, and is
		// not trusted with anyone's credentials.
		return pol, readAt, broker.Errorf(broker.Internal, "get policy", "policy item of %q returned for %q", pol.UserID, userID)
	}
	return pol, readAt, nil
}

// noCache reports whether the request asks for credentials fresher than
// the cache's (Cache-Control: no-cache), as a client does after S3 refused
// its cached credentials.
func noCache(headers map[string]string) bool {
	for k, v := range headers {
		if strings.EqualFold(k, "Cache-Control") {
			for d := range strings.SplitSeq(v, ",") {
				if strings.EqualFold(strings.TrimSpace(d), "no-cache") {
					return true
				}
			}
		}
	}
	return false
}

// dependencyError keeps the kinds a dependency may legitimately report
// (Transient, plus any listed) and makes every other kind Internal, so that,
// say, a DynamoDB validation error is never answered as the caller's 400.
func dependencyError(op string, err error, keep ...broker.Kind) error {
	k := broker.KindOf(err)
	if k == broker.Transient || slices.Contains(keep, k) {
		return err
	}
	return broker.Wrap(broker.Internal, op, err)
}

// projectSets compiles the sets of a ?project= answer from the item's
// per-project places: pure CPU, a few microseconds.
func (s *Service) projectSets(ctx context.Context, log *slog.Logger, pol broker.UserPolicy, project string) ([]broker.Grant, []broker.PolicySet, error) {
	places, ok := pol.ByProject[project]
	if !ok || len(places) == 0 {
		return nil, nil, broker.Errorf(broker.NoAccess, "plan", "no access to project %q", project)
	}
	// The project's expiry bounds its grants here as in the item's sets.
	res, err := s.Compiler.CompileBounded(map[string][]broker.Place{project: places}, map[string]time.Time{project: pol.Expires[project]})
	if err != nil {
		return nil, nil, broker.Wrap(broker.Internal, "compile project policy", err)
	}
	if len(res.Rejected) > 0 {
		// The projector validated these places; a rejection here is a bug
		// upstream. The rejected places grant nothing, as everywhere.
		log.ErrorContext(ctx, "compiler rejected places of a stored policy item", "project", project,
			"rejected", len(res.Rejected), "reason", res.Rejected[0].Reason)
	}
	if len(res.Grants) == 0 {
		return nil, nil, broker.Errorf(broker.NoAccess, "plan", "no access to project %q", project)
	}
	return res.Grants, res.Sets, nil
}

// split compiles the same grants into sets of at most half the usual size:
// the answer when STS refused a set as too large once packed. It is pure
// CPU; the grants (their expiries, from the projects' expires, included)
// stay the same, only their grouping changes.
func (s *Service) split(grants []broker.Grant, expires map[string]time.Time) ([]broker.Grant, []broker.PolicySet, error) {
	byProject := map[string][]broker.Place{}
	for _, g := range grants {
		for _, p := range g.Projects {
			byProject[p] = append(byProject[p], g.Place())
		}
	}
	c := s.Compiler
	c.MaxBytes = policy.MaxPolicyBytes / 2
	res, err := c.CompileBounded(byProject, expires)
	if err != nil {
		return nil, nil, broker.Wrap(broker.Internal, "split policy sets", err)
	}
	if len(res.Grants) != len(grants) || len(res.Rejected) > 0 {
		return nil, nil, broker.Errorf(broker.Internal, "split policy sets", "recompiling %d grants gave %d (%d rejected)", len(grants), len(res.Grants), len(res.Rejected))
	}
	return res.Grants, res.Sets, nil
}

// checkSets refuses an item whose sets do not cover its grants exactly once
// each, or carry an empty policy: answering from it could hand out
// credentials that do not match the grants listed.
func checkSets(grants []broker.Grant, sets []broker.PolicySet) error {
	const op = "check policy sets"
	if len(sets) == 0 {
		return broker.Errorf(broker.Internal, op, "%d grants but no policy set", len(grants))
	}
	seen := make([]bool, len(grants))
	for si, set := range sets {
		if strings.TrimSpace(set.Policy) == "" || len(set.Grants) == 0 {
			return broker.Errorf(broker.Internal, op, "set %d has no policy or no grants", si)
		}
		for _, gi := range set.Grants {
			if gi < 0 || gi >= len(grants) || seen[gi] {
				return broker.Errorf(broker.Internal, op, "set %d lists grant %d, out of range or already in a set", si, gi)
			}
			seen[gi] = true
		}
	}
	if i := slices.Index(seen, false); i >= 0 {
		return broker.Errorf(broker.Internal, op, "grant %d is in no set", i)
	}
	return nil
}
