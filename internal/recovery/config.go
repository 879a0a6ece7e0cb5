package recovery

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/credbroker/credbroker/internal/broker"
)

// Config names the resources an operation works on.
type Config struct {
	MembershipTable string
	PolicyTable     string
	// StreamARN is the membership table's stream; when empty it is read
	// from DescribeTable (replay only).
	StreamARN    string
	AuditBusName string
	Partition    string
	LogLevel     string
	// Region and Endpoint are set for the local stack only; a deployed
	// stack uses the SDK's usual configuration.
	Region   string
	Endpoint string
}

// ConfigFromEnv reads the function's environment (template.yaml,
// ReplayFunction), reporting every problem at once.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		MembershipTable: strings.TrimSpace(getenv("MEMBERSHIP_TABLE")),
		PolicyTable:     strings.TrimSpace(getenv("POLICY_TABLE")),
		StreamARN:       strings.TrimSpace(getenv("MEMBERSHIP_STREAM_ARN")),
		AuditBusName:    strings.TrimSpace(getenv("AUDIT_BUS_NAME")),
		Partition:       strings.TrimSpace(getenv("ARN_PARTITION")),
		LogLevel:        strings.TrimSpace(getenv("LOG_LEVEL")),
	}
	var errs []error
	for _, v := range []struct{ name, value string }{
		{"MEMBERSHIP_TABLE", c.MembershipTable}, {"POLICY_TABLE", c.PolicyTable}, {"AUDIT_BUS_NAME", c.AuditBusName},
	} {
		if v.value == "" {
			errs = append(errs, fmt.Errorf("%s is required", v.name))
		}
	}
	if c.Partition == "" {
		c.Partition = "aws"
	}
	if err := errors.Join(errs...); err != nil {
		return c, broker.Wrap(broker.Invalid, "configuration", err)
	}
	return c, nil
}

// Stack is the part of the local stack's .local/stack.json the tool reads
// (README "Local stack"); other fields are ignored.
type Stack struct {
	Region          string `json:"region"`
	AWSEndpoint     string `json:"awsEndpoint"`
	MembershipTable string `json:"membershipTable"`
	PolicyTable     string `json:"policyTable"`
	EventBusName    string `json:"eventBusName"`
}

// LoadStack reads a stack.json file.
func LoadStack(path string) (Stack, error) {
	const op = "read stack file"
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Stack{}, broker.Errorf(broker.Invalid, op, "%s does not exist: start the local stack with `make run` first", path)
	}
	if err != nil {
		return Stack{}, broker.Wrap(broker.Invalid, op, err)
	}
	var st Stack
	if err := json.Unmarshal(data, &st); err != nil {
		return Stack{}, broker.Errorf(broker.Invalid, op, "%s is not a stack file: %v", path, err)
	}
	var missing []string
	for _, f := range []struct{ name, value string }{
		{"region", st.Region}, {"awsEndpoint", st.AWSEndpoint}, {"membershipTable", st.MembershipTable},
		{"policyTable", st.PolicyTable}, {"eventBusName", st.EventBusName},
	} {
		if strings.TrimSpace(f.value) == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return Stack{}, broker.Errorf(broker.Invalid, op, "%s lacks %s", path, strings.Join(missing, ", "))
	}
	return st, nil
}

// Config returns the configuration for the local stack.
func (st Stack) Config() Config {
	return Config{
		MembershipTable: st.MembershipTable, PolicyTable: st.PolicyTable, AuditBusName: st.EventBusName,
		Partition: "aws", Region: st.Region, Endpoint: st.AWSEndpoint,
	}
}
