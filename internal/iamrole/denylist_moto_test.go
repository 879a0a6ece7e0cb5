//go:build integration

package iamrole_test

import (
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/ddbstore"
	"github.com/credbroker/credbroker/internal/iamrole"
	"github.com/credbroker/credbroker/internal/revoker"
	"github.com/credbroker/credbroker/internal/samtemplate"
	"github.com/credbroker/credbroker/internal/testkit/brokertest"
	"github.com/credbroker/credbroker/internal/testkit/iameval"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
)

// The revoker's real adapters on moto: whatever happens to the deny-list
// item, the next revocation keeps what the base role's policy denies.
// Each damage is done to the item the way an operator's mistake would.
func TestLostDenyListKeepsRevocationsOnMoto(t *testing.T) {
	tpl, err := samtemplate.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	denyKey := mototest.Key("REVOCATIONS", "DENYLIST")
	allowAll, err := iameval.Parse(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		lose func(t *testing.T, tables mototest.Tables)
	}{
		{"an item deleted by mistake", func(t *testing.T, tables mototest.Tables) {
			tables.Delete(t, tables.Policy, "REVOCATIONS", "DENYLIST")
		}},
		{"an item whose list is not JSON", func(t *testing.T, tables mototest.Tables) {
			item := mototest.Key("REVOCATIONS", "DENYLIST")
			item["version"] = &types.AttributeValueMemberN{Value: "2"}
			item["list"] = mototest.S("{")
			tables.Put(t, tables.Policy, item)
		}},
		{"an item whose version is no number", func(t *testing.T, tables mototest.Tables) {
			item := mototest.Key("REVOCATIONS", "DENYLIST")
			item["version"] = mototest.S("two")
			item["list"] = mototest.S("{}")
			tables.Put(t, tables.Policy, item)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			cfg := mototest.Config(t)
			tables := mototest.NewTables(t)
			client := iam.NewFromConfig(cfg)
			base, err := tpl.CreateBaseRole(ctx, client, mototest.Name(t, "base"))
			if err != nil {
				t.Fatal(err)
			}
			store := &ddbstore.Store{Client: tables.DDB, PolicyTable: tables.Policy}
			role := &iamrole.Role{Client: client, ARN: base.ARN}
			now := time.Now().UTC()
			svc := &revoker.Service{Store: revoker.RecordStore{Records: store}, Cutoffs: store, Role: role, Auditor: &brokertest.Auditor{},
				MaxSession: time.Hour, Now: func() time.Time { return now }}
			cuts := map[string]time.Time{}
			for i, u := range []string{"alice", "bob"} {
				cut, err := store.AdvanceCutoff(ctx, u, broker.RevokeBefore(now.Add(time.Duration(i)*time.Second)))
				if err != nil {
					t.Fatal(err)
				}
				cuts[u] = cut
				if _, err := svc.Revoke(ctx, revoker.Request{Entries: []revoker.Entry{{UserID: u, Before: cut, Revoked: []string{broker.CutoffTag(u, time.Time{})}}}, Reason: broker.ReasonNarrowed, Causes: []string{u + "-change"}}); err != nil {
					t.Fatal(err)
				}
			}
			tc.lose(t, tables)
			if _, err := (revoker.RecordStore{Records: store}).LoadDenyList(ctx); tc.name != "an item deleted by mistake" && !errors.Is(err, broker.ErrCorruptItem) {
				t.Fatalf("load of the damaged item: %v, want ErrCorruptItem", err)
			}

			carol := broker.RevokeBefore(now.Add(3 * time.Second))
			if _, err := svc.Revoke(ctx, revoker.Request{Entries: []revoker.Entry{{UserID: "carol", Before: carol, Revoked: []string{broker.CutoffTag("carol", time.Time{})}}}, Reason: broker.ReasonNarrowed, Causes: []string{"carol-change"}}); err != nil {
				t.Fatal(err)
			}
			doc, err := role.Current(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			deny, err := iameval.Parse(doc)
			if err != nil {
				t.Fatalf("role policy: %v\n%s", err, doc)
			}
			denied := func(user string, issued time.Time, tag string) bool {
				c := map[string]string{"aws:SourceIdentity": user, "aws:TokenIssueTime": issued.Truncate(time.Second).Format(time.RFC3339),
					"aws:PrincipalTag/" + broker.UserTagKey: broker.UserTag(user), "aws:PrincipalTag/" + broker.CutoffTagKey: tag}
				return !iameval.Session([]iameval.Policy{allowAll, deny}, allowAll, iameval.Request{Action: "s3:GetObject", Resource: "arn:aws:s3:::lake/k", Context: c})
			}
			for u, cut := range map[string]time.Time{"alice": cuts["alice"], "bob": cuts["bob"], "carol": carol} {
				if !denied(u, cut.Add(-2*time.Second), broker.CutoffTag(u, time.Time{})) {
					t.Errorf("%s's older session is not denied:\n%s", u, doc)
				}
				if u != "carol" && denied(u, cut.Add(-2*time.Second), broker.CutoffTag(u, cut)) {
					t.Errorf("%s's session minted under the cutoff is denied after the recovery:\n%s", u, doc)
				}
			}
			l, err := (revoker.RecordStore{Records: store}).LoadDenyList(ctx)
			if err != nil || len(l.Revoked) != 3 {
				t.Errorf("stored list after the recovery: %d revoked tags (%v)", len(l.Revoked), err)
			}
			out, err := tables.DDB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(tables.Policy), Key: denyKey})
			if err != nil || out.Item["version"] == nil {
				t.Errorf("stored item %v (%v)", out, err)
			}
		})
	}
}
