// Command revoker is the Lambda function that cuts off credentials issued
// before a user's grants narrowed (docs/security.md "Revocation"). The audit bus's
// rule invokes it with each narrowing PolicyChanged event, an operator with
// {"action":"revoke","userId":"<sub>"}, and a schedule with
// {"action":"prune"}. It only wires; internal/revoker does the work.
package main

import (
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/credbroker/credbroker/internal/revoker"
	"github.com/credbroker/credbroker/internal/wire"
)

func main() {
	fn := wire.Open("revoker", revoker.ConfigFromEnv, func(c revoker.Config) slog.Level { return c.LogLevel })
	h, err := wire.Revoker(fn.Config, fn.AWS, fn.Log, os.Stdout)
	fn.Check("cannot start", err)
	lambda.Start(h.Invoke)
}
