// Command projector is the Lambda function on the membership table's stream:
// it keeps the policy table equal to what the membership table grants.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/credbroker/credbroker/internal/awsconfig"
	"github.com/credbroker/credbroker/internal/ddbstore"
	"github.com/credbroker/credbroker/internal/ebaudit"
	"github.com/credbroker/credbroker/internal/emf"
	"github.com/credbroker/credbroker/internal/logging"
	"github.com/credbroker/credbroker/internal/policy"
	"github.com/credbroker/credbroker/internal/projector"
)

func main() {
	cfg, err := projector.ConfigFromEnv(os.Getenv)
	log := logging.New(os.Stdout, cfg.LogLevel, "projector")
	if err != nil {
		log.Error("invalid configuration", "err", err)
		os.Exit(1)
	}
	aws, err := awsconfig.Load(context.Background())
	if err != nil {
		log.Error("load AWS configuration", "err", err)
		os.Exit(1)
	}
	store := &ddbstore.Store{Client: dynamodb.NewFromConfig(aws), MembershipTable: cfg.MembershipTable, PolicyTable: cfg.PolicyTable}
	h := &projector.Handler{
		Projector: &projector.Projector{
			Source: store, Store: store, Index: store, Checkpoints: store,
			Auditor:     ebaudit.New(ebaudit.Config{Client: eventbridge.NewFromConfig(aws), BusName: cfg.AuditBusName, Logger: log}),
			Compiler:    policy.Compiler{Partition: cfg.Partition},
			Logger:      log,
			Concurrency: cfg.Concurrency,
		},
		Metrics: &emf.Writer{W: os.Stdout},
	}
	lambda.Start(h.Handle)
}
