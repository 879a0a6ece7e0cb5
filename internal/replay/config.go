package replay

import (
	"log/slog"

	"github.com/credbroker/credbroker/internal/envconf"
)

// Config names the resources an operation works on.
type Config struct {
	MembershipTable string
	PolicyTable     string
	// StreamARN is the membership table's stream (replay only): the
	// function refuses replay without it; credbroker admin replay reads it
	// from DescribeTable.
	StreamARN    string
	AuditBusName string
	Partition    string
	LogLevel     slog.Level
	// Expiry is where the recomputes of a rebuild or a replay arm the
	// membership expiry timers (the projector's).
	Expiry envconf.Expiry
}

// ConfigFromEnv reads the function's environment (template.yaml,
// ReplayFunction), reporting every problem at once.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	r := envconf.New(getenv)
	c := Config{
		MembershipTable: r.Required("CREDBROKER_MEMBERSHIP_TABLE"),
		PolicyTable:     r.Required("CREDBROKER_POLICY_TABLE"),
		StreamARN:       r.String("CREDBROKER_MEMBERSHIP_STREAM_ARN", ""),
		AuditBusName:    r.Required("CREDBROKER_EVENT_BUS"),
		Partition:       r.String("CREDBROKER_ARN_PARTITION", "aws"),
		LogLevel:        r.LogLevel(),
		Expiry:          r.Expiry(),
	}
	return c, r.Err("replay")
}
