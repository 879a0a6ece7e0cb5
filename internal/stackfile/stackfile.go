// Package stackfile is .local/stack.json, the file the local stack writes
// when it is ready (docs/operations.md "Local stack"): what a tester, the operator
// tools and the clients need to reach it. The local stack writes it; every
// tool reads it with Load.
package stackfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/credbroker/credbroker/internal/broker"
)

// DefaultPath is where `make run` writes the file.
const DefaultPath = ".local/stack.json"

// Stack is the file's content.
type Stack struct {
	Region           string `json:"region"`
	AWSEndpoint      string `json:"awsEndpoint"`
	APIURL           string `json:"apiUrl"`
	MembershipTable  string `json:"membershipTable"`
	PolicyTable      string `json:"policyTable"`
	EventBusName     string `json:"eventBusName"`
	UserPoolID       string `json:"userPoolId"`
	UserPoolClientID string `json:"userPoolClientId"`
	BaseRoleARN      string `json:"baseRoleArn"`
	// WebURL is the demo page, when the stack serves one.
	WebURL string `json:"webUrl,omitempty"`
	// AuditQueueURL receives a copy of every audit event (AUDIT_TAIL=1).
	AuditQueueURL string `json:"auditQueueUrl,omitempty"`
	// RevokerFunction is the revoker's function name, which
	// `credbroker admin revoke` invokes through Lambda's Invoke API.
	RevokerFunction string `json:"revokerFunction,omitempty"`
	// LambdaEndpoint serves Lambda's Invoke API for the local functions,
	// when it is not AWSEndpoint (moto runs none of them).
	LambdaEndpoint string `json:"lambdaEndpoint,omitempty"`
}

// Load reads a stack file and checks that every field the contract
// promises is there. A missing file is an Invalid error that says to start
// the local stack.
func Load(path string) (Stack, error) {
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
		{"region", st.Region}, {"awsEndpoint", st.AWSEndpoint}, {"apiUrl", st.APIURL},
		{"membershipTable", st.MembershipTable}, {"policyTable", st.PolicyTable}, {"eventBusName", st.EventBusName},
		{"userPoolId", st.UserPoolID}, {"userPoolClientId", st.UserPoolClientID}, {"baseRoleArn", st.BaseRoleARN},
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

// Write writes the file atomically, so that a reader never sees half of it.
func Write(path string, st Stack) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	return os.Rename(tmp, path)
}
