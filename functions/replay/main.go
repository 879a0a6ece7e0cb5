// Command replay is the Lambda function that rebuilds, verifies or replays
// the policy table. It takes an event
// {"mode":"rebuild"|"verify"|"replay","since":"<RFC 3339, replay only>"}
// and answers with a JSON report; the daily schedule sends {"mode":"verify"}.
// It only wires; internal/replay does the work. Operators run the same
// operations from a terminal with `credbroker admin verify|rebuild|replay`.
package main

import (
	"log/slog"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/credbroker/credbroker/internal/replay"
	"github.com/credbroker/credbroker/internal/wire"
)

func main() {
	fn := wire.Open("replay", replay.ConfigFromEnv, func(c replay.Config) slog.Level { return c.LogLevel })
	lambda.Start(wire.Replay(fn.Config, fn.AWS, fn.Log).Invoke)
}
