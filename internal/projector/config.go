package projector

import (
	"log/slog"

	"github.com/credbroker/credbroker/internal/envconf"
)

// Config is the projector function's environment.
type Config struct {
	MembershipTable string
	PolicyTable     string
	AuditBusName    string
	Partition       string
	Concurrency     int
	// FanoutQueueURL is the queue of fan-out pages; "" runs every fan-out
	// in the stream's invocation.
	FanoutQueueURL string
	LogLevel       slog.Level
	// Expiry is where membership expiry timers are armed.
	Expiry envconf.Expiry
}

// ConfigFromEnv reads the configuration and reports every problem at once.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	r := envconf.New(getenv)
	c := Config{
		MembershipTable: r.Required("CREDBROKER_MEMBERSHIP_TABLE"),
		PolicyTable:     r.Required("CREDBROKER_POLICY_TABLE"),
		AuditBusName:    r.Required("CREDBROKER_EVENT_BUS"),
		Partition:       r.String("CREDBROKER_ARN_PARTITION", "aws"),
		Concurrency:     r.Int("CREDBROKER_FANOUT_CONCURRENCY", 16, 1, 256),
		FanoutQueueURL:  r.String("CREDBROKER_FANOUT_QUEUE_URL", ""),
		LogLevel:        r.LogLevel(),
		Expiry:          r.Expiry(),
	}
	return c, r.Err("projector")
}
