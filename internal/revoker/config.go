package revoker

import (
	"log/slog"
	"time"

	"github.com/credbroker/credbroker/internal/envconf"
)

// Config is the revoker's environment.
type Config struct {
	PolicyTable  string
	AuditBusName string
	BaseRoleARN  string
	// MaxSession is the credentials function's session duration: entries
	// stay until every session they can match has expired.
	MaxSession time.Duration
	// Pages caps the managed policies the deny list may use besides the
	// inline one (0: as many as ManagedPolicyQuota leaves).
	Pages int
	// ManagedPolicyQuota is how many managed policies the base role may
	// have attached: IAM's default 10, or what the account's quota says.
	ManagedPolicyQuota int
	LogLevel           slog.Level
}

// ConfigFromEnv reads the configuration and reports every problem at once.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	r := envconf.New(getenv)
	c := Config{
		PolicyTable:        r.Required("CREDBROKER_POLICY_TABLE"),
		AuditBusName:       r.Required("CREDBROKER_EVENT_BUS"),
		BaseRoleARN:        r.Required("CREDBROKER_BASE_ROLE_ARN"),
		MaxSession:         r.Duration("CREDBROKER_SESSION_DURATION_SECONDS", time.Second, time.Hour, 15*time.Minute, time.Hour),
		Pages:              r.Int("CREDBROKER_REVOCATION_PAGES", 0, 0, 19),
		ManagedPolicyQuota: r.Int("CREDBROKER_MANAGED_POLICY_QUOTA", 10, 10, 20),
		LogLevel:           r.LogLevel(),
	}
	return c, r.Err("revoker")
}
