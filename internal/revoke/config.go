package revoke

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
	LogLevel   slog.Level
}

// ConfigFromEnv reads the configuration and reports every problem at once.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	r := envconf.New(getenv)
	c := Config{
		PolicyTable:  r.Required("POLICY_TABLE"),
		AuditBusName: r.Required("AUDIT_BUS_NAME"),
		BaseRoleARN:  r.Required("BASE_ROLE_ARN"),
		MaxSession:   r.Duration("SESSION_DURATION_SECONDS", time.Second, time.Hour, 15*time.Minute, time.Hour),
		LogLevel:     r.LogLevel(),
	}
	return c, r.Err("revoker")
}
