//go:build !integration

package credentials_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/testkit/brokertest"
	"github.com/credbroker/credbroker/internal/testkit/memstore"
)

// tier is the fast tier's: the policy table in memory, an STS that mints
// random keys (a hand-written fake: it checks nothing of the session
// policy, as moto's STS does not either) and an auditor that records.
type tier struct{ audit *brokertest.Auditor }

func newEnv(testing.TB) *env {
	audit := &brokertest.Auditor{}
	return &env{
		store:   memstore.New(),
		issuer:  fakeSTS{},
		auditor: audit,
		tier:    tier{audit: audit},
	}
}

// issueWindow is zero: the fast tier keeps broker.IssueWindow.
func (tier) issueWindow() time.Duration { return 0 }

// events returns the details recorded so far: in memory an event is there
// as soon as Emit returned, so there is nothing to wait for.
func (tr tier) events(t testing.TB, n int) []json.RawMessage {
	t.Helper()
	var out []json.RawMessage
	for _, ev := range tr.audit.All() {
		b, err := json.Marshal(ev.Detail)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	if len(out) < n {
		t.Fatalf("%d audit events recorded, want %d", len(out), n)
	}
	return out[len(out)-n:]
}

type fakeSTS struct{}

func (fakeSTS) Issue(_ context.Context, r broker.IssueRequest) (broker.Credentials, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := "ASIA" + hex.EncodeToString(b[:])
	return broker.Credentials{AccessKeyID: id, SecretAccessKey: "secret-" + id, SessionToken: "token-" + id,
		Expiration: time.Now().Add(r.Duration).UTC().Truncate(time.Second)}, nil
}

// drain forgets nothing: events returns the newest ones.
func (tier) drain(testing.TB) {}
