// Package jwtauth verifies Amazon Cognito access tokens: it is the
// broker.TokenVerifier of the credential endpoint.
//
// Only RS256 tokens signed by a key of the configured JWKS URL pass, and only
// access tokens of the configured issuer for one of the configured app
// clients. Keys are fetched on first use and cached per process; an unknown
// key id causes at most one rate-limited refresh.
package jwtauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/credbroker/credbroker/internal/broker"
)

// Defaults of Config.
const (
	DefaultLeeway          = 30 * time.Second
	DefaultMaxTokenBytes   = 8192
	DefaultRefreshInterval = time.Minute
	DefaultMaxKeyAge       = time.Hour
	DefaultFetchTimeout    = 5 * time.Second
	// MaxJWKSBytes caps the key set response; Cognito's is under 2 KiB.
	MaxJWKSBytes = 1 << 20
	// MaxKidBytes caps the kid header; Cognito's are 44 characters.
	MaxKidBytes = 128
)

// Doer sends HTTP requests; *http.Client is one.
type Doer interface {
	Do(req *http.Request) (*http.Response, error)
}

// Config configures a Verifier. Issuer and ClientIDs are required.
type Config struct {
	// Issuer is the user pool's issuer URL,
	// https://cognito-idp.<region>.amazonaws.com/<poolId>. A token's iss must
	// equal it exactly.
	Issuer string
	// JWKSURL is where the signing keys are; default Issuer +
	// "/.well-known/jwks.json". It must be https, or http on a loopback host
	// (a local moto).
	JWKSURL string
	// ClientIDs are the app clients whose tokens are accepted.
	ClientIDs []string
	// Leeway is the clock skew tolerated on exp, nbf and iat; default 30s.
	Leeway time.Duration
	// MaxTokenBytes rejects longer tokens before parsing; default 8192.
	MaxTokenBytes int
	// RefreshInterval is the least time between two key set fetches caused
	// by unknown key ids; default 1 minute.
	RefreshInterval time.Duration
	// MaxKeyAge is how long fetched keys are trusted before the key set is
	// fetched again; default 1 hour, at least RefreshInterval. A key the
	// pool no longer publishes stops verifying tokens within it.
	MaxKeyAge time.Duration
	// FetchTimeout bounds one key set fetch; default 5s.
	FetchTimeout time.Duration
	// HTTPClient fetches the key set; default a client that follows no
	// redirects, so keys come only from JWKSURL.
	HTTPClient Doer
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives rejection details (debug) and fetch failures (warn);
	// default slog.Default().
	Logger *slog.Logger
}

// Verifier verifies Cognito access tokens. It is safe for concurrent use.
type Verifier struct {
	issuer    string
	clientIDs []string
	maxBytes  int
	now       func() time.Time
	log       *slog.Logger
	parser    *jwt.Parser
	keys      *keyCache
}

var _ broker.TokenVerifier = (*Verifier)(nil)

// New checks cfg and returns a Verifier. It does no network I/O: the key set
// is fetched on the first Verify.
func New(cfg Config) (*Verifier, error) {
	const op = "jwtauth config"
	bad := func(format string, args ...any) error {
		return broker.Errorf(broker.Internal, op, format, args...)
	}
	if err := checkURL(cfg.Issuer, false); err != nil {
		return nil, bad("issuer: %v", err)
	}
	if strings.HasSuffix(cfg.Issuer, "/") {
		// Cognito's iss has no trailing slash, so no token would ever match.
		return nil, bad("issuer must not end with a slash")
	}
	if cfg.JWKSURL == "" {
		cfg.JWKSURL = cfg.Issuer + "/.well-known/jwks.json"
	}
	if err := checkURL(cfg.JWKSURL, true); err != nil {
		return nil, bad("jwks url: %v", err)
	}
	if len(cfg.ClientIDs) == 0 || slices.Contains(cfg.ClientIDs, "") {
		return nil, bad("client ids must be a non-empty list of non-empty ids")
	}
	if cfg.Leeway < 0 || cfg.MaxTokenBytes < 0 || cfg.RefreshInterval < 0 || cfg.FetchTimeout < 0 || cfg.MaxKeyAge < 0 {
		return nil, bad("leeway, max token bytes, refresh interval, max key age and fetch timeout must not be negative")
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.MaxTokenBytes == 0 {
		cfg.MaxTokenBytes = DefaultMaxTokenBytes
	}
	if cfg.RefreshInterval == 0 {
		cfg.RefreshInterval = DefaultRefreshInterval
	}
	if cfg.FetchTimeout == 0 {
		cfg.FetchTimeout = DefaultFetchTimeout
	}
	if cfg.MaxKeyAge == 0 {
		cfg.MaxKeyAge = max(DefaultMaxKeyAge, cfg.RefreshInterval)
	}
	if cfg.MaxKeyAge < cfg.RefreshInterval {
		return nil, bad("max key age %v is shorter than the refresh interval %v", cfg.MaxKeyAge, cfg.RefreshInterval)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Verifier{
		issuer:    cfg.Issuer,
		clientIDs: slices.Clone(cfg.ClientIDs),
		maxBytes:  cfg.MaxTokenBytes,
		now:       cfg.Now,
		log:       cfg.Logger,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodRS256.Alg()}),
			jwt.WithStrictDecoding(),
			jwt.WithLeeway(cfg.Leeway),
			jwt.WithTimeFunc(cfg.Now),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithIssuer(cfg.Issuer),
		),
		keys: &keyCache{
			url:      cfg.JWKSURL,
			client:   cfg.HTTPClient,
			interval: cfg.RefreshInterval,
			maxAge:   cfg.MaxKeyAge,
			timeout:  cfg.FetchTimeout,
			now:      cfg.Now,
			log:      cfg.Logger,
		},
	}, nil
}

func checkURL(raw string, allowLoopbackHTTP bool) error {
	if raw == "" {
		return errors.New("is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("is not a URL")
	}
	switch {
	case u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return errors.New("must be an absolute URL without credentials, query or fragment")
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && allowLoopbackHTTP && isLoopback(u.Hostname()):
		return nil
	}
	return errors.New("must use https")
}

// isLoopback accepts "localhost" and loopback IP literals only: a DNS name
// such as 127.example.com resolves wherever its owner points it.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// accessClaims are the claims of a Cognito access token that the verifier reads.
type accessClaims struct {
	jwt.RegisteredClaims
	TokenUse string `json:"token_use"`
	ClientID string `json:"client_id"`
	Username string `json:"username"`
}

// rejection is the detail of a rejected token: Message is safe for the
// caller, err goes to the log only.
func reject(msg string, detail error) error {
	return &broker.Error{Kind: broker.Unauthenticated, Op: "verify token", Message: msg, Err: detail}
}

// Verify returns the principal of a valid Cognito access token. Any token it
// does not accept gives an Unauthenticated error with a short safe message;
// when the signing keys cannot be fetched it gives a Transient error.
func (v *Verifier) Verify(ctx context.Context, token string) (broker.Principal, error) {
	p, err := v.verify(ctx, token)
	if err != nil {
		// Debug: rejections are routine, and a fetch failure is logged at
		// warn where it happens.
		v.log.DebugContext(ctx, "access token rejected", "kind", broker.KindOf(err).String(),
			"reason", broker.MessageOf(err), "err", errors.Unwrap(err), "token_bytes", len(token))
		return broker.Principal{}, err
	}
	return p, nil
}

func (v *Verifier) verify(ctx context.Context, token string) (broker.Principal, error) {
	if len(token) > v.maxBytes {
		return broker.Principal{}, reject("token too large", fmt.Errorf("%d bytes, limit %d", len(token), v.maxBytes))
	}
	if err := checkShape(token); err != nil {
		return broker.Principal{}, reject("malformed token", err)
	}
	var c accessClaims
	_, err := v.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		kid, err := checkHeader(t.Header)
		if err != nil {
			return nil, err
		}
		return v.keys.key(ctx, kid)
	})
	if err != nil {
		return broker.Principal{}, classify(err)
	}
	switch {
	case c.TokenUse != "access":
		return broker.Principal{}, reject("not an access token", fmt.Errorf("token_use %q", truncate(c.TokenUse)))
	case !slices.Contains(v.clientIDs, c.ClientID):
		return broker.Principal{}, reject("wrong client", fmt.Errorf("client_id %q", truncate(c.ClientID)))
	case c.IssuedAt == nil:
		return broker.Principal{}, reject("token has no issue time", nil)
	case c.Subject == "":
		return broker.Principal{}, reject("token has no subject", nil)
	}
	if err := broker.ValidateUserID(c.Subject); err != nil {
		return broker.Principal{}, reject("invalid subject", err)
	}
	return broker.Principal{
		UserID:   c.Subject,
		ClientID: c.ClientID,
		Username: c.Username,
		TokenID:  c.ID,
		Expires:  c.ExpiresAt.Time,
	}, nil
}

// checkShape accepts exactly three non-empty unpadded base64url segments, so
// the parser never sees anything else.
func checkShape(token string) error {
	segments := 0
	length := 0
	for i := 0; i <= len(token); i++ {
		if i == len(token) || token[i] == '.' {
			if length == 0 {
				return fmt.Errorf("segment %d is empty", segments+1)
			}
			segments++
			length = 0
			continue
		}
		if !isBase64URL(token[i]) {
			return fmt.Errorf("byte %d is not base64url", i)
		}
		length++
	}
	if segments != 3 {
		return fmt.Errorf("%d segments", segments)
	}
	return nil
}

func isBase64URL(b byte) bool {
	return 'A' <= b && b <= 'Z' || 'a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '-' || b == '_'
}

// Header parameters that would let the token name its own key or demand
// processing the verifier does not do.
var forbiddenHeaders = []string{"jku", "jwk", "x5u", "x5c", "crit"}

func checkHeader(h map[string]any) (kid string, err error) {
	for _, name := range forbiddenHeaders {
		if _, ok := h[name]; ok {
			return "", reject("unsupported token header", fmt.Errorf("header %q present", name))
		}
	}
	if typ, ok := h["typ"]; ok && typ != "JWT" {
		return "", reject("unsupported token type", fmt.Errorf("typ %v", typ))
	}
	kid, _ = h["kid"].(string)
	switch {
	case kid == "":
		return "", reject("token has no key id", nil)
	case len(kid) > MaxKidBytes:
		return "", reject("invalid key id", fmt.Errorf("kid of %d bytes", len(kid)))
	}
	return kid, nil
}

// classify turns a parser error into the verifier's error: its own errors
// from the key function pass through, the parser's get a safe message.
func classify(err error) error {
	var be *broker.Error
	if errors.As(err, &be) {
		return be
	}
	var msg string
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		msg = "malformed token"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		msg = "invalid signature"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		msg = "token has no expiry"
	case errors.Is(err, jwt.ErrTokenExpired):
		msg = "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		msg = "token not yet valid"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		msg = "token issued in the future"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		msg = "wrong issuer"
	default:
		msg = "invalid token"
	}
	return reject(msg, err)
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
