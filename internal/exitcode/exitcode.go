// Package exitcode is the one table of exit statuses of every command here
// (README "Exit status"): the local stack, the replay tool, the load
// generator and credbroker.
package exitcode

import (
	"errors"

	"github.com/credbroker/credbroker/internal/broker"
)

const (
	// OK: all went well.
	OK = 0
	// Found: the command ran and found what it looks for (verify found
	// drift, the load generator saw an invariant broken).
	Found = 1
	// Usage: bad flags, arguments, configuration or input; nothing was
	// done (an invalid record refused, say).
	Usage = 2
	// Failure: the command could not finish, usually a dependency failing;
	// running it again may succeed.
	Failure = 3
	// Environment: this machine is not ready for the command (a port in
	// use, moto_server not installed).
	Environment = 4
)

// ErrEnvironment marks errors that call for Environment.
var ErrEnvironment = errors.New("environment not ready")

// Of maps an error to its exit status: nil is OK, ErrEnvironment in the
// chain is Environment, an Invalid kind is Usage, anything else Failure.
// Commands with a Found outcome check for it first.
func Of(err error) int {
	switch {
	case err == nil:
		return OK
	case errors.Is(err, ErrEnvironment):
		return Environment
	case broker.KindOf(err) == broker.Invalid:
		return Usage
	default:
		return Failure
	}
}
