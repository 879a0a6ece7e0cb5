package wire

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/credbroker/credbroker/internal/awsconfig"
	"github.com/credbroker/credbroker/internal/logging"
)

// Function is the opening every Lambda main shares: its configuration,
// its JSON logger and the AWS SDK's configuration.
type Function[C any] struct {
	Config C
	Log    *slog.Logger
	AWS    aws.Config
}

// Open reads a function's configuration from the environment (read is
// its ConfigFromEnv, level its log level), makes its logger on stdout and
// loads the AWS configuration. A broken configuration must not serve: on
// any failure it logs why and exits 1, before lambda.Start, so that the
// init fails and Lambda reports it.
func Open[C any](name string, read func(getenv func(string) string) (C, error), level func(C) slog.Level) Function[C] {
	cfg, err := read(os.Getenv)
	f := Function[C]{Config: cfg, Log: logging.New(os.Stdout, level(cfg), name)}
	f.Check("invalid configuration", err)
	f.AWS, err = awsconfig.Load(context.Background())
	f.Check("load AWS configuration", err)
	return f
}

// Check logs msg and exits 1 when err is not nil: the function cannot
// start.
func (f Function[C]) Check(msg string, err error) {
	if err != nil {
		f.Log.Error(msg, "err", err)
		os.Exit(1)
	}
}
