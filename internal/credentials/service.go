// Package credentials is the credential endpoint, GET /auths/resources
// (CONTRACT.md section 3), as an API Gateway HTTP API (payload 2.0) handler.
//
// A request costs one token verification (keys cached per process), one
// strongly consistent GetItem of the user's precompiled policy item, and one
// AssumeRole per credential set unless the set is in the warm container's
// cache. A rejected token reaches neither DynamoDB nor STS.
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
	"golang.org/x/sync/errgroup"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/emf"
	"github.com/credbroker/credbroker/internal/policy"
)

// Path is the one route of the endpoint.
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
	// RetryAfterSeconds is the Retry-After of every 503.
	RetryAfterSeconds = 2
	// maxParallelIssue bounds concurrent AssumeRole calls of one request.
	maxParallelIssue = 4
)

// AuditMode says what happens when the bus does not accept a
// CredentialsIssued event.
type AuditMode int

const (
	// FailClosed answers 503 and hands out nothing when the issuance could
	// not be audited. It is the default because the audit trail is a
	// product promise to the security team, as with Vault's audit devices:
	// credentials nobody can account for must not exist outside the
	// function. STS's own trail (CloudTrail's AssumeRole record with the
	// user's SourceIdentity) remains as a second record either way.
	FailClosed AuditMode = iota
	// BestEffort logs the audit failure and answers 200: availability over
	// the trail, leaving CloudTrail as the only record.
	BestEffort
)

func (m AuditMode) String() string {
	if m == BestEffort {
		return "best-effort"
	}
	return "fail-closed"
}

// ParseAuditMode reads "fail-closed" or "best-effort".
func ParseAuditMode(s string) (AuditMode, error) {
	switch s {
	case "fail-closed":
		return FailClosed, nil
	case "best-effort":
		return BestEffort, nil
	}
	return 0, broker.Errorf(broker.Invalid, "audit mode", "audit mode %q is not fail-closed or best-effort", s)
}

// Service answers GET /auths/resources. Verifier, Policies, Issuer and
// Auditor are required; every other field has a default. Fields must not
// change once Handle is in use.
type Service struct {
	Verifier broker.TokenVerifier
	Policies broker.PolicyReader
	Issuer   broker.CredentialIssuer
	Auditor  broker.Auditor
	// Compiler compiles one project's places for ?project= answers; its
	// Partition must be the base role's.
	Compiler policy.Compiler
	// Cache of issued sets; nil disables it.
	Cache     *Cache
	AuditMode AuditMode
	// SessionDuration of issued credentials, 15 minutes to 1 hour (default
	// 15 minutes: a leaked set is useful for less time, at the price of
	// clients coming back more often).
	SessionDuration time.Duration
	// RequestTimeout bounds verification, the policy read and AssumeRole,
	// SDK retries included (default 8s, under the function's 10s timeout).
	RequestTimeout time.Duration
	// AuditTimeout bounds each audit emission, which runs after the
	// request's own deadline (default 1.5s).
	AuditTimeout time.Duration
	Logger       *slog.Logger
	Metrics      *emf.Writer
	// Now is the clock of cache freshness and audit times (default time.Now).
	Now func() time.Time
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
				s.deny(ctx, log, rq, o)
			}()
		}
	}()

	o := s.serve(ctx, ev, rq, log)
	if o.err != nil {
		s.deny(ctx, log, rq, o)
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
	sets      int
	cacheHits int
	compiled  bool
	compile   time.Duration
}

// serve runs the request path in contract order: request shape, token,
// one policy read, then credentials.
func (s *Service) serve(ctx context.Context, ev events.APIGatewayV2HTTPRequest, rq requestMeta, log *slog.Logger) *outcome {
	o := &outcome{}
	project, err := parseRequest(ev)
	if err != nil {
		o.err = err
		return o
	}
	o.project = project
	token, presented, err := bearerToken(ev.Headers)
	o.presented = presented
	if err != nil {
		o.err = err
		return o
	}

	rctx, cancel := context.WithTimeout(ctx, cmp.Or(s.RequestTimeout, DefaultRequestTimeout))
	defer cancel()

	principal, err := s.Verifier.Verify(rctx, token)
	if err != nil {
		o.err = dependencyError("verify token", err, broker.Unauthenticated)
		return o
	}
	o.userID = principal.UserID

	pol, err := s.Policies.GetPolicy(rctx, principal.UserID)
	switch {
	case broker.KindOf(err) == broker.NotFound:
		o.err = &broker.Error{Kind: broker.NoAccess, Op: "get policy", Message: "no access granted", Err: err}
		return o
	case err != nil:
		o.err = dependencyError("get policy", err)
		return o
	case pol.Empty():
		o.err = broker.Errorf(broker.NoAccess, "get policy", "no access granted")
		return o
	case pol.UserID != principal.UserID:
		// The item names its user; one that names another (or none) was
		// written by something other than the projector, and is not
		// trusted with anyone's credentials.
		o.err = broker.Errorf(broker.Internal, "get policy", "policy item of %q returned for %q", pol.UserID, principal.UserID)
		return o
	}

	grants, sets, err := s.plan(ctx, log, pol, project, o)
	if err != nil {
		o.err = err
		return o
	}
	if err := checkSets(grants, sets); err != nil {
		o.err = err
		return o
	}

	cacheAs := project
	issued, err := s.issue(rctx, principal.UserID, pol.Version, cacheAs, sets, o)
	if errors.Is(err, broker.ErrPolicyTooLarge) {
		log.WarnContext(ctx, "STS refused a packed session policy as too large; splitting the sets", "userId", principal.UserID, "sets", len(sets))
		cacheAs = project + splitCacheSuffix
		if grants, sets, err = s.split(grants); err == nil {
			issued, err = s.issue(rctx, principal.UserID, pol.Version, cacheAs, sets, o)
		}
	}
	if err != nil {
		o.err = err
		return o
	}

	body, detail, err := buildAnswer(principal, pol.Version, project, grants, sets, issued, rq)
	if err != nil {
		o.err = err
		return o
	}
	if err := s.emit(ctx, broker.DetailCredentialsIssued, detail); err != nil {
		if s.AuditMode == FailClosed {
			o.err = &broker.Error{Kind: broker.Transient, Op: "audit issuance", Message: "audit trail unavailable", Err: err}
			log.ErrorContext(ctx, "credentials withheld: CredentialsIssued not accepted by the audit bus",
				"userId", principal.UserID, "err", err)
			return o
		}
		log.ErrorContext(ctx, "CredentialsIssued not accepted by the audit bus; answering anyway (best-effort audit mode)",
			"userId", principal.UserID, "accessKeyIds", detail.AccessKeyIDs, "err", err)
	}
	// Only credentials that were handed out (and audited, in fail-closed
	// mode) are cached: a set withheld for want of an audit record is
	// dropped, never served later.
	for i, is := range issued {
		if !is.fromCache {
			s.Cache.Put(CacheKey{UserID: principal.UserID, PolicyVersion: pol.Version, Project: cacheAs, Set: i}, is.creds)
		}
	}
	o.body = body
	return o
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

// plan returns the grants and sets of the answer: the precompiled ones of
// the item, or for ?project= the project's places compiled now.
func (s *Service) plan(ctx context.Context, log *slog.Logger, pol broker.UserPolicy, project string, o *outcome) ([]broker.Grant, []broker.PolicySet, error) {
	if project == "" {
		return pol.Grants, pol.Sets, nil
	}
	places, ok := pol.ByProject[project]
	if !ok || len(places) == 0 {
		return nil, nil, broker.Errorf(broker.NoAccess, "plan", "no access to project %q", project)
	}
	start := time.Now()
	res, err := s.Compiler.Compile(map[string][]broker.Place{project: places})
	o.compile, o.compiled = time.Since(start), true
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

// splitCacheSuffix keeps the cache entries of split sets apart from those of
// the item's own sets, whose indexes they would otherwise share.
const splitCacheSuffix = "\x00split"

// split compiles the same grants into sets of at most half the usual size:
// the answer when STS refused a set as too large once packed. It is pure
// CPU; the grants stay the same, only their grouping changes.
func (s *Service) split(grants []broker.Grant) ([]broker.Grant, []broker.PolicySet, error) {
	byProject := map[string][]broker.Place{}
	for _, g := range grants {
		for _, p := range g.Projects {
			byProject[p] = append(byProject[p], g.Place())
		}
	}
	c := s.Compiler
	c.MaxBytes = policy.MaxPolicyBytes / 2
	res, err := c.Compile(byProject)
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

// issuedSet is the credentials of one set and where they came from.
type issuedSet struct {
	creds     broker.Credentials
	fromCache bool
}

// issue returns credentials for every set, from the cache or AssumeRole.
// Any failure fails the whole request: an answer never lacks a set.
func (s *Service) issue(ctx context.Context, userID, version, project string, sets []broker.PolicySet, o *outcome) ([]issuedSet, error) {
	out := make([]issuedSet, len(sets))
	duration := cmp.Or(s.SessionDuration, DefaultSessionDuration)
	if duration < MinSessionDuration || duration > MaxSessionDuration {
		return nil, broker.Errorf(broker.Internal, "issue", "session duration %v out of range", duration)
	}
	name := SessionName(userID)
	one := func(ctx context.Context, i int) (err error) {
		defer func() {
			// A panic on another goroutine would end the process, not
			// reach Handle's recover.
			if r := recover(); r != nil {
				err = broker.Errorf(broker.Internal, "issue", "panic: %v\n%s", r, debug.Stack())
			}
		}()
		key := CacheKey{UserID: userID, PolicyVersion: version, Project: project, Set: i}
		if c, ok := s.Cache.Get(key); ok {
			out[i] = issuedSet{creds: c, fromCache: true}
			return nil
		}
		c, err := s.Issuer.Issue(ctx, broker.IssueRequest{UserID: userID, SessionName: name, Policy: sets[i].Policy, Duration: duration})
		if err != nil {
			return dependencyError("assume role", err)
		}
		out[i] = issuedSet{creds: c}
		return nil
	}
	if len(sets) == 1 {
		if err := one(ctx, 0); err != nil {
			return nil, err
		}
	} else {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(maxParallelIssue)
		for i := range sets {
			g.Go(func() error { return one(gctx, i) })
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
	}
	o.sets = len(sets)
	for _, is := range out {
		if is.fromCache {
			o.cacheHits++
		}
	}
	return out, nil
}

// emit sends one audit event on its own deadline, derived from the
// invocation's context rather than the request's, so a slow dependency
// does not also starve the audit record.
func (s *Service) emit(ctx context.Context, detailType string, detail any) error {
	actx, cancel := context.WithTimeout(ctx, cmp.Or(s.AuditTimeout, DefaultAuditTimeout))
	defer cancel()
	return s.Auditor.Emit(actx, broker.AuditEvent{
		Source:     broker.SourceCredentials,
		DetailType: detailType,
		Time:       s.now(),
		Detail:     detail,
	})
}

// deny records a refused request; like every denial event it is best
// effort in both audit modes.
func (s *Service) deny(ctx context.Context, log *slog.Logger, rq requestMeta, o *outcome) {
	status, code := statusOf(broker.KindOf(o.err))
	d := broker.CredentialsDeniedDetail{
		SchemaVersion: broker.AuditSchemaVersion,
		RequestID:     rq.id,
		Reason:        code,
		Status:        status,
		UserID:        o.userID,
		Project:       o.project,
		Message:       safeMessage(o.err),
		SourceIP:      rq.sourceIP,
		UserAgent:     rq.userAgent,
	}
	if err := s.emit(ctx, broker.DetailCredentialsDenied, d); err != nil {
		log.WarnContext(ctx, "CredentialsDenied not accepted by the audit bus", "reason", code, "err", err)
	}
}

func (s *Service) logOutcome(ctx context.Context, log *slog.Logger, o *outcome, elapsed time.Duration) {
	attrs := []any{"latencyMs", float64(elapsed.Microseconds()) / 1000}
	if o.userID != "" {
		attrs = append(attrs, "userId", o.userID)
	}
	if o.project != "" {
		attrs = append(attrs, "project", o.project)
	}
	if o.compiled {
		attrs = append(attrs, "compileUs", o.compile.Microseconds())
	}
	if o.err == nil {
		log.InfoContext(ctx, "credentials issued", append(attrs, "status", 200, "sets", o.sets, "cacheHits", o.cacheHits)...)
		return
	}
	kind := broker.KindOf(o.err)
	status, code := statusOf(kind)
	attrs = append(attrs, "status", status, "error", code, "kind", kind.String(), "err", o.err.Error())
	switch kind {
	case broker.Internal:
		log.ErrorContext(ctx, "credential request failed", attrs...)
	case broker.Transient:
		log.WarnContext(ctx, "credential request failed", attrs...)
	default:
		log.InfoContext(ctx, "credential request denied", attrs...)
	}
}

func (s *Service) metric(ctx context.Context, log *slog.Logger, rq requestMeta, o *outcome, elapsed time.Duration) {
	if s.Metrics == nil {
		return
	}
	issued, denied := 1.0, 0.0
	status, code := 200, ""
	if o.err != nil {
		issued, denied = 0, 1
		status, code = statusOf(broker.KindOf(o.err))
	}
	metrics := []emf.Metric{
		{Name: "Issued", Unit: emf.Count, Value: issued},
		{Name: "Denied", Unit: emf.Count, Value: denied},
		{Name: "Latency", Unit: emf.Milliseconds, Value: float64(elapsed.Microseconds()) / 1000},
		{Name: "CacheHit", Unit: emf.Count, Value: float64(o.cacheHits)},
		{Name: "CacheMiss", Unit: emf.Count, Value: float64(o.sets - o.cacheHits)},
	}
	if o.compiled {
		metrics = append(metrics, emf.Metric{Name: "ProjectCompile", Unit: emf.Milliseconds, Value: float64(o.compile.Microseconds()) / 1000})
	}
	props := map[string]any{"requestId": rq.id, "status": status}
	if code != "" {
		props["error"] = code
	}
	if err := s.Metrics.Write(map[string]string{"Function": "credentials"}, props, metrics...); err != nil {
		log.DebugContext(ctx, "metric line not written", "err", err)
	}
}
