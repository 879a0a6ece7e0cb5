// Package stacktest starts a whole local stack (internal/localstack) in the
// test process, on the moto_server of the test run.
package stacktest

import (
	"cmp"
	"context"
	"testing"

	"github.com/credbroker/credbroker/internal/localstack"
	"github.com/credbroker/credbroker/internal/motoserver"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
)

// Start starts a local stack with o, filling in what o leaves out: the
// test run's moto, a free port for the endpoint, a temporary directory and
// resource names unique to the test ("<name>-<random>", name "local" by
// default). The stack stops when the test ends.
func Start(tb testing.TB, o localstack.Options) *localstack.Stack {
	tb.Helper()
	if o.Moto == "" {
		o.Moto = mototest.Endpoint(tb)
	}
	if o.Port == 0 {
		o.Port = FreePort(tb)
	}
	if o.Dir == "" {
		o.Dir = tb.TempDir()
	}
	o.Name = mototest.Name(tb, cmp.Or(o.Name, "local"))
	st, err := localstack.Start(context.Background(), o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(st.Stop)
	return st
}

// FreePort returns a loopback port nothing listens on now.
func FreePort(tb testing.TB) int {
	tb.Helper()
	port, err := motoserver.FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	return port
}
