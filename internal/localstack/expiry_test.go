//go:build integration

package localstack_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
)

// A membership that expires in a few seconds, end to end on the local
// stack: the grant is served with its expiry; the credentials fetched
// before it are denied by their own session policy at it (judged by the
// IAM evaluator, since moto enforces no IAM); the expiry timer then
// recomputes the user, whose item loses the grant and whose PolicyChanged
// lists it in removed with the expiry as cause, revoking nothing.
func TestAMembershipEndsOnTimeOnTheLocalStack(t *testing.T) {
	st := start(t, true)
	c := newClient(st)
	demo := st.Demo.UserID
	watch := mototest.WatchBus(t, st.Info.EventBusName, "", `{"detail-type":["PolicyChanged"]}`)
	token := signIn(t, st, st.Demo.Username, st.Demo.Password)
	until(t, st, token, func(a answer) bool { return a.status == 200 })

	// Whole seconds (the contract's precision), far enough ahead to fetch
	// credentials under the membership even on a machine busy with other
	// test packages (5 s was not, under make test's load).
	expiry := time.Now().Add(15 * time.Second).UTC().Truncate(time.Second)
	c.put(t, map[string]types.AttributeValue{"pk": s("PROJECT#contract"), "sk": s("BUCKET#contract-bucket")})
	c.put(t, map[string]types.AttributeValue{"pk": s("USER#" + demo), "sk": s("PROJECT#contract"),
		"role": s("write"), "expiresAt": s(expiry.Format(time.RFC3339))})
	a := until(t, st, token, func(a answer) bool { return slices.Contains(a.places(), "contract-bucket/:write") })
	for _, set := range a.body.CredentialSets {
		for _, g := range set.Grants {
			if want := ""; g.Bucket == "contract-bucket" {
				want = expiry.Format(time.RFC3339)
				if g.ExpiresAt != want {
					t.Errorf("contract-bucket served with expiresAt %q, want %q", g.ExpiresAt, want)
				}
			} else if g.ExpiresAt != want {
				t.Errorf("%s served with expiresAt %q, want none", g.Bucket, g.ExpiresAt)
			}
		}
	}
	old := sessionOf(t, st, token, demo, "contract-bucket")
	if time.Now().After(expiry) {
		t.Fatalf("setup took past the expiry %v", expiry)
	}
	role := baseRole(t, st)
	before, after := old, old
	before.at, after.at = expiry.Add(-time.Second), expiry
	if !before.reaches(role, "contract-bucket") {
		t.Error("the session does not reach contract-bucket a second before the expiry")
	}
	if after.reaches(role, "contract-bucket") {
		t.Error("the session still reaches contract-bucket at the expiry: the session policy does not bound it")
	}
	after.at = expiry.Add(-time.Second)
	if !after.reaches(role, "demo-raw") {
		t.Error("the session lost its unbounded grant")
	}
	after.at = expiry.Add(time.Hour)
	if !after.reaches(role, "demo-raw") {
		t.Error("the unbounded grant ended with the bounded one")
	}

	// The recompute at the expiry: its PolicyChanged, then the item.
	var d broker.PolicyChangedDetail
	var seen time.Time
	for d.UserID == "" {
		for _, ev := range watch.Receive(t, 1) {
			var got broker.PolicyChangedDetail
			if err := json.Unmarshal(ev.Detail, &got); err != nil {
				t.Fatal(err)
			}
			if got.UserID == demo && slices.Contains(got.Causes, broker.ExpiryCause(expiry)) {
				d, seen = got, time.Now()
			}
		}
	}
	if len(d.Removed) != 1 || d.Removed[0].Bucket != "contract-bucket" || len(d.Added) != 0 {
		t.Errorf("PolicyChanged at the expiry: added %+v removed %+v, want contract-bucket removed", d.Added, d.Removed)
	}
	if d.RevokeBefore != nil {
		t.Errorf("reaching the expiry revoked (revokeBefore %v): the credentials had already stopped", *d.RevokeBefore)
	}
	t.Logf("expiry %v: recomputed %v after it (changedAt), PolicyChanged received %v after it",
		expiry, d.ChangedAt.Sub(expiry).Round(time.Millisecond), seen.Sub(expiry).Round(time.Millisecond))
	if d.ChangedAt.Before(expiry) {
		t.Errorf("recomputed at %v, before the expiry %v", d.ChangedAt, expiry)
	}
	final := call(t, st, token, "")
	if slices.Contains(final.places(), "contract-bucket/:write") || !slices.Contains(final.places(), "demo-raw/:write") {
		t.Errorf("after the expiry the endpoint serves %v, want the demo grants without contract-bucket", final.places())
	}
}
