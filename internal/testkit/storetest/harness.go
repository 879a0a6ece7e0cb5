package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/testkit/memstore"
)

// Backend names a way to build a Harness, for tests that run on both
// stores.
type Backend struct {
	Name string
	New  func(t *testing.T) Harness
}

// Backends are the in-memory store and, in the integration tier (build tag integration),
// DynamoDB in moto through ddbstore.
var Backends = []Backend{{"memstore", Memory}}

// Memory returns a harness on a fresh memstore.
func Memory(t *testing.T) Harness {
	s := memstore.New()
	return Harness{Store: s, PutSource: s.PutSource, DeleteSource: s.DeleteSource, Scanner: s,
		CorruptClaim: func(_ *testing.T, user string, how Corruption) { s.CorruptClaim(user, string(how)) },
		CorruptDocument: func(_ *testing.T, user string) {
			s.CorruptDocument(user, errors.New("unexpected end of JSON input"))
		},
		CheckedAt: func(t *testing.T, user string) time.Time {
			t.Helper()
			var at time.Time
			err := s.ScanPolicyTable(context.Background(), 0, 1,
				func(u string, _ bool, c time.Time) error {
					if u == user {
						at = c
					}
					return nil
				},
				func(string, broker.Member) error { return nil })
			if err != nil {
				t.Fatal(err)
			}
			return at
		}}
}
