//go:build integration

package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/ddbstore"
	"github.com/credbroker/credbroker/internal/exitcode"
	"github.com/credbroker/credbroker/internal/iamrole"
	"github.com/credbroker/credbroker/internal/localstack"
	"github.com/credbroker/credbroker/internal/revoke"
)

// An operator revokes one user's sessions on the local stack: the user's
// new cutoff lands in the policy item (the endpoint tags the user's next
// sessions with it) and in the base role's deny policy, at least RevokeBefore of when the
// command started; an invalid user is refused and nothing is written.
func TestAdminRevokeDeniesTheUsersSessionsUntilNow(t *testing.T) {
	s := newAdminStack(t, localstack.Options{Seed: true})
	user := s.st.Demo.UserID
	role := &iamrole.Role{Client: iam.NewFromConfig(s.cfg), ARN: s.st.Info.BaseRoleARN}
	store := &ddbstore.Store{Client: dynamodb.NewFromConfig(s.cfg), PolicyTable: s.st.Info.PolicyTable}
	ctx := context.Background()

	if code, out, errOut := s.cli(t, "admin", "revoke", "--user", "a*b"); code != exitcode.Usage || out != "" || !strings.Contains(errOut, "--user") {
		t.Errorf("invalid user: exit %d, stdout %q, stderr %q; want exit 2 naming --user", code, out, errOut)
	}
	if doc, err := role.Current(ctx, 0); err != nil || doc != "" {
		t.Fatalf("after a refused revocation the role's deny policy is %q (%v), want none", doc, err)
	}

	started := time.Now()
	code, out, errOut := s.cli(t, "admin", "revoke", "--user", user)
	if code != exitcode.OK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	list, err := store.LoadDenyList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	entry, listed := list.Users[user]
	cutoff := entry.Before
	if !listed || cutoff.Before(broker.RevokeBefore(started)) {
		t.Fatalf("deny list %+v: want %s with a cutoff of at least %v", list, user, broker.RevokeBefore(started))
	}
	if !strings.Contains(out, cutoff.Format(time.RFC3339)) {
		t.Errorf("stdout %q does not name the cutoff %v", out, cutoff)
	}
	doc, err := role.Current(ctx, 0)
	if want := revoke.Render(list, 1)[0]; err != nil || doc != want {
		t.Errorf("role's deny policy %q (%v), want the rendered list %q", doc, err, want)
	}
	item, err := store.GetPolicy(ctx, user)
	if err != nil || !item.RevokedBefore.Equal(cutoff) {
		t.Errorf("policy item cutoff %v (%v), want %v", item.RevokedBefore, err, cutoff)
	}
}
