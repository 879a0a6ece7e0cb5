package ebaudit_test

import (
	"context"
	"log"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/ebaudit"
)

func ExampleEmitter() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Print(err)
		return
	}
	var auditor broker.Auditor = ebaudit.New(ebaudit.Config{
		Client:  eventbridge.NewFromConfig(cfg),
		BusName: os.Getenv("EVENT_BUS_NAME"),
	})
	err = auditor.Emit(ctx, broker.AuditEvent{
		Source:     broker.SourceProjector,
		DetailType: broker.DetailProjectionRejected,
		Time:       time.Now(),
		Detail: broker.ProjectionRejectedDetail{
			SchemaVersion: broker.AuditSchemaVersion,
			PK:            "PROJECT#genomics", SK: "BUCKET#Not_A_Bucket", Reason: "invalid bucket name",
		},
	})
	if broker.IsTransient(err) {
		// Not every event was accepted: fail the batch so Lambda retries it.
		log.Print(err)
	}
}
