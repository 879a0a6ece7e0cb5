// Package cognitoauth signs a user in to an Amazon Cognito user pool and
// keeps a current access token: the token source of the credbroker client
// (package client) and of the credbroker command.
//
// Sign-in uses USER_SRP_AUTH (the password never leaves the machine; the
// flow the credbroker template always enables) or USER_PASSWORD_AUTH
// (enabled on AWS only with the template's AllowPasswordAuth; the local
// stack always enables it). With FlowAuto, SRP is tried first and password
// sign-in only when the app client does not allow SRP. The access token is
// refreshed with the refresh token (REFRESH_TOKEN_AUTH) when it comes
// within a margin of its expiry. A Store keeps the tokens between
// processes; FileStore keeps them in a file only its owner can read.
//
// Passwords and tokens never appear in errors or in the output of the
// String method of Tokens.
package cognitoauth

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"
)

// API is the part of the Cognito user pools client that a Source calls;
// *cognitoidentityprovider.Client implements it. Sign-in and refresh are
// unauthenticated calls: the client needs a region, not AWS credentials
// (aws.AnonymousCredentials{} will do).
type API interface {
	InitiateAuth(ctx context.Context, in *cip.InitiateAuthInput, optFns ...func(*cip.Options)) (*cip.InitiateAuthOutput, error)
	RespondToAuthChallenge(ctx context.Context, in *cip.RespondToAuthChallengeInput, optFns ...func(*cip.Options)) (*cip.RespondToAuthChallengeOutput, error)
}

// Flow chooses how SignIn proves the password.
type Flow string

const (
	// FlowAuto tries SRP and falls back to password sign-in when the app
	// client does not allow SRP.
	FlowAuto Flow = ""
	// FlowSRP is USER_SRP_AUTH only.
	FlowSRP Flow = Flow(types.AuthFlowTypeUserSrpAuth)
	// FlowPassword is USER_PASSWORD_AUTH only: the password is sent to
	// Cognito (over TLS).
	FlowPassword Flow = Flow(types.AuthFlowTypeUserPasswordAuth)
)

// Errors callers can test with errors.Is.
var (
	// ErrSignInRequired: there are no tokens, or the refresh token was
	// refused (expired or revoked); sign in again.
	ErrSignInRequired = errors.New("cognitoauth: sign-in required")
	// ErrNotAuthorized: Cognito refused the username or password (or the
	// user is disabled).
	ErrNotAuthorized = errors.New("cognitoauth: incorrect username or password")
	// ErrNewPasswordRequired: the user must choose a new password first
	// (a user created by an administrator with a temporary password).
	ErrNewPasswordRequired = errors.New("cognitoauth: the user must set a new password")
	// ErrFlowNotEnabled: the app client does not allow the sign-in flow.
	ErrFlowNotEnabled = errors.New("cognitoauth: the app client does not allow this sign-in flow")
)

// ChallengeError is a challenge Cognito asked for that this package does
// not answer (new password, MFA, custom challenges). It matches
// ErrNewPasswordRequired for NEW_PASSWORD_REQUIRED.
type ChallengeError struct {
	Name string // Cognito's ChallengeName
}

func (e *ChallengeError) Error() string {
	if e.Name == string(types.ChallengeNameTypeNewPasswordRequired) {
		return "cognitoauth: sign-in needs a new password (challenge NEW_PASSWORD_REQUIRED): set one first, e.g. in the hosted UI or with `aws cognito-idp admin-set-user-password --permanent`"
	}
	return fmt.Sprintf("cognitoauth: sign-in needs the %s challenge, which this client does not answer", e.Name)
}

// Is reports whether target is ErrNewPasswordRequired and e is that challenge.
func (e *ChallengeError) Is(target error) bool {
	return target == ErrNewPasswordRequired && e.Name == string(types.ChallengeNameTypeNewPasswordRequired)
}

// Tokens are what a sign-in yields. Their String method hides the tokens.
type Tokens struct {
	// Username is the name Cognito knows the user by (for SRP its
	// USER_ID_FOR_SRP); it keys SECRET_HASH on refresh.
	Username string `json:"username"`
	// ClientID is the app client that issued the tokens; tokens of
	// another client are not used.
	ClientID     string    `json:"clientId"`
	AccessToken  string    `json:"accessToken"`
	IDToken      string    `json:"idToken,omitempty"`
	RefreshToken string    `json:"refreshToken,omitempty"`
	Expiry       time.Time `json:"expiry"` // of the access token
}

// String describes t without its tokens, so that logging it leaks nothing.
func (t Tokens) String() string {
	return fmt.Sprintf("cognitoauth.Tokens{Username: %q, ClientID: %q, Expiry: %s, tokens: [redacted]}", t.Username, t.ClientID, t.Expiry.UTC().Format(time.RFC3339))
}

// GoString is String, for %#v.
func (t Tokens) GoString() string { return t.String() }

// LogValue is String, for log/slog.
func (t Tokens) LogValue() slog.Value { return slog.StringValue(t.String()) }

// Store keeps tokens between processes.
type Store interface {
	// Load returns the stored tokens, or (nil, nil) when there are none.
	Load(ctx context.Context) (*Tokens, error)
	Save(ctx context.Context, t *Tokens) error
}

// Config configures a Source.
type Config struct {
	// Client calls Cognito (required): a *cognitoidentityprovider.Client
	// for the pool's region.
	Client API
	// UserPoolID is "<region>_<id>"; SRP needs it (required unless Flow
	// is FlowPassword).
	UserPoolID string
	// ClientID is the app client id (required).
	ClientID string
	// ClientSecret is the app client's secret, for clients that have one
	// (the credbroker template's client has none).
	ClientSecret string
	Flow         Flow
	// Store keeps the tokens; nil keeps them in memory only.
	Store Store
	// Margin: Token refreshes an access token that expires within it.
	// Default 2 minutes.
	Margin time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Rand is the randomness of SRP's secret; default crypto/rand.
	Rand io.Reader
}

// Source signs in and hands out a current access token. It is safe for
// concurrent use; concurrent callers that need a refresh share one.
type Source struct {
	cfg      Config
	poolName string

	mu  sync.RWMutex
	tok *Tokens
	gen int // counts sign-ins and refreshes
	// lock serializes network calls; a channel so that waiting honours
	// the context.
	lock chan struct{}
}

// DefaultMargin is Config.Margin's default.
const DefaultMargin = 2 * time.Minute

// New checks cfg and returns a Source. It does not call Cognito.
func New(cfg Config) (*Source, error) {
	if cfg.Client == nil {
		return nil, errors.New("cognitoauth: Config.Client is required")
	}
	if cfg.ClientID == "" {
		return nil, errors.New("cognitoauth: Config.ClientID is required")
	}
	s := &Source{cfg: cfg, lock: make(chan struct{}, 1)}
	switch cfg.Flow {
	case FlowAuto, FlowSRP:
		_, name, ok := strings.Cut(cfg.UserPoolID, "_")
		if !ok || name == "" {
			return nil, fmt.Errorf("cognitoauth: SRP sign-in needs Config.UserPoolID as <region>_<id>, got %q", cfg.UserPoolID)
		}
		s.poolName = name
	case FlowPassword:
	default:
		return nil, fmt.Errorf("cognitoauth: unknown Flow %q", cfg.Flow)
	}
	s.cfg.Margin = cmp.Or(cfg.Margin, DefaultMargin)
	if s.cfg.Now == nil {
		s.cfg.Now = time.Now
	}
	if s.cfg.Rand == nil {
		s.cfg.Rand = rand.Reader
	}
	return s, nil
}

// SignIn signs username in with password and keeps (and stores) the
// tokens.
func (s *Source) SignIn(ctx context.Context, username, password string) error {
	if username == "" || password == "" {
		return errors.New("cognitoauth: username and password are required")
	}
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.release()
	flows := []Flow{s.cfg.Flow}
	if s.cfg.Flow == FlowAuto {
		flows = []Flow{FlowSRP, FlowPassword}
	}
	for i, f := range flows {
		var t *Tokens
		var err error
		if f == FlowSRP {
			t, err = s.signInSRP(ctx, username, password)
		} else {
			t, err = s.signInPassword(ctx, username, password)
		}
		if errors.Is(err, ErrFlowNotEnabled) && i+1 < len(flows) {
			continue
		}
		if err != nil {
			return err
		}
		return s.keep(ctx, t)
	}
	panic("unreachable")
}

// Token returns a current access token: the one held, loaded from the
// Store, or refreshed when it expires within the margin. It is
// client.TokenSource's Token.
func (s *Source) Token(ctx context.Context) (string, error) {
	s.mu.RLock()
	t := s.tok
	s.mu.RUnlock()
	if t != nil && s.fresh(t) {
		return t.AccessToken, nil
	}
	if err := s.acquire(ctx); err != nil {
		return "", err
	}
	defer s.release()
	t, err := s.held(ctx)
	if err != nil {
		return "", err
	}
	if s.fresh(t) {
		return t.AccessToken, nil
	}
	return s.refresh(ctx, t)
}

// Refresh returns a new access token even when the one held looks
// current (the endpoint refused it). Concurrent callers share one refresh.
func (s *Source) Refresh(ctx context.Context) (string, error) {
	s.mu.RLock()
	gen := s.gen
	s.mu.RUnlock()
	if err := s.acquire(ctx); err != nil {
		return "", err
	}
	defer s.release()
	s.mu.RLock()
	t, again := s.tok, s.gen != gen
	s.mu.RUnlock()
	if again && t != nil && s.fresh(t) {
		return t.AccessToken, nil // refreshed while this caller waited
	}
	t, err := s.held(ctx)
	if err != nil {
		return "", err
	}
	return s.refresh(ctx, t)
}

// Tokens returns the tokens held (loading them from the Store), or
// ErrSignInRequired.
func (s *Source) Tokens(ctx context.Context) (Tokens, error) {
	if err := s.acquire(ctx); err != nil {
		return Tokens{}, err
	}
	defer s.release()
	t, err := s.held(ctx)
	if err != nil {
		return Tokens{}, err
	}
	return *t, nil
}

func (s *Source) acquire(ctx context.Context) error {
	select {
	case s.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Source) release() { <-s.lock }

func (s *Source) fresh(t *Tokens) bool {
	return t.AccessToken != "" && s.cfg.Now().Before(t.Expiry.Add(-s.cfg.Margin))
}

// held returns the tokens in memory or in the Store; the caller holds the
// lock.
func (s *Source) held(ctx context.Context) (*Tokens, error) {
	s.mu.RLock()
	t := s.tok
	s.mu.RUnlock()
	if t != nil {
		return t, nil
	}
	if s.cfg.Store != nil {
		loaded, err := s.cfg.Store.Load(ctx)
		if err != nil {
			return nil, fmt.Errorf("cognitoauth: load tokens: %w", err)
		}
		if loaded != nil && loaded.ClientID == s.cfg.ClientID && loaded.AccessToken != "" {
			s.mu.Lock()
			s.tok = loaded
			s.mu.Unlock()
			return loaded, nil
		}
	}
	return nil, ErrSignInRequired
}

// keep holds and stores t; the caller holds the lock.
func (s *Source) keep(ctx context.Context, t *Tokens) error {
	s.mu.Lock()
	s.tok = t
	s.gen++
	s.mu.Unlock()
	if s.cfg.Store != nil {
		if err := s.cfg.Store.Save(ctx, t); err != nil {
			return fmt.Errorf("cognitoauth: save tokens: %w", err)
		}
	}
	return nil
}

func (s *Source) refresh(ctx context.Context, t *Tokens) (string, error) {
	if t.RefreshToken == "" {
		return "", fmt.Errorf("%w: the access token expires and there is no refresh token", ErrSignInRequired)
	}
	params := map[string]string{"REFRESH_TOKEN": t.RefreshToken}
	s.addSecretHash(params, t.Username)
	start := s.cfg.Now()
	out, err := s.cfg.Client.InitiateAuth(ctx, &cip.InitiateAuthInput{
		AuthFlow: types.AuthFlowTypeRefreshTokenAuth, ClientId: aws.String(s.cfg.ClientID), AuthParameters: params,
	})
	if err != nil {
		var na *types.NotAuthorizedException
		if errors.As(err, &na) {
			return "", fmt.Errorf("%w: Cognito refused the refresh token (%s)", ErrSignInRequired, aws.ToString(na.Message))
		}
		return "", fmt.Errorf("cognitoauth: refresh: %w", err)
	}
	next, err := s.result(start, t.Username, out.ChallengeName, out.AuthenticationResult)
	if err != nil {
		return "", err
	}
	// Cognito returns a refresh token on refresh only when it rotates them.
	next.RefreshToken = cmp.Or(next.RefreshToken, t.RefreshToken)
	if err := s.keep(ctx, next); err != nil {
		return "", err
	}
	return next.AccessToken, nil
}
