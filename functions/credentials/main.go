// Command credentials is the Lambda function behind GET /auths/resources.
// It only wires: configuration from the environment, AWS clients, the
// verifier, the issuer and the audit emitter (internal/wire); then
// internal/credentials serves every request.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/credbroker/credbroker/internal/awsconfig"
	"github.com/credbroker/credbroker/internal/credentials"
	"github.com/credbroker/credbroker/internal/lambdaext"
	"github.com/credbroker/credbroker/internal/logging"
	"github.com/credbroker/credbroker/internal/wire"
)

func main() {
	cfg, err := credentials.ConfigFromEnv(os.Getenv)
	log := logging.New(os.Stdout, cfg.LogLevel, "credentials")
	if err != nil {
		// A broken configuration must not serve: exit before lambda.Start,
		// so the init fails and Lambda reports it.
		log.Error("invalid configuration", "err", err)
		os.Exit(1)
	}
	aws, err := awsconfig.Load(context.Background())
	if err != nil {
		log.Error("load AWS configuration", "err", err)
		os.Exit(1)
	}
	ep, err := wire.Credentials(cfg, aws, log, os.Stdout)
	if err != nil {
		log.Error("cannot start", "err", err)
		os.Exit(1)
	}
	// The audit events no answer waits for are sent after each answer.
	handle := lambdaext.FlushAfterInvoke(os.Getenv("AWS_LAMBDA_RUNTIME_API"), ep.Queue, ep.Service.Handle, log)
	log.Info("credential endpoint ready", "issuer", cfg.Issuer, "clients", len(cfg.ClientIDs),
		"sessionDuration", cfg.SessionDuration.String(), "cacheSize", cfg.CacheSize, "auditMode", cfg.AuditMode.String())
	lambda.Start(handle)
}
