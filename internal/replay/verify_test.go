package replay_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/exitcode"
	"github.com/credbroker/credbroker/internal/projector"
	"github.com/credbroker/credbroker/internal/replay"
	"github.com/credbroker/credbroker/internal/testkit/brokertest"
	"github.com/credbroker/credbroker/internal/testkit/memstore"
)

func encode(t testing.TB, d *storedDoc) string {
	t.Helper()
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The endpoint hands out the document's session policies, whatever the
// version says: an edited document is drift even with the version kept.
func TestVerifyReportsAnEditedDocumentAndRebuildRepairsIt(t *testing.T) {
	const allowAll = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}`
	tests := []struct {
		name string
		edit func(t *testing.T, d *storedDoc) string
	}{
		{"a session policy granting more is different", func(t *testing.T, d *storedDoc) string {
			d.Sets[0].Policy = allowAll
			return encode(t, d)
		}},
		{"a set covering other grants is different", func(t *testing.T, d *storedDoc) string {
			d.Sets[0].Grants = nil
			return encode(t, d)
		}},
		{"a grant on another bucket is different", func(t *testing.T, d *storedDoc) string {
			d.Grants[0].Bucket = "forged"
			return encode(t, d)
		}},
		{"a grant attributed to another project is different", func(t *testing.T, d *storedDoc) string {
			d.Grants[0].Projects = []string{"p9"}
			return encode(t, d)
		}},
		{"a project's places added is different", func(t *testing.T, d *storedDoc) string {
			d.ByProject["p9"] = []broker.Place{{Bucket: "forged", Access: broker.Write}}
			return encode(t, d)
		}},
		{"a project without places is different, as the projector sees it", func(t *testing.T, d *storedDoc) string {
			d.ByProject["p8"] = []broker.Place{}
			return encode(t, d)
		}},
		{"an undecodable document is different, not a failure to check", func(*testing.T, *storedDoc) string {
			return `{"grants":[`
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.populate()
			ctx := context.Background()
			f.editDoc("erin", func(d *storedDoc) string { return tc.edit(t, d) })

			rep, err := f.svc.Verify(ctx)
			if replay.ExitCode(err) != exitcode.Found {
				t.Fatalf("verify: exit code %d (%v), want drift", replay.ExitCode(err), err)
			}
			if diff := cmp.Diff([]replay.Finding{{Kind: replay.Different, UserID: "erin"}}, rep.Findings); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
			if rep.Different != 1 || rep.Drift() != 1 || rep.Failed != 0 {
				t.Errorf("report %+v, want one difference and no failure", rep)
			}

			if rep, err := f.svc.Rebuild(ctx); err != nil || rep.Changed != 1 {
				t.Fatalf("rebuild changed %d items (err %v), want erin's", rep.Changed, err)
			}
			want, err := f.proj.Compute(ctx, "erin")
			if err != nil {
				t.Fatal(err)
			}
			// The repair may revoke (docs/security.md "Revocation"): what an edited or
			// unreadable item granted is unknown, so its cutoff moves.
			if diff := cmp.Diff(want, f.item("erin"), cmpopts.IgnoreFields(broker.UserPolicy{}, "UpdatedAt", "RevokedBefore")); diff != "" {
				t.Errorf("erin's item after rebuild (-computed +stored):\n%s", diff)
			}
			if rep, err := f.svc.Verify(ctx); err != nil || rep.Drift() != 0 {
				t.Errorf("verify after rebuild: drift %d, err %v, findings %+v", rep.Drift(), err, rep.Findings)
			}
		})
	}
}

// Verify and the projector compare alike: a document that decodes to the
// same policy is no drift, whatever its bytes.
func TestVerifyDoesNotReportADocumentThatDecodesToTheSamePolicy(t *testing.T) {
	f := newFixture(t)
	f.populate()
	f.editDoc("alice", func(d *storedDoc) string {
		return "{ \"byProject\": " + mustJSON(t, d.ByProject) + ",\n \"sets\": " + mustJSON(t, d.Sets) +
			", \"grants\": " + mustJSON(t, d.Grants) + ", \"unknown\": 1 }"
	})
	rep, err := f.svc.Verify(context.Background())
	if err != nil || rep.Drift() != 0 {
		t.Fatalf("drift %d, err %v, findings %+v", rep.Drift(), err, rep.Findings)
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A clean verify means a rebuild has nothing to do: an index entry whose
// membership does not exist, which Rebuild removes, is drift.
func TestVerifyReportsStaleIndexEntriesThatRebuildRemoves(t *testing.T) {
	f := newFixture(t)
	f.populate()
	ctx := context.Background()
	f.policy.PutEntry(t, "p2", "bob", 3)
	f.policy.PutEntry(t, "p1", "ghost", 4)

	rep, err := f.svc.Verify(ctx)
	if replay.ExitCode(err) != exitcode.Found {
		t.Fatalf("verify: exit code %d (%v), want drift", replay.ExitCode(err), err)
	}
	want := []replay.Finding{
		{Kind: replay.ExtraIndex, UserID: "bob", Project: "p2"},
		{Kind: replay.ExtraIndex, UserID: "ghost", Project: "p1"},
	}
	if diff := cmp.Diff(want, rep.Findings); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
	if rep.ExtraIndex != 2 || rep.Drift() != 2 {
		t.Errorf("report %+v, want 2 stale entries", rep)
	}
	var drift *replay.DriftError
	if !errors.As(err, &drift) || !strings.Contains(err.Error(), "2 stale index entries") {
		t.Errorf("error %q does not count the stale entries", err)
	}

	if rep, err := f.svc.Rebuild(ctx); err != nil || rep.StaleIndex != 2 {
		t.Fatalf("rebuild: stale %d, err %v", rep.StaleIndex, err)
	}
	if rep, err := f.svc.Verify(ctx); err != nil || rep.Drift() != 0 {
		t.Errorf("verify after rebuild: drift %d, err %v, findings %+v", rep.Drift(), err, rep.Findings)
	}
}

// A stale entry whose user joins the project before the recheck is a
// change in flight.
func TestVerifyDoesNotReportAStaleEntryWhoseUserJoinsBeforeTheRecheck(t *testing.T) {
	f := newFixture(t)
	f.populate()
	f.policy.PutEntry(t, "p3", "bob", 3)
	svc := *f.svc
	svc.Store = &joiningStore{Store: f.store, user: "bob", project: "p3", join: func() {
		f.member("bob", "p3", "read")
		f.project()
	}}
	rep, err := svc.Verify(context.Background())
	if err != nil || rep.Drift() != 0 {
		t.Fatalf("drift %d, err %v, findings %+v", rep.Drift(), err, rep.Findings)
	}
	if rep.Cleared != 1 {
		t.Errorf("cleared %d differences, want bob's 1", rep.Cleared)
	}
}

// joiningStore lets a user join a project right after Verify's first look
// at their index entry of it (hand-written: the timing cannot be arranged
// in moto).
type joiningStore struct {
	replay.Store
	user, project string
	join          func()
	once          sync.Once
}

func (j *joiningStore) MembershipExists(ctx context.Context, user, project string) (bool, error) {
	ok, err := j.Store.MembershipExists(ctx, user, project)
	if user == j.user && project == j.project {
		j.once.Do(j.join)
	}
	return ok, err
}

// A lost policy table makes every user drift: the report keeps MaxListed
// findings, the first by user, with exact counts.
func TestVerifyKeepsAtMostMaxListedFindingsWithExactCounts(t *testing.T) {
	items := org(200, 20)
	store := memstore.New()
	var all []replay.Finding
	users := map[string]bool{}
	for _, it := range items {
		store.PutSource(it)
		if ref, _ := broker.ParseRef(it.PK, it.SK); ref.Kind == broker.MembershipRecord {
			if !users[ref.UserID] {
				users[ref.UserID] = true
				all = append(all, replay.Finding{Kind: replay.Missing, UserID: ref.UserID})
			}
			all = append(all, replay.Finding{Kind: replay.MissingIndex, UserID: ref.UserID, Project: ref.ProjectID})
		}
	}
	key := func(f replay.Finding) string { return f.UserID + "\x00" + string(f.Kind) + "\x00" + f.Project }
	slices.SortFunc(all, func(a, b replay.Finding) int { return strings.Compare(key(a), key(b)) })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	audit := &brokertest.Auditor{}
	proj := &projector.Projector{Source: store, Store: store, Index: store, Checkpoints: store, Logger: quiet, Auditor: audit}
	const listed = 7
	for _, rechecks := range []int{0, 5} { // 5: most differences rechecked at once
		t.Run(fmt.Sprint("at most ", rechecks, " kept for the recheck"), func(t *testing.T) {
			svc := &replay.Service{Memberships: store, Policies: store, Store: store, Projector: proj, Auditor: audit,
				Segments: 3, Concurrency: 4, RecheckAfter: -1, MaxListed: listed, MaxRechecks: rechecks, Logger: quiet}
			before := len(audit.Of(broker.DetailPolicyDrift))
			rep, err := svc.Verify(context.Background())
			if replay.ExitCode(err) != exitcode.Found {
				t.Fatalf("exit code %d (%v), want drift", replay.ExitCode(err), err)
			}
			if diff := cmp.Diff(all[:listed], rep.Findings); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
			if rep.Missing != len(users) || rep.MissingIndex != len(all)-len(users) || rep.Drift() != len(all) || !rep.Truncated {
				t.Errorf("counts missing %d, missingIndex %d, truncated %v; want %d, %d, true",
					rep.Missing, rep.MissingIndex, rep.Truncated, len(users), len(all)-len(users))
			}
			evs := audit.Of(broker.DetailPolicyDrift)[before:]
			if len(evs) != 1 {
				t.Fatalf("%d PolicyDrift events", len(evs))
			}
			d := evs[0].Detail.(broker.PolicyDriftDetail)
			if d.Missing != len(users) || !d.Truncated || len(d.Users) == 0 || len(d.Users) > listed || d.Users[0] != all[0].UserID {
				t.Errorf("PolicyDrift detail %+v", d)
			}
		})
	}
}
