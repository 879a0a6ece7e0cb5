package endpoint

import (
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/stsissuer"
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
	// Issuer is the iss of the pool's tokens: TOKEN_ISSUER, or derived from
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
	Region          string
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
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	env := func(name string) string { return strings.TrimSpace(getenv(name)) }
	required := func(name string) string {
		v := env(name)
		if v == "" {
			bad("%s is required", name)
		}
		return v
	}

	c := Config{
		PolicyTable:  required("POLICY_TABLE"),
		BaseRoleARN:  required("BASE_ROLE_ARN"),
		UserPoolID:   required("USER_POOL_ID"),
		AuditBusName: required("AUDIT_BUS_NAME"),
		Region:       required("AWS_REGION"),
		JWKSURL:      env("JWKS_URL"),
		Issuer:       env("TOKEN_ISSUER"),
	}
	if c.BaseRoleARN != "" {
		if err := stsissuer.CheckRoleARN(c.BaseRoleARN); err != nil {
			bad("BASE_ROLE_ARN: %s", broker.MessageOf(err))
		} else {
			c.Partition = stsissuer.Partition(c.BaseRoleARN)
		}
	}
	if c.UserPoolID != "" {
		m := userPoolIDPattern.FindStringSubmatch(c.UserPoolID)
		switch {
		case m == nil:
			bad("USER_POOL_ID %q is not a user pool id (<region>_<id>)", c.UserPoolID)
		case c.Issuer == "":
			c.Issuer = "https://cognito-idp." + m[1] + ".amazonaws.com/" + c.UserPoolID
		}
	}

	if raw := env("ALLOWED_CLIENT_IDS"); raw == "" {
		bad("ALLOWED_CLIENT_IDS is required")
	} else {
		for id := range strings.SplitSeq(raw, ",") {
			if id = strings.TrimSpace(id); id == "" {
				bad("ALLOWED_CLIENT_IDS %q has an empty entry", raw)
				break
			}
			c.ClientIDs = append(c.ClientIDs, id)
		}
	}

	intEnv := func(name string, def, lo, hi int) int {
		raw := env(name)
		if raw == "" {
			return def
		}
		n, err := strconv.Atoi(raw)
		if err != nil || n < lo || n > hi {
			bad("%s %q must be an integer in %d..%d", name, raw, lo, hi)
			return def
		}
		return n
	}
	c.SessionDuration = time.Duration(intEnv("SESSION_DURATION_SECONDS", int(DefaultSessionDuration/time.Second),
		int(MinSessionDuration/time.Second), int(MaxSessionDuration/time.Second))) * time.Second
	c.CacheSize = intEnv("CREDENTIAL_CACHE_SIZE", DefaultCacheSize, 0, maxCacheSize)
	c.RequestTimeout = time.Duration(intEnv("REQUEST_TIMEOUT_MS", int(DefaultRequestTimeout/time.Millisecond),
		int(minTimeout/time.Millisecond), int(maxTimeout/time.Millisecond))) * time.Millisecond

	if raw := env("AUDIT_MODE"); raw != "" {
		m, err := ParseAuditMode(raw)
		if err != nil {
			bad("AUDIT_MODE %q must be fail-closed or best-effort", raw)
		}
		c.AuditMode = m
	}
	c.LogLevel = slog.LevelInfo
	if raw := env("LOG_LEVEL"); raw != "" {
		if err := c.LogLevel.UnmarshalText([]byte(raw)); err != nil {
			bad("LOG_LEVEL %q must be DEBUG, INFO, WARN or ERROR", raw)
		}
	}
	if c.JWKSURL != "" && !strings.HasPrefix(c.JWKSURL, "https://") && !strings.HasPrefix(c.JWKSURL, "http://") {
		bad("JWKS_URL %q must be an http(s) URL", c.JWKSURL)
	}
	if c.Issuer != "" && !strings.HasPrefix(c.Issuer, "https://") {
		bad("TOKEN_ISSUER %q must be an https URL", c.Issuer)
	}

	if len(problems) > 0 {
		return Config{}, broker.Errorf(broker.Internal, "credentials config", "%d problem(s): %s", len(problems), strings.Join(problems, "; "))
	}
	return c, nil
}
