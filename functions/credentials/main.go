// Command credentials is the Lambda function behind GET /auths/resources.
// It only wires: configuration from the environment, AWS clients, the
// verifier, the issuer and the audit emitter (internal/wire); then
// internal/credentials serves every request.
package main

import (
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/credbroker/credbroker/internal/credentials"
	"github.com/credbroker/credbroker/internal/lambdaext"
	"github.com/credbroker/credbroker/internal/wire"
)

func main() {
	fn := wire.Open("credentials", credentials.ConfigFromEnv, func(c credentials.Config) slog.Level { return c.LogLevel })
	ep, err := wire.Credentials(fn.Config, fn.AWS, fn.Log, os.Stdout)
	fn.Check("cannot start", err)
	// The audit events no answer waits for are sent after each answer.
	handle := lambdaext.FlushAfterInvoke(os.Getenv("AWS_LAMBDA_RUNTIME_API"), ep.Queue, ep.Service.Handle, fn.Log)
	cfg := fn.Config
	fn.Log.Info("credential endpoint ready", "issuer", cfg.Issuer, "clients", len(cfg.ClientIDs),
		"sessionDuration", cfg.SessionDuration.String(), "cacheSize", cfg.CacheSize, "auditMode", cfg.AuditMode.String())
	lambda.Start(handle)
}
