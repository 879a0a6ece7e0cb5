// Command projector is the Lambda function on the membership table's stream:
// it keeps the policy table equal to what the membership table grants.
package main

import (
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/credbroker/credbroker/internal/projector"
	"github.com/credbroker/credbroker/internal/wire"
)

func main() {
	fn := wire.Open("projector", projector.ConfigFromEnv, func(c projector.Config) slog.Level { return c.LogLevel })
	lambda.Start(wire.Projector(fn.Config, fn.AWS, fn.Log, os.Stdout).Handle)
}
