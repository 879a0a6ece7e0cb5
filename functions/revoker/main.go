// Command revoker is the Lambda function that cuts off credentials issued
// before a user's grants narrowed (docs/security.md "Revocation"). The audit bus's
// rule invokes it with each narrowing PolicyChanged event, an operator with
// {"action":"revoke","userId":"<sub>"}, and a schedule with
// {"action":"prune"}. It only wires; internal/revoke does the work.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/credbroker/credbroker/internal/awsconfig"
	"github.com/credbroker/credbroker/internal/logging"
	"github.com/credbroker/credbroker/internal/revoke"
	"github.com/credbroker/credbroker/internal/wire"
)

func main() {
	cfg, err := revoke.ConfigFromEnv(os.Getenv)
	log := logging.New(os.Stdout, cfg.LogLevel, "revoker")
	if err != nil {
		log.Error("invalid configuration", "err", err)
		os.Exit(1)
	}
	aws, err := awsconfig.Load(context.Background())
	if err != nil {
		log.Error("load AWS configuration", "err", err)
		os.Exit(1)
	}
	h, err := wire.Revoker(cfg, aws, log, os.Stdout)
	if err != nil {
		log.Error("cannot start", "err", err)
		os.Exit(1)
	}
	lambda.Start(h.Invoke)
}
