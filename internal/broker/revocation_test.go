package broker_test

import (
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/revoke"
	"github.com/credbroker/credbroker/internal/testkit/iameval"
)

var (
	allow   = mustParse(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}`)
	session = mustParse(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::lake/*"}]}`)
)

func mustParse(doc string) iameval.Policy {
	p, err := iameval.Parse(doc)
	if err != nil {
		panic(err)
	}
	return p
}

func works(t *rapid.T, deny, user string, stamped time.Time) bool {
	role := []iameval.Policy{allow}
	if deny != "" {
		p, err := iameval.Parse(deny)
		if err != nil {
			t.Fatalf("deny does not parse: %v", err)
		}
		role = append(role, p)
	}
	return iameval.Session(role, session, iameval.Request{Action: "s3:GetObject", Resource: "arn:aws:s3:::lake/k",
		Context: map[string]string{"aws:SourceIdentity": user, "aws:TokenIssueTime": stamped.UTC().Format(time.RFC3339)}})
}

// A request reads the user's item just before a narrowing commits, and
// mints just after: whatever the timing within the endpoint's issue window
// and whatever the clocks' differences within the margin, the session it
// gets is denied by the revocation the commit causes. A request that mints
// after waiting for the cutoff, as the endpoint does, is not.
func TestPropertyARemovalRacingARequestLeavesNoSessionWithTheOldPolicy(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ms := func(label string, lo, hi time.Duration) time.Duration {
			return time.Duration(rapid.Int64Range(int64(lo/time.Millisecond), int64(hi/time.Millisecond)).Draw(t, label)) * time.Millisecond
		}
		// Each clock is off real time by less than half the margin, so any
		// two differ by less than the margin.
		half := broker.ClockMargin/2 - time.Millisecond
		projectorOff, endpointOff, stsOff := ms("projector", -half, half), ms("endpoint", -half, half), ms("sts", -half, half)
		base := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC).Add(ms("base", 0, time.Hour))

		// The old session: the projector reads its clock at started, its
		// write lands within the commit window; the request read the item
		// just before it landed, and STS stamps the session within the
		// issue window of the read.
		started := base
		commit := started.Add(ms("write latency", 0, broker.CommitWindow))
		read := commit.Add(-ms("read before the write landed", 1, broker.IssueWindow))
		stamped := read.Add(ms("issue latency", 0, broker.IssueWindow)).Add(stsOff)
		cutoff := broker.RevokeBefore(started.Add(projectorOff))

		_, deny, _ := revoke.Apply(revoke.List{}, []revoke.Entry{{UserID: "alice", Before: cutoff}}, commit, revoke.Limits{MaxSession: time.Hour, Budget: 10000})
		if works(t, deny, "alice", stamped.Truncate(time.Second)) {
			t.Fatalf("old session stamped %v survives the cutoff %v (commit %v)", stamped, cutoff, commit)
		}

		// The next request: the endpoint waits until its clock passes the
		// cutoff plus the margin, then STS stamps the new session.
		ready := cutoff.Add(broker.ClockMargin).Add(-endpointOff) // real time the endpoint's clock says so
		fresh := ready.Add(ms("latency of the new mint", 0, broker.IssueWindow)).Add(stsOff)
		if !works(t, deny, "alice", fresh.Truncate(time.Second)) {
			t.Fatalf("new session stamped %v denied by the cutoff %v", fresh, cutoff)
		}
		if !works(t, deny, "bob", stamped.Truncate(time.Second)) {
			t.Fatal("another user's session is denied")
		}
	})
}

func TestRevokeBeforeIsAWholeSecondAfterTheWindowsAndMargin(t *testing.T) {
	c := time.Date(2026, 11, 30, 12, 0, 0, 300_000_000, time.UTC)
	if got, want := broker.RevokeBefore(c), time.Date(2026, 11, 30, 12, 0, 5, 0, time.UTC); !got.Equal(want) { // 4.3 s later, rounded up
		t.Errorf("RevokeBefore(%v) = %v, want %v", c, got, want)
	}
	whole := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	if got := broker.RevokeBefore(whole); !got.Equal(whole.Add(broker.CommitWindow + broker.IssueWindow + broker.ClockMargin)) {
		t.Errorf("RevokeBefore(%v) = %v", whole, got)
	}
}
