// Command projector is the Lambda function on the membership table's stream:
// it keeps the policy table equal to what the membership table grants.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/credbroker/credbroker/internal/awsconfig"
	"github.com/credbroker/credbroker/internal/logging"
	"github.com/credbroker/credbroker/internal/projector"
	"github.com/credbroker/credbroker/internal/wire"
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
	lambda.Start(wire.Projector(cfg, aws, log, os.Stdout).Handle)
}
