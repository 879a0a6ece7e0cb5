package credentials

import (
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/envconf"
)

// Config is the function's configuration, read from its environment.
type Config struct {
	PolicyTable string
	BaseRoleARN string
	// Partition is the base role's ARN partition; session policies name
	// buckets in it.
	Partition  string
	UserPoolID string
	ClientIDs  []string
	// Issuer is the iss of the pool's tokens: CREDBROKER_TOKEN_ISSUER, or derived from
	// the pool id, whose prefix is the pool's region (which may differ from
	// the function's).
	Issuer string
	// JWKSURL is "" for the issuer's own key set.
	JWKSURL         string
	SessionDuration time.Duration
	CacheSize       int
	AuditBusName    string
	AuditMode       AuditMode
	LogLevel        slog.Level
	RequestTimeout  time.Duration
}

// Defaults of the environment.
const (
	DefaultCacheSize = 1024
	maxCacheSize     = 1 << 20
	minTimeout       = 100 * time.Millisecond
	maxTimeout       = 60 * time.Second
)

var userPoolIDPattern = regexp.MustCompile(`^([a-z]{2}(?:-[a-z]+)+-\d+)_[0-9a-zA-Z]+$`)

// ConfigFromEnv reads the configuration through getenv (os.Getenv in the
// function). It reports every problem at once, so one failed deploy shows
// everything to fix.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	r := envconf.New(getenv)
	c := Config{
		PolicyTable:  r.Required("CREDBROKER_POLICY_TABLE"),
		BaseRoleARN:  r.Required("CREDBROKER_BASE_ROLE_ARN"),
		UserPoolID:   r.Required("CREDBROKER_USER_POOL_ID"),
		AuditBusName: r.Required("CREDBROKER_EVENT_BUS"),
		JWKSURL:      r.String("CREDBROKER_JWKS_URL", ""),
		Issuer:       r.String("CREDBROKER_TOKEN_ISSUER", ""),
	}
	if c.BaseRoleARN != "" {
		if err := broker.CheckRoleARN(c.BaseRoleARN); err != nil {
			r.Bad("CREDBROKER_BASE_ROLE_ARN: %s", broker.MessageOf(err))
		} else {
			c.Partition = broker.Partition(c.BaseRoleARN, "")
		}
	}
	if c.UserPoolID != "" {
		m := userPoolIDPattern.FindStringSubmatch(c.UserPoolID)
		switch {
		case m == nil:
			r.Bad("CREDBROKER_USER_POOL_ID %q is not a user pool id (<region>_<id>)", c.UserPoolID)
		case c.Issuer == "":
			c.Issuer = "https://cognito-idp." + m[1] + ".amazonaws.com/" + c.UserPoolID
		}
	}
	if c.ClientIDs = r.List("CREDBROKER_ALLOWED_CLIENT_IDS"); c.ClientIDs == nil {
		r.Bad("CREDBROKER_ALLOWED_CLIENT_IDS is required")
	}
	c.SessionDuration = r.Duration("CREDBROKER_SESSION_DURATION_SECONDS", time.Second, DefaultSessionDuration, MinSessionDuration, MaxSessionDuration)
	c.CacheSize = r.Int("CREDBROKER_CREDENTIAL_CACHE_SIZE", DefaultCacheSize, 0, maxCacheSize)
	c.RequestTimeout = r.Duration("CREDBROKER_REQUEST_TIMEOUT_MS", time.Millisecond, DefaultRequestTimeout, minTimeout, maxTimeout)
	c.AuditMode, _ = ParseAuditMode(r.OneOf("CREDBROKER_AUDIT_MODE", FailClosed.String(), FailClosed.String(), BestEffort.String()))
	c.LogLevel = r.LogLevel()
	if c.JWKSURL != "" && !strings.HasPrefix(c.JWKSURL, "https://") && !strings.HasPrefix(c.JWKSURL, "http://") {
		r.Bad("CREDBROKER_JWKS_URL %q must be an http(s) URL", c.JWKSURL)
	}
	if c.Issuer != "" && !strings.HasPrefix(c.Issuer, "https://") {
		r.Bad("CREDBROKER_TOKEN_ISSUER %q must be an https URL", c.Issuer)
	}
	if err := r.Err("credentials"); err != nil {
		return Config{}, err
	}
	return c, nil
}
