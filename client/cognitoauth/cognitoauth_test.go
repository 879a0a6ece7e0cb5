package cognitoauth

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"
	"github.com/google/go-cmp/cmp"
)

// fakeCognito is a hand-written stand-in for Cognito's user pool API,
// because moto accepts any SRP proof: it holds each user's SRP verifier
// (srpServer) and refuses a proof that does not verify, and it can refuse
// flows the app client does not allow, ask for challenges, and check
// SECRET_HASH. moto_test.go runs the same flows against moto.
type fakeCognito struct {
	poolName, clientID, secret string
	srp, password              bool // flows the app client allows
	rotate                     bool // refresh hands out a new refresh token

	mu       sync.Mutex
	users    map[string]*fakeUser // by username
	pending  map[string]*pendingSRP
	refresh  map[string]string // refresh token -> username
	calls    []string
	n        int
	failNext error // the next refresh fails with it
}

type fakeUser struct {
	id, password string
	salt         []byte
	challenge    types.ChallengeNameType // asked for after the password
}

type pendingSRP struct {
	user   *fakeUser
	server *srpServer
	bigA   *big.Int
	block  []byte
}

const (
	testPool     = "eu-west-1_AbCdEf123"
	testClientID = "client-1"
	testPassword = "Corr3ct-Horse-Battery!"
)

func newFakeCognito() *fakeCognito {
	return &fakeCognito{
		poolName: "AbCdEf123", clientID: testClientID, srp: true, password: true,
		users: map[string]*fakeUser{
			// Salts with a leading zero byte and with the high bit set.
			"alice": {id: "9f2c1b7e-1111-4a5b-8c9d-000000000001", password: testPassword, salt: []byte{0x00, 0x9a, 0x01, 0x02}},
			"bob":   {id: "bob", password: testPassword, salt: []byte{0xf0, 0x0d}},
			"carol": {id: "carol", password: testPassword, salt: []byte{0x42}, challenge: types.ChallengeNameTypeNewPasswordRequired},
			"dave":  {id: "dave", password: testPassword, salt: []byte{0x42}, challenge: types.ChallengeNameTypeSoftwareTokenMfa},
		},
		pending: map[string]*pendingSRP{}, refresh: map[string]string{},
	}
}

func (f *fakeCognito) record(call string) {
	f.calls = append(f.calls, call)
}

func (f *fakeCognito) callLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func notAuthorized(msg string) error {
	return &types.NotAuthorizedException{Message: aws.String(msg)}
}

func (f *fakeCognito) checkSecretHash(params map[string]string, username string) error {
	if f.secret == "" {
		return nil
	}
	mac := hmac.New(sha256.New, []byte(f.secret))
	mac.Write([]byte(username + f.clientID))
	if params["SECRET_HASH"] != base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
		return notAuthorized("Unable to verify secret hash for client " + f.clientID)
	}
	return nil
}

func (f *fakeCognito) tokens(username string, withRefresh bool) *types.AuthenticationResultType {
	f.n++
	// Shaped like a JWT with the username claim Cognito puts in access
	// tokens: the pool's own name for the user.
	claims := base64.RawURLEncoding.EncodeToString([]byte(`{"username":"` + f.users[username].id + `"}`))
	r := &types.AuthenticationResultType{
		AccessToken: aws.String(fmt.Sprintf("access-%d.%s.sig", f.n, claims)), IdToken: aws.String(fmt.Sprintf("id-%d", f.n)),
		ExpiresIn: 3600, TokenType: aws.String("Bearer"),
	}
	if withRefresh {
		rt := fmt.Sprintf("refresh-%d", f.n)
		r.RefreshToken = aws.String(rt)
		f.refresh[rt] = username
	}
	return r
}

// afterPassword answers a proven password: a challenge or tokens.
func (f *fakeCognito) afterPassword(name string, u *fakeUser) (types.ChallengeNameType, *types.AuthenticationResultType) {
	if u.challenge != "" {
		return u.challenge, nil
	}
	return "", f.tokens(name, true)
}

func (f *fakeCognito) InitiateAuth(_ context.Context, in *cip.InitiateAuthInput, _ ...func(*cip.Options)) (*cip.InitiateAuthOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("InitiateAuth " + string(in.AuthFlow))
	if aws.ToString(in.ClientId) != f.clientID {
		return nil, &types.ResourceNotFoundException{Message: aws.String("client")}
	}
	p := in.AuthParameters
	switch in.AuthFlow {
	case types.AuthFlowTypeUserSrpAuth:
		if !f.srp {
			return nil, &types.InvalidParameterException{Message: aws.String("USER_SRP_AUTH is not enabled for the client.")}
		}
		u, ok := f.users[p["USERNAME"]]
		if !ok {
			return nil, notAuthorized("Incorrect username or password.")
		}
		if err := f.checkSecretHash(p, p["USERNAME"]); err != nil {
			return nil, err
		}
		bigA, ok := new(big.Int).SetString(p["SRP_A"], 16)
		if !ok || new(big.Int).Mod(bigA, srpN).Sign() == 0 {
			return nil, &types.InvalidParameterException{Message: aws.String("SRP_A")}
		}
		b, _ := rand.Int(rand.Reader, srpN)
		block := make([]byte, 48)
		_, _ = rand.Read(block)
		session := fmt.Sprintf("session-%d", len(f.pending))
		pend := &pendingSRP{user: u, server: newSRPServer(f.poolName, u.id, u.password, new(big.Int).SetBytes(u.salt), b), bigA: bigA, block: block}
		f.pending[session] = pend
		return &cip.InitiateAuthOutput{
			ChallengeName: types.ChallengeNameTypePasswordVerifier, Session: aws.String(session),
			ChallengeParameters: map[string]string{
				"SALT": fmt.Sprintf("%x", u.salt), "SRP_B": pend.server.bigB.Text(16),
				"SECRET_BLOCK": base64.StdEncoding.EncodeToString(block), "USER_ID_FOR_SRP": u.id, "USERNAME": u.id,
			},
		}, nil
	case types.AuthFlowTypeUserPasswordAuth:
		if !f.password {
			return nil, &types.InvalidParameterException{Message: aws.String("USER_PASSWORD_AUTH flow not enabled for this client")}
		}
		u, ok := f.users[p["USERNAME"]]
		if !ok || u.password != p["PASSWORD"] {
			return nil, notAuthorized("Incorrect username or password.")
		}
		if err := f.checkSecretHash(p, p["USERNAME"]); err != nil {
			return nil, err
		}
		challenge, result := f.afterPassword(p["USERNAME"], u)
		return &cip.InitiateAuthOutput{ChallengeName: challenge, AuthenticationResult: result, Session: aws.String("s")}, nil
	case types.AuthFlowTypeRefreshTokenAuth:
		if err := f.failNext; err != nil {
			f.failNext = nil
			return nil, err
		}
		name, ok := f.refresh[p["REFRESH_TOKEN"]]
		if !ok {
			return nil, notAuthorized("Invalid Refresh Token")
		}
		if err := f.checkSecretHash(p, f.users[name].id); err != nil {
			return nil, err
		}
		return &cip.InitiateAuthOutput{AuthenticationResult: f.tokens(name, f.rotate)}, nil
	}
	return nil, &types.InvalidParameterException{Message: aws.String("flow")}
}

func (f *fakeCognito) RespondToAuthChallenge(_ context.Context, in *cip.RespondToAuthChallengeInput, _ ...func(*cip.Options)) (*cip.RespondToAuthChallengeOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("RespondToAuthChallenge " + string(in.ChallengeName))
	pend, ok := f.pending[aws.ToString(in.Session)]
	if in.ChallengeName != types.ChallengeNameTypePasswordVerifier || !ok {
		return nil, &types.InvalidParameterException{Message: aws.String("session")}
	}
	delete(f.pending, aws.ToString(in.Session))
	r := in.ChallengeResponses
	if r["USERNAME"] != pend.user.id {
		return nil, notAuthorized("Incorrect username or password.")
	}
	if err := f.checkSecretHash(r, r["USERNAME"]); err != nil {
		return nil, err
	}
	if _, err := time.Parse(timestampLayout, r["TIMESTAMP"]); err != nil {
		return nil, &types.InvalidParameterException{Message: aws.String("TIMESTAMP")}
	}
	block, _ := base64.StdEncoding.DecodeString(r["PASSWORD_CLAIM_SECRET_BLOCK"])
	if !bytes.Equal(block, pend.block) || !pend.server.verify(pend.bigA, block, r["TIMESTAMP"], r["PASSWORD_CLAIM_SIGNATURE"]) {
		return nil, notAuthorized("Incorrect username or password.")
	}
	var name string
	for n, u := range f.users {
		if u == pend.user {
			name = n
		}
	}
	challenge, result := f.afterPassword(name, pend.user)
	return &cip.RespondToAuthChallengeOutput{ChallengeName: challenge, AuthenticationResult: result}, nil
}

func newSource(t *testing.T, f *fakeCognito, flow Flow, opts ...func(*Config)) *Source {
	t.Helper()
	cfg := Config{Client: f, UserPoolID: testPool, ClientID: testClientID, Flow: flow}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tokenText matches the fake's tokens.
var tokenText = regexp.MustCompile(`\b(access|refresh|id)-\d+`)

// leaks fails when err's text holds the password or a token.
func leaks(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, secret := range []string{testPassword, "Wr0ng-Password!"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q holds the password", err)
		}
	}
	if tokenText.MatchString(err.Error()) {
		t.Errorf("error %q holds a token", err)
	}
}

func TestSignInFlows(t *testing.T) {
	srp := []string{"InitiateAuth USER_SRP_AUTH", "RespondToAuthChallenge PASSWORD_VERIFIER"}
	pw := []string{"InitiateAuth USER_PASSWORD_AUTH"}
	tests := []struct {
		name          string
		flow          Flow
		srp, password bool // enabled on the client
		user, pass    string
		wantErr       error
		wantChallenge string
		wantCalls     []string
	}{
		{name: "SRP proves the password", flow: FlowSRP, srp: true, user: "alice", pass: testPassword, wantCalls: srp},
		{name: "SRP with a salt with the high bit set", flow: FlowSRP, srp: true, user: "bob", pass: testPassword, wantCalls: srp},
		{name: "SRP refuses a wrong password", flow: FlowSRP, srp: true, user: "alice", pass: "Wr0ng-Password!", wantErr: ErrNotAuthorized, wantCalls: srp},
		{name: "password sign-in", flow: FlowPassword, password: true, user: "alice", pass: testPassword, wantCalls: pw},
		{name: "password sign-in refuses a wrong password", flow: FlowPassword, password: true, user: "alice", pass: "Wr0ng-Password!", wantErr: ErrNotAuthorized, wantCalls: pw},
		{name: "auto uses SRP when allowed", flow: FlowAuto, srp: true, password: true, user: "alice", pass: testPassword, wantCalls: srp},
		{name: "auto falls back to password when SRP is not allowed", flow: FlowAuto, password: true, user: "alice", pass: testPassword,
			wantCalls: []string{"InitiateAuth USER_SRP_AUTH", "InitiateAuth USER_PASSWORD_AUTH"}},
		{name: "auto does not try a wrong password twice", flow: FlowAuto, srp: true, password: true, user: "alice", pass: "Wr0ng-Password!",
			wantErr: ErrNotAuthorized, wantCalls: srp},
		{name: "auto with neither flow allowed", flow: FlowAuto, user: "alice", pass: testPassword, wantErr: ErrFlowNotEnabled,
			wantCalls: []string{"InitiateAuth USER_SRP_AUTH", "InitiateAuth USER_PASSWORD_AUTH"}},
		{name: "SRP chosen but not allowed", flow: FlowSRP, password: true, user: "alice", pass: testPassword, wantErr: ErrFlowNotEnabled,
			wantCalls: []string{"InitiateAuth USER_SRP_AUTH"}},
		{name: "password chosen but not allowed", flow: FlowPassword, srp: true, user: "alice", pass: testPassword, wantErr: ErrFlowNotEnabled, wantCalls: pw},
		{name: "an unknown user", flow: FlowAuto, srp: true, user: "mallory", pass: testPassword, wantErr: ErrNotAuthorized,
			wantCalls: []string{"InitiateAuth USER_SRP_AUTH"}},
		{name: "a new password required after SRP", flow: FlowSRP, srp: true, user: "carol", pass: testPassword, wantErr: ErrNewPasswordRequired,
			wantChallenge: "NEW_PASSWORD_REQUIRED", wantCalls: srp},
		{name: "a new password required after password sign-in", flow: FlowPassword, password: true, user: "carol", pass: testPassword,
			wantErr: ErrNewPasswordRequired, wantChallenge: "NEW_PASSWORD_REQUIRED", wantCalls: pw},
		{name: "an MFA challenge is not answered", flow: FlowSRP, srp: true, user: "dave", pass: testPassword,
			wantChallenge: "SOFTWARE_TOKEN_MFA", wantCalls: srp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeCognito()
			f.srp, f.password = tt.srp, tt.password
			s := newSource(t, f, tt.flow)
			err := s.SignIn(t.Context(), tt.user, tt.pass)
			leaks(t, err)
			var ce *ChallengeError
			switch {
			case tt.wantChallenge != "":
				if !errors.As(err, &ce) || ce.Name != tt.wantChallenge {
					t.Errorf("SignIn = %v, want challenge %s", err, tt.wantChallenge)
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("SignIn = %v, want %v", err, tt.wantErr)
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("SignIn = %v, want %v", err, tt.wantErr)
				}
			case err != nil:
				t.Errorf("SignIn: %v", err)
			default:
				if tok, err := s.Token(t.Context()); err != nil || !strings.HasPrefix(tok, "access-") {
					t.Errorf("Token after sign-in = %q, %v", tok, err)
				}
			}
			if d := cmp.Diff(tt.wantCalls, f.callLog()); d != "" {
				t.Errorf("calls to Cognito (-want +got):\n%s", d)
			}
		})
	}
}

func TestTheSecretHashIsSentWhenTheClientHasASecret(t *testing.T) {
	for _, flow := range []Flow{FlowSRP, FlowPassword} {
		t.Run(string(flow), func(t *testing.T) {
			f := newFakeCognito()
			f.secret = "client-secret"
			s := newSource(t, f, flow, func(c *Config) { c.ClientSecret = "client-secret" })
			if err := s.SignIn(t.Context(), "alice", testPassword); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Refresh(t.Context()); err != nil {
				t.Fatalf("refresh with a secret: %v", err)
			}
			// And without it, Cognito refuses.
			bad := newSource(t, f, flow)
			if err := bad.SignIn(t.Context(), "alice", testPassword); err == nil {
				t.Error("sign-in without SECRET_HASH accepted by the fake: the check is broken")
			}
		})
	}
}

func TestTheAccessTokenIsRefreshedWithinTheMargin(t *testing.T) {
	for _, rotate := range []bool{false, true} {
		t.Run(fmt.Sprintf("rotate=%v", rotate), func(t *testing.T) {
			f := newFakeCognito()
			f.rotate = rotate
			now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
			store := &memStore{}
			s := newSource(t, f, FlowSRP, func(cfg *Config) { cfg.Now, cfg.Store = func() time.Time { return now }, store })
			if err := s.SignIn(t.Context(), "alice", testPassword); err != nil {
				t.Fatal(err)
			}
			first, _ := s.Token(t.Context())
			firstRefresh := store.get().RefreshToken
			now = now.Add(time.Hour - DefaultMargin - time.Second)
			if tok, _ := s.Token(t.Context()); tok != first || len(f.callLog()) != 2 {
				t.Fatalf("refreshed before the margin: %q, calls %v", tok, f.callLog())
			}
			now = now.Add(time.Second)
			tok, err := s.Token(t.Context())
			if err != nil || tok == first {
				t.Fatalf("not refreshed at the margin: %q, %v", tok, err)
			}
			if got := f.callLog()[2]; got != "InitiateAuth REFRESH_TOKEN_AUTH" {
				t.Errorf("call %q, want a refresh", got)
			}
			saved := store.get()
			if saved.AccessToken != tok || !saved.Expiry.Equal(now.Add(time.Hour)) {
				t.Errorf("stored %v, want the new token expiring in an hour", saved)
			}
			if keep := saved.RefreshToken == firstRefresh; keep == rotate {
				t.Errorf("refresh token kept = %v with rotation %v", keep, rotate)
			}
			// The refreshed tokens refresh again.
			now = now.Add(time.Hour)
			if _, err := s.Token(t.Context()); err != nil {
				t.Errorf("second refresh: %v", err)
			}
		})
	}
}

func TestConcurrentCallersShareOneRefresh(t *testing.T) {
	f := newFakeCognito()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s := newSource(t, f, FlowPassword, func(cfg *Config) { cfg.Now = func() time.Time { return now } })
	if err := s.SignIn(t.Context(), "alice", testPassword); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Hour) // before the callers start: no race
	var wg sync.WaitGroup
	toks := make([]string, 32)
	for i := range toks {
		wg.Go(func() { toks[i], _ = s.Token(t.Context()) })
	}
	wg.Wait()
	for _, tok := range toks[1:] {
		if tok != toks[0] || tok == "" {
			t.Fatalf("tokens differ: %q", toks)
		}
	}
	if n := strings.Count(strings.Join(f.callLog(), ","), "REFRESH_TOKEN_AUTH"); n != 1 {
		t.Errorf("%d refreshes for 32 concurrent callers, want 1", n)
	}
}

func TestRefreshFailures(t *testing.T) {
	tests := []struct {
		name    string
		fail    error
		wantErr error
	}{
		{"a refused refresh token means signing in again", notAuthorized("Refresh Token has been revoked"), ErrSignInRequired},
		{"a throttled refresh is not a sign-out", &types.TooManyRequestsException{Message: aws.String("slow down")}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeCognito()
			s := newSource(t, f, FlowPassword)
			if err := s.SignIn(t.Context(), "alice", testPassword); err != nil {
				t.Fatal(err)
			}
			f.mu.Lock()
			f.failNext = tt.fail
			f.mu.Unlock()
			_, err := s.Refresh(t.Context())
			leaks(t, err)
			if err == nil {
				t.Fatal("Refresh succeeded")
			}
			if got := errors.Is(err, ErrSignInRequired); got != (tt.wantErr == ErrSignInRequired) {
				t.Errorf("Refresh = %v; ErrSignInRequired %v", err, got)
			}
		})
	}
}

func TestWithoutTokensSignInIsRequired(t *testing.T) {
	s := newSource(t, newFakeCognito(), FlowAuto)
	if _, err := s.Token(t.Context()); !errors.Is(err, ErrSignInRequired) {
		t.Errorf("Token = %v, want ErrSignInRequired", err)
	}
	if _, err := s.Refresh(t.Context()); !errors.Is(err, ErrSignInRequired) {
		t.Errorf("Refresh = %v, want ErrSignInRequired", err)
	}
}

func TestAFileStoreKeepsTokensForTheNextProcess(t *testing.T) {
	f := newFakeCognito()
	path := filepath.Join(t.TempDir(), "credbroker", "tokens.json")
	store := FileStore{Path: path}
	if err := newSource(t, f, FlowSRP, func(c *Config) { c.Store = store }).SignIn(t.Context(), "alice", testPassword); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %04o, want 0600", st.Mode().Perm())
	}
	if dir, _ := os.Stat(filepath.Dir(path)); dir.Mode().Perm() != 0o700 {
		t.Errorf("token directory mode %04o, want 0700", dir.Mode().Perm())
	}
	calls := len(f.callLog())
	next := newSource(t, f, FlowSRP, func(c *Config) { c.Store = store })
	if tok, err := next.Token(t.Context()); err != nil || !strings.HasPrefix(tok, "access-") || len(f.callLog()) != calls {
		t.Errorf("the next process: %q, %v, %d new calls", tok, err, len(f.callLog())-calls)
	}
	// Tokens of another app client are not used.
	other := newSource(t, f, FlowSRP, func(c *Config) { c.Store, c.ClientID = store, "client-2" })
	if _, err := other.Token(t.Context()); !errors.Is(err, ErrSignInRequired) {
		t.Errorf("another client's tokens: %v, want ErrSignInRequired", err)
	}
	// A file others can read is refused.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = newSource(t, f, FlowSRP, func(c *Config) { c.Store = store }).Token(t.Context())
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a world-readable token file: %v", err)
	}
	leaks(t, err)
	// A file that is not a token file says so without quoting it.
	if err := os.WriteFile(path, []byte(`{"accessToken":"access-9","bogus":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = newSource(t, f, FlowSRP, func(c *Config) { c.Store = store }).Token(t.Context())
	if err == nil {
		t.Error("a foreign file was used")
	}
	leaks(t, err)
}

func TestTokensNeverPrintTheirSecrets(t *testing.T) {
	tok := Tokens{Username: "alice", ClientID: "c", AccessToken: "access-secret", IDToken: "id-secret", RefreshToken: "refresh-secret", Expiry: time.Now()}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("tokens", "t", tok, "p", &tok)
	for _, out := range []string{fmt.Sprintf("%v %+v %#v %s", tok, tok, tok, tok), fmt.Sprintf("%v %+v", &tok, &tok), logged.String()} {
		if strings.Contains(out, "secret") {
			t.Errorf("printed tokens: %s", out)
		}
		if !strings.Contains(out, "alice") {
			t.Errorf("printed tokens lack the username: %s", out)
		}
	}
}

func TestNewChecksTheConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no client":             {ClientID: "c", UserPoolID: testPool},
		"no client id":          {Client: newFakeCognito(), UserPoolID: testPool},
		"SRP without a pool id": {Client: newFakeCognito(), ClientID: "c", Flow: FlowSRP},
		"auto with a bad pool":  {Client: newFakeCognito(), ClientID: "c", UserPoolID: "nounderscore"},
		"an unknown flow":       {Client: newFakeCognito(), ClientID: "c", UserPoolID: testPool, Flow: "CUSTOM_AUTH"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := New(Config{Client: newFakeCognito(), ClientID: "c", Flow: FlowPassword}); err != nil {
		t.Errorf("password sign-in needs no pool id: %v", err)
	}
}

type memStore struct {
	mu sync.Mutex
	t  *Tokens
}

func (m *memStore) Load(context.Context) (*Tokens, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.t, nil
}
func (m *memStore) Save(_ context.Context, t *Tokens) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := *t
	m.t = &c
	return nil
}
func (m *memStore) get() Tokens { m.mu.Lock(); defer m.mu.Unlock(); return *m.t }
