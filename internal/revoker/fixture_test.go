package revoker_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/revoker"
)

// Every payload the revoker accepts has a sample in events/revoker, which
// `sam local invoke -e` takes too; each is decoded as the function does.
func TestTheRevokersSampleEventsAreUnderstood(t *testing.T) {
	read := func(name string) json.RawMessage {
		b, err := os.ReadFile(filepath.Join("..", "..", "events", "revoker", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	t.Run("a batch of the revocation queue round-trips and is applied as one revocation", func(t *testing.T) {
		raw := read("narrowings-batch.json")
		var batch events.SQSEvent
		if err := json.Unmarshal(raw, &batch); err != nil {
			t.Fatal(err)
		}
		again, err := json.Marshal(batch)
		if err != nil {
			t.Fatal(err)
		}
		var a, b any
		_ = json.Unmarshal(raw, &a)
		_ = json.Unmarshal(again, &b)
		if diff := cmp.Diff(a, b); diff != "" {
			t.Errorf("round trip (-sample +again):\n%s", diff)
		}
		w := newWorld()
		w.now = time.Date(2026, 11, 30, 12, 0, 1, 0, time.UTC)
		h := &revoker.Handler{Service: w.svc, Now: func() time.Time { return w.now }}
		out, err := h.Invoke(context.Background(), raw)
		if resp, ok := out.(events.SQSEventResponse); err != nil || !ok || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("Invoke = %+v, %v", out, err)
		}
		ev := w.revoked()
		if len(ev) != 1 || ev[0].UserIDs[0] != "3f8e2a5c-0b6d-4c1e-9a7f-2b8c4d6e8f01" || ev[0].Reason != broker.ReasonNarrowed {
			t.Errorf("announced %+v", ev)
		}
		// The sample user was never revoked before: the sessions of "no
		// cutoff" are the ones revoked.
		l, _ := w.store.LoadDenyList(context.Background())
		if _, ok := l.Revoked[broker.CutoffTag("3f8e2a5c-0b6d-4c1e-9a7f-2b8c4d6e8f01", time.Time{})]; !ok || len(l.Users) != 0 {
			t.Errorf("deny list %+v, want the user's first cutoff's tag revoked", l)
		}
	})
	for name, want := range map[string]string{"revoke.json": broker.ReasonOperator, "prune.json": broker.ReasonOperator} {
		t.Run(name+" is an operator's or the schedule's call", func(t *testing.T) {
			req, err := (&revoker.Handler{Now: func() time.Time { return t0 }}).Decode(read(name))
			if err != nil || req == nil || req.Reason != want {
				t.Errorf("Decode = %+v, %v", req, err)
			}
		})
	}
}
