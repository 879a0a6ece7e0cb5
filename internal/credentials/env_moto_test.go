//go:build integration

package credentials_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/credbroker/credbroker/internal/ddbstore"
	"github.com/credbroker/credbroker/internal/ebaudit"
	"github.com/credbroker/credbroker/internal/samtemplate"
	"github.com/credbroker/credbroker/internal/stsissuer"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
)

// tier is moto's: the tables and the base role from template.yaml, STS,
// and an audit bus whose events a test reads back through SQS.
type tier struct {
	cfg     aws.Config
	ddb     *ddbstore.Store
	roleARN string
	sts     *sts.Client
	bus     *mototest.AuditBus
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx := context.Background()
	cfg := mototest.Config(t)
	tables := mototest.NewTables(t)
	tpl, err := samtemplate.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	role, err := tpl.CreateBaseRole(ctx, iam.NewFromConfig(cfg), mototest.Name(t, "base"))
	if err != nil {
		t.Fatalf("create base role: %v", err)
	}
	tr := tier{
		cfg:     cfg,
		ddb:     &ddbstore.Store{Client: tables.DDB, MembershipTable: tables.Membership, PolicyTable: tables.Policy},
		roleARN: role.ARN,
		sts:     sts.NewFromConfig(cfg),
		bus:     mototest.NewAuditBus(t),
	}
	issuer, err := stsissuer.New(stsissuer.Config{Client: tr.sts, RoleARN: tr.roleARN})
	if err != nil {
		t.Fatal(err)
	}
	return &env{
		store: tr.ddb, issuer: issuer, tier: tr,
		auditor: ebaudit.New(ebaudit.Config{Client: eventbridge.NewFromConfig(cfg), BusName: tr.bus.Name, Logger: discard()}),
	}
}

// issueWindow is widened in the moto tier: AssumeRole on the shared moto of
// a loaded 2-core machine has taken over 2 s (broker.IssueWindow), and the
// service rightly answered 503, failing tests about something else. The
// fast tier tests the window itself
// (TestAnAssumeRoleOutlastingTheIssueWindowHandsNothingOut).
func (tier) issueWindow() time.Duration { return 30 * time.Second }

func (tr tier) events(t testing.TB, n int) []json.RawMessage {
	t.Helper()
	var out []json.RawMessage
	for _, ev := range tr.bus.Receive(t, n) {
		out = append(out, ev.Detail)
	}
	return out
}

// drain reads every event the bus holds, so that events returns newer ones.
func (tr tier) drain(t testing.TB) { tr.bus.ReceiveAll(t) }

// motoAssumedRole is an entry of sts.AssumedRole in moto's data.json.
type motoAssumedRole struct {
	AccessKeyID string `json:"access_key_id"`
	SessionName string `json:"session_name"`
	RoleARN     string `json:"role_arn"`
	Policy      string `json:"policy"`
}

// assumedRoles returns what moto's STS recorded, by access key id.
func assumedRoles(t testing.TB) map[string]motoAssumedRole {
	t.Helper()
	var roles []motoAssumedRole
	if err := json.Unmarshal(mototest.Data(t, "sts")["AssumedRole"], &roles); err != nil {
		t.Fatalf("decode moto sts.AssumedRole: %v", err)
	}
	out := make(map[string]motoAssumedRole, len(roles))
	for _, r := range roles {
		out[r.AccessKeyID] = r
	}
	return out
}
