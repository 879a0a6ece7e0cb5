package credentials_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/credentials"
	"github.com/credbroker/credbroker/internal/ebaudit"
)

// faultyPutEvents is a hand-written PutEventsAPI of a bus that refuses
// every entry with a retryable error, which moto cannot be made to do.
type faultyPutEvents struct{ calls atomic.Int64 }

func (f *faultyPutEvents) PutEvents(_ context.Context, in *eventbridge.PutEventsInput, _ ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	f.calls.Add(1)
	out := &eventbridge.PutEventsOutput{FailedEntryCount: int32(len(in.Entries))}
	for range in.Entries {
		out.Entries = append(out.Entries, ebtypes.PutEventsResultEntry{ErrorCode: aws.String("InternalFailure"), ErrorMessage: aws.String("try again")})
	}
	return out, nil
}

func failingAuditor(f *faultyPutEvents) *ebaudit.Emitter {
	return ebaudit.New(ebaudit.Config{
		Client: f, BusName: "audit", MaxAttempts: 2, Logger: discard(),
		Sleep: func(context.Context, time.Duration) error { return nil },
	})
}

func TestAuditModes(t *testing.T) {
	e := newEnv(t)
	pool := newLocalPool(t)
	const user = "708192a3-b4c5-4d0e-8f12-6d7e8f901234"
	e.seed(t, user, map[string][]broker.Place{"p": places("genomics-raw:write")})
	bearer := "Bearer " + pool.token(t, user)

	t.Run("fail-closed withholds credentials the bus did not record", func(t *testing.T) {
		e.resetCounts()
		bus := &faultyPutEvents{}
		cache := credentials.NewCache(16, nil)
		svc := e.service(pool.verifier, func(s *credentials.Service) {
			s.Auditor, s.Cache, s.AuditMode = failingAuditor(bus), cache, credentials.FailClosed
		})
		wantUnavailable(t, get(t, svc, "/auths/resources", bearer))
		if n := e.issue.Load(); n != 1 {
			t.Fatalf("%d AssumeRole calls, want 1", n)
		}
		if bus.calls.Load() == 0 {
			t.Error("the issuance was never offered to the bus")
		}
		// The withheld set was not cached: once the bus is back, the next
		// request assumes the role again rather than serving it.
		if n := cache.Len(); n != 0 {
			t.Errorf("%d withheld sets cached", n)
		}
		svc.Auditor = e.auditor
		get(t, svc, "/auths/resources", bearer).answer(t)
		if n := e.issue.Load(); n != 2 {
			t.Errorf("%d AssumeRole calls after the bus recovered, want 2", n)
		}
		e.events(t, 1)
	})

	t.Run("best-effort answers 200 when the bus fails", func(t *testing.T) {
		bus := &faultyPutEvents{}
		svc := e.service(pool.verifier, func(s *credentials.Service) { s.Auditor, s.AuditMode = failingAuditor(bus), credentials.BestEffort })
		a := get(t, svc, "/auths/resources", bearer).answer(t)
		if len(a.CredentialSets) != 1 || a.CredentialSets[0].AccessKeyID == "" {
			t.Errorf("answer without credentials: %+v", a)
		}
		if bus.calls.Load() == 0 {
			t.Error("the issuance was never offered to the bus")
		}
	})

	for _, mode := range []credentials.AuditMode{credentials.FailClosed, credentials.BestEffort} {
		t.Run("denials stand when the bus fails in "+mode.String()+" mode", func(t *testing.T) {
			e.resetCounts()
			bus := &faultyPutEvents{}
			svc := e.service(pool.verifier, func(s *credentials.Service) { s.Auditor, s.AuditMode = failingAuditor(bus), mode })
			r := get(t, svc, "/auths/resources?project=elsewhere", bearer)
			if r.status != 403 || r.errorBody(t).Error != "no_access" {
				t.Errorf("status %d body %s, want 403 no_access", r.status, r.body)
			}
			if bus.calls.Load() == 0 {
				t.Error("the denial was never offered to the bus")
			}
		})
	}
}
