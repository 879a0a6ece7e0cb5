package exitcode_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/exitcode"
)

func TestOfGivesEachOutcomeItsOwnStatus(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want int
	}{
		{"no error is OK", nil, exitcode.OK},
		{"an environment problem anywhere in the chain is Environment", fmt.Errorf("port 8080: %w", exitcode.ErrEnvironment), exitcode.Environment},
		{"invalid input is Usage", broker.Errorf(broker.Invalid, "op", "bad bucket"), exitcode.Usage},
		{"a wrapped invalid input is Usage", fmt.Errorf("put: %w", broker.Errorf(broker.Invalid, "op", "bad")), exitcode.Usage},
		{"an unusable sign-in is SignIn", broker.Errorf(broker.Unauthenticated, "op", "token file corrupt"), exitcode.SignIn},
		{"no grant is NoAccess", broker.Errorf(broker.NoAccess, "op", "no grant"), exitcode.NoAccess},
		{"a transient dependency failure is Failure", broker.Errorf(broker.Transient, "op", "throttled"), exitcode.Failure},
		{"an unclassified error is Failure", errors.New("boom"), exitcode.Failure},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := exitcode.Of(c.err); got != c.want {
				t.Errorf("Of(%v) = %d, want %d", c.err, got, c.want)
			}
		})
	}
	// One meaning per status: no two constants share a value.
	seen := map[int]bool{}
	for _, s := range []int{exitcode.OK, exitcode.Found, exitcode.Usage, exitcode.Failure, exitcode.Environment, exitcode.SignIn, exitcode.NoAccess} {
		if seen[s] {
			t.Errorf("status %d has two meanings", s)
		}
		seen[s] = true
	}
}
