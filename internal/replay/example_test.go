package replay_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/projector"
	"github.com/credbroker/credbroker/internal/replay"
	"github.com/credbroker/credbroker/internal/testkit/memstore"
)

// A policy table that missed the stream is found out by Verify and
// repaired by Rebuild. The wiring is functions/replay's, with the
// in-memory store in place of DynamoDB.
func Example() {
	store := memstore.New()
	store.PutSource(broker.SourceItem{PK: "USER#alice", SK: "PROJECT#p1", Role: broker.StringAttr("write")})
	store.PutSource(broker.SourceItem{PK: "USER#bob", SK: "PROJECT#p1"})
	store.PutSource(broker.SourceItem{PK: "PROJECT#p1", SK: "BUCKET#lake-raw"})

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	nop := broker.AuditorFunc(func(context.Context, ...broker.AuditEvent) error { return nil })
	proj := &projector.Projector{Source: store, Store: store, Index: store, Checkpoints: store, Auditor: nop, Logger: quiet}
	svc := &replay.Service{
		Memberships: store, Policies: store, Store: store, Projector: proj, Auditor: nop, Logger: quiet,
		RecheckAfter: -1, // nothing is in flight here
	}
	ctx := context.Background()

	rep, err := svc.Verify(ctx)
	var drift *replay.DriftError
	fmt.Println("drift:", errors.As(err, &drift), rep.Findings, "exit code", replay.ExitCode(err))

	rep, err = svc.Rebuild(ctx)
	fmt.Println("rebuild:", rep.Users, "users,", rep.Changed, "changed, err", err)

	rep, err = svc.Verify(ctx)
	fmt.Println("drift:", rep.Drift(), "exit code", replay.ExitCode(err))
	// Output:
	// drift: true [{missing alice } {missingIndex alice p1} {missing bob } {missingIndex bob p1}] exit code 1
	// rebuild: 2 users, 2 changed, err <nil>
	// drift: 0 exit code 0
}
