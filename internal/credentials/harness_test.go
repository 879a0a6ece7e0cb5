package credentials_test

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/credentials"
	"github.com/credbroker/credbroker/internal/jwtauth"
	"github.com/credbroker/credbroker/internal/policy"
	"github.com/credbroker/credbroker/internal/testkit/jwttest"
)

// env is the endpoint's side of the world: the policy table, STS and the
// audit bus. In the fast tier they are in memory (env_mem_test.go); with
// the integration build tag they are moto's, built from template.yaml
// (env_moto_test.go). getPolicy, issue and emits count the calls that
// reach them through the wrappers of reader, issuer and auditor.
type env struct {
	store   broker.PolicyStore
	issuer  broker.CredentialIssuer
	auditor broker.Auditor
	tier    tier

	getPolicy atomic.Int64
	issue     atomic.Int64
	emits     atomic.Int64
}

// seed writes the user's policy item as the projector would: compiled from
// the places each project grants, under a claim.
func (e *env) seed(t testing.TB, userID string, byProject map[string][]broker.Place) broker.UserPolicy {
	t.Helper()
	res, err := policy.Compiler{}.Compile(byProject)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rejected) > 0 {
		t.Fatalf("seed: compiler rejected %+v", res.Rejected)
	}
	p := broker.UserPolicy{UserID: userID, Version: res.Version, Grants: res.Grants, Sets: res.Sets, ByProject: res.ByProject, UpdatedAt: time.Now().UTC()}
	e.commit(t, p)
	return p
}

func (e *env) commit(t testing.TB, p broker.UserPolicy) {
	t.Helper()
	ctx := context.Background()
	claim, err := e.store.Claim(ctx, p.UserID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.Commit(ctx, claim, p, nil); err != nil {
		t.Fatal(err)
	}
}

// events returns the details of the next n audit events the bus received,
// waiting for them.
func (e *env) events(t testing.TB, n int) []json.RawMessage {
	t.Helper()
	return e.tier.events(t, n)
}

// policies is the real store behind a counting wrapper.
func (e *env) policies() broker.PolicyReader {
	return policyReaderFunc(func(ctx context.Context, userID string) (broker.UserPolicy, error) {
		e.getPolicy.Add(1)
		return e.store.GetPolicy(ctx, userID)
	})
}

// issuing is the real STS issuer behind a counting wrapper.
func (e *env) issuing() broker.CredentialIssuer {
	return issuerFunc(func(ctx context.Context, req broker.IssueRequest) (broker.Credentials, error) {
		e.issue.Add(1)
		return e.issuer.Issue(ctx, req)
	})
}

// auditing is the real audit emitter behind a counting wrapper: each Emit
// is one PutEvents call.
func (e *env) auditing() broker.Auditor {
	return broker.AuditorFunc(func(ctx context.Context, evs ...broker.AuditEvent) error {
		e.emits.Add(1)
		return e.auditor.Emit(ctx, evs...)
	})
}

func (e *env) resetCounts() {
	e.getPolicy.Store(0)
	e.issue.Store(0)
	e.emits.Store(0)
}

// service returns a Service over the moto-backed adapters (behind the
// counters) with verifier v; edit changes fields before use.
func (e *env) service(v broker.TokenVerifier, edit ...func(*credentials.Service)) *credentials.Service {
	s := &credentials.Service{
		Verifier: v,
		Policies: e.policies(),
		Issuer:   e.issuing(),
		Auditor:  e.auditing(),
		Logger:   discard(),
		// Generous: moto under a loaded CI machine with -race is slow, and
		// tests about deadlines set their own.
		RequestTimeout: 30 * time.Second,
		AuditTimeout:   30 * time.Second,
	}
	if w := e.tier.issueWindow(); w > 0 {
		credentials.SetIssueWindow(s, w)
	}
	for _, f := range edit {
		f(s)
	}
	return s
}

// policyReaderFunc and issuerFunc adapt functions to the broker interfaces,
// so tests wrap real adapters or write faults inline.
type policyReaderFunc func(ctx context.Context, userID string) (broker.UserPolicy, error)

func (f policyReaderFunc) GetPolicy(ctx context.Context, userID string) (broker.UserPolicy, error) {
	return f(ctx, userID)
}

type issuerFunc func(ctx context.Context, req broker.IssueRequest) (broker.Credentials, error)

func (f issuerFunc) Issue(ctx context.Context, req broker.IssueRequest) (broker.Credentials, error) {
	return f(ctx, req)
}

type verifierFunc func(ctx context.Context, token string) (broker.Principal, error)

func (f verifierFunc) Verify(ctx context.Context, token string) (broker.Principal, error) {
	return f(ctx, token)
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// localPool is a Cognito-like issuer whose signing key the test holds, so
// it can mint any token (attacks included). Its key set is served locally.
type localPool struct {
	key      *rsa.PrivateKey
	jwks     *jwttest.JWKSServer
	issuer   string
	clientID string
	verifier *jwtauth.Verifier
}

func newLocalPool(t testing.TB) *localPool {
	t.Helper()
	key := jwttest.NewKey(t)
	p := &localPool{
		key:      key,
		jwks:     jwttest.NewJWKSServer(t, jwttest.JWKS(t, jwttest.PublicJWK(jwttest.Kid, &key.PublicKey))),
		issuer:   "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Local",
		clientID: "local-web-client",
	}
	var err error
	p.verifier, err = jwtauth.New(jwtauth.Config{
		Issuer:     p.issuer,
		JWKSURL:    p.jwks.URL,
		ClientIDs:  []string{p.clientID},
		HTTPClient: p.jwks.Client(),
		Logger:     discard(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *localPool) claims(sub string) map[string]any {
	return jwttest.Claims(p.issuer, p.clientID, sub, time.Now())
}

func (p *localPool) token(t testing.TB, sub string) string {
	t.Helper()
	return jwttest.Mint(t, p.key, jwttest.Kid, nil, p.claims(sub))
}

// result is an HTTP answer as a client sees it.
type result struct {
	status int
	header http.Header
	body   []byte
}

func (r result) answer(t testing.TB) credentials.Answer {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200; body %s", r.status, r.body)
	}
	var a credentials.Answer
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatalf("200 body is not an answer: %v\n%s", err, r.body)
	}
	return a
}

// errorBody decodes an error answer strictly: exactly the two fields.
func (r result) errorBody(t testing.TB) credentials.ErrorBody {
	t.Helper()
	var fields map[string]string
	if err := json.Unmarshal(r.body, &fields); err != nil {
		t.Fatalf("error body is not a JSON object of strings: %v\n%s", err, r.body)
	}
	if len(fields) != 2 || fields["error"] == "" || fields["message"] == "" {
		t.Fatalf("error body %s does not have exactly error and message", r.body)
	}
	return credentials.ErrorBody{Error: fields["error"], Message: fields["message"]}
}

// get calls the service through NewHTTPHandler as a client would.
func get(t testing.TB, s *credentials.Service, target, authorization string) result {
	t.Helper()
	return do(t, s, http.MethodGet, target, authorization)
}

func do(t testing.TB, s *credentials.Service, method, target, authorization string) result {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	req.RemoteAddr = "198.51.100.7:52100"
	req.Header.Set("User-Agent", "credbroker-test/1.0")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	rec := httptest.NewRecorder()
	credentials.NewHTTPHandler(s.Handle).ServeHTTP(rec, req)
	return result{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

// noSecrets fails when an error body carries credential fields.
func noSecrets(t testing.TB, r result) {
	t.Helper()
	for _, field := range []string{"accessKeyId", "secretAccessKey", "sessionToken", "credentialSets"} {
		if strings.Contains(string(r.body), field) {
			t.Errorf("error body carries %s: %s", field, r.body)
		}
	}
}

// places builds a project's places: "bucket", "bucket/prefix/" or with
// ":write" appended for write access.
func places(specs ...string) []broker.Place {
	out := make([]broker.Place, 0, len(specs))
	for _, s := range specs {
		access := broker.Read
		if rest, ok := strings.CutSuffix(s, ":write"); ok {
			s, access = rest, broker.Write
		}
		bucket, prefix, _ := strings.Cut(s, "/")
		if prefix != "" && !strings.HasSuffix(prefix, "/") {
			prefix += "/"
		}
		out = append(out, broker.Place{Bucket: bucket, Prefix: prefix, Access: access})
	}
	return out
}

// wantUnavailable checks a 503 that leaks nothing, with the Retry-After of
// a passing fault (2 s) or of an internal error (30 s).
func wantUnavailable(t *testing.T, r result) {
	t.Helper()
	if r.status != 503 {
		t.Fatalf("status %d, want 503; body %s", r.status, r.body)
	}
	if got := r.header.Get("Retry-After"); got != "2" && got != "30" {
		t.Errorf("Retry-After %q, want 2 or 30", got)
	}
	b := r.errorBody(t)
	if b.Error != "unavailable" {
		t.Errorf("error %q, want unavailable", b.Error)
	}
	for _, leak := range []string{"arn:", "Throttl", "Exception", "dynamodb", "sts", "DeadlineExceeded", "deadline"} {
		if strings.Contains(b.Message, leak) {
			t.Errorf("message %q leaks %q", b.Message, leak)
		}
	}
	noSecrets(t, r)
}

func twoSetPolicy(user string) broker.UserPolicy {
	return broker.UserPolicy{
		UserID:  user,
		Version: "v1.two-sets",
		Grants: []broker.Grant{
			{Bucket: "bucket-a", Access: broker.Read, Projects: []string{"p"}},
			{Bucket: "bucket-b", Access: broker.Write, Projects: []string{"p"}},
		},
		Sets: []broker.PolicySet{
			{Policy: `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::bucket-a/*"}]}`, Grants: []int{0}},
			{Policy: `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::bucket-b/*"}]}`, Grants: []int{1}},
		},
		ByProject: map[string][]broker.Place{"p": {{Bucket: "bucket-a", Access: broker.Read}, {Bucket: "bucket-b", Access: broker.Write}}},
	}
}
