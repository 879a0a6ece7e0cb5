package endpoint_test

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

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/ddbstore"
	"github.com/credbroker/credbroker/internal/ebaudit"
	"github.com/credbroker/credbroker/internal/endpoint"
	"github.com/credbroker/credbroker/internal/jwtauth"
	"github.com/credbroker/credbroker/internal/policy"
	"github.com/credbroker/credbroker/internal/stackdef"
	"github.com/credbroker/credbroker/internal/stsissuer"
	"github.com/credbroker/credbroker/internal/testkit/jwttest"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
)

// env is the AWS side of the endpoint in moto: the tables and the base
// role from template.yaml, STS, and an audit bus whose events a test can
// read back. getPolicy and issue count the calls that reach the real
// adapters through the wrappers of reader and issuer.
type env struct {
	cfg     aws.Config
	store   *ddbstore.Store
	roleARN string
	sts     *sts.Client
	issuer  *stsissuer.Issuer
	bus     *mototest.AuditBus
	auditor *ebaudit.Emitter

	getPolicy atomic.Int64
	issue     atomic.Int64
	emits     atomic.Int64
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx := context.Background()
	cfg := mototest.Config(t)
	tables := mototest.NewTables(t)
	tpl, err := stackdef.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := tpl.BaseRolePolicy()
	if err != nil {
		t.Fatal(err)
	}
	iamc := iam.NewFromConfig(cfg)
	name := mototest.Name(t, "base")
	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":["sts:AssumeRole","sts:SetSourceIdentity"]}]}`
	role, err := iamc.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String(name), AssumeRolePolicyDocument: aws.String(trust)})
	if err != nil {
		t.Fatalf("create base role: %v", err)
	}
	if _, err := iamc.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String("s3-ceiling"), PolicyDocument: aws.String(doc)}); err != nil {
		t.Fatalf("put base role policy: %v", err)
	}
	e := &env{
		cfg:     cfg,
		store:   &ddbstore.Store{Client: tables.DDB, MembershipTable: tables.Membership, PolicyTable: tables.Policy},
		roleARN: aws.ToString(role.Role.Arn),
		sts:     sts.NewFromConfig(cfg),
	}
	e.issuer, err = stsissuer.New(stsissuer.Config{Client: e.sts, RoleARN: e.roleARN})
	if err != nil {
		t.Fatal(err)
	}
	e.bus = mototest.NewAuditBus(t)
	e.auditor = ebaudit.New(ebaudit.Config{Client: eventbridge.NewFromConfig(cfg), BusName: e.bus.Name, Logger: discard()})
	return e
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
func (e *env) service(v broker.TokenVerifier, edit ...func(*endpoint.Service)) *endpoint.Service {
	s := &endpoint.Service{
		Verifier: v,
		Policies: e.policies(),
		Issuer:   e.issuing(),
		Auditor:  e.auditing(),
		Logger:   discard(),
		// Generous: moto under a loaded CI machine with -race is slow, and
		// tests about deadlines set their own.
		RequestTimeout: 30 * time.Second,
		AuditTimeout:   10 * time.Second,
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

func (r result) answer(t testing.TB) endpoint.Answer {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200; body %s", r.status, r.body)
	}
	var a endpoint.Answer
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatalf("200 body is not an answer: %v\n%s", err, r.body)
	}
	return a
}

// errorBody decodes an error answer strictly: exactly the two fields.
func (r result) errorBody(t testing.TB) endpoint.ErrorBody {
	t.Helper()
	var fields map[string]string
	if err := json.Unmarshal(r.body, &fields); err != nil {
		t.Fatalf("error body is not a JSON object of strings: %v\n%s", err, r.body)
	}
	if len(fields) != 2 || fields["error"] == "" || fields["message"] == "" {
		t.Fatalf("error body %s does not have exactly error and message", r.body)
	}
	return endpoint.ErrorBody{Error: fields["error"], Message: fields["message"]}
}

// get calls the service through NewHTTPHandler as a client would.
func get(t testing.TB, s *endpoint.Service, target, authorization string) result {
	t.Helper()
	return do(t, s, http.MethodGet, target, authorization)
}

func do(t testing.TB, s *endpoint.Service, method, target, authorization string) result {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	req.RemoteAddr = "198.51.100.7:52100"
	req.Header.Set("User-Agent", "credbroker-test/1.0")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	rec := httptest.NewRecorder()
	endpoint.NewHTTPHandler(s.Handle).ServeHTTP(rec, req)
	return result{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

// motoAssumedRole is an entry of sts.AssumedRole in moto's data.json.
type motoAssumedRole struct {
	AccessKeyID string `json:"access_key_id"`
	SessionName string `json:"session_name"`
	RoleARN     string `json:"role_arn"`
	Policy      string `json:"policy"`
}

// assumedRoles returns what moto's STS recorded, by access key id.
func assumedRoles(t testing.TB) map[string]motoAssumedRole {
	t.Helper()
	var roles []motoAssumedRole
	if err := json.Unmarshal(mototest.Data(t, "sts")["AssumedRole"], &roles); err != nil {
		t.Fatalf("decode moto sts.AssumedRole: %v", err)
	}
	out := make(map[string]motoAssumedRole, len(roles))
	for _, r := range roles {
		out[r.AccessKeyID] = r
	}
	return out
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
