package mototest

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/credbroker/credbroker/internal/testkit/iameval"
	"github.com/credbroker/credbroker/internal/testkit/rolesession"
)

// RolePolicies are a role's policy documents as moto's IAM holds them now.
type RolePolicies struct {
	BoundaryARN, Boundary string // "" when the role has no boundary
	// Managed are the attached managed policies' default versions, by ARN.
	Managed map[string]string
	// Inline are the inline policies, by name.
	Inline map[string]string
}

// Role reads a role's boundary, attached and inline policies from moto.
func Role(tb testing.TB, name string) RolePolicies {
	tb.Helper()
	r, err := rolesession.ReadRole(context.Background(), iam.NewFromConfig(Config(tb)), name)
	if err != nil {
		tb.Fatal(err)
	}
	return RolePolicies(r)
}

// Eval returns the role for iameval: its boundary and every policy, managed
// and inline.
func (r RolePolicies) Eval(tb testing.TB) iameval.Role {
	tb.Helper()
	role, err := rolesession.RolePolicies(r).Role()
	if err != nil {
		tb.Fatal(err)
	}
	return role
}
