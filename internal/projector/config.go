package projector

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Config is the projector function's environment.
type Config struct {
	MembershipTable string
	PolicyTable     string
	AuditBusName    string
	Partition       string
	Concurrency     int
	LogLevel        string
}

// ConfigFromEnv reads the configuration and reports every problem at once.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		MembershipTable: strings.TrimSpace(getenv("MEMBERSHIP_TABLE")),
		PolicyTable:     strings.TrimSpace(getenv("POLICY_TABLE")),
		AuditBusName:    strings.TrimSpace(getenv("AUDIT_BUS_NAME")),
		Partition:       strings.TrimSpace(getenv("ARN_PARTITION")),
		Concurrency:     16,
		LogLevel:        getenv("LOG_LEVEL"),
	}
	var errs []error
	for name, v := range map[string]string{"MEMBERSHIP_TABLE": c.MembershipTable, "POLICY_TABLE": c.PolicyTable, "AUDIT_BUS_NAME": c.AuditBusName} {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is required", name))
		}
	}
	if c.Partition == "" {
		c.Partition = "aws"
	}
	if v := getenv("FANOUT_CONCURRENCY"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 256 {
			errs = append(errs, fmt.Errorf("FANOUT_CONCURRENCY=%q: want a number from 1 to 256", v))
		}
		c.Concurrency = n
	}
	return c, errors.Join(errs...)
}
