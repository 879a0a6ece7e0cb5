// Package exitcode is the one table of exit statuses of every command here
// (docs/development.md "Exit status"): credbroker, the local stack, the load
// generator, the smoke check and withmoto. Each status has one meaning, and
// Of is the one mapping from an error to a status.
package exitcode

import (
	"errors"

	"github.com/credbroker/credbroker/internal/broker"
)

const (
	// OK: all went well.
	OK = 0
	// Found: the command ran and found what it looks for (verify found
	// drift, rejected listed records, the load generator saw an invariant
	// broken).
	Found = 1
	// Usage: bad flags, arguments, configuration or input; nothing was
	// done (an invalid record refused, say).
	Usage = 2
	// Failure: the command could not finish, usually a dependency failing;
	// running it again may succeed.
	Failure = 3
	// Environment: this machine is not ready for the command (a port in
	// use, moto_server not installed, a stack already running).
	Environment = 4
	// SignIn: the user is not signed in, or the session cannot be used (no
	// token file, a corrupt one, a refresh refused): `credbroker login`.
	SignIn = 5
	// NoAccess: the signed-in user is granted nothing for what was asked.
	NoAccess = 6
)

// ErrEnvironment marks errors that call for Environment.
var ErrEnvironment = errors.New("environment not ready")

// Of maps an error to its exit status: nil is OK, ErrEnvironment in the
// chain is Environment, and the error's broker.Kind decides the rest
// (Invalid is Usage, Unauthenticated SignIn, NoAccess NoAccess; anything
// else, transient or not, Failure). Commands with a Found outcome check for
// it first.
func Of(err error) int {
	switch {
	case err == nil:
		return OK
	case errors.Is(err, ErrEnvironment):
		return Environment
	}
	switch broker.KindOf(err) {
	case broker.Invalid:
		return Usage
	case broker.Unauthenticated:
		return SignIn
	case broker.NoAccess:
		return NoAccess
	default:
		return Failure
	}
}
