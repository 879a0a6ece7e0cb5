package broker

import (
	"errors"
	"strings"
	"time"
)

// DenyListRecord is the revoker's deny list as its store keeps it: the
// list itself is the revoker's own JSON (the store never reads it), Version
// orders the conditional writes, and AllBefore, the fallbacks' cutoff
// (zero when there is none), is kept apart for the endpoint's cheap read.
type DenyListRecord struct {
	Version   int64
	List      []byte
	AllBefore time.Time
}

// ErrRolePolicyTooLarge is in the chain of an error of the base role's
// adapter when IAM refused a revocation policy as too large: the budget
// was reckoned wrong.
var ErrRolePolicyTooLarge = errors.New("revocation policy too large for the role")

// PolicySize is the length IAM counts for a policy document: every
// character but white space.
func PolicySize(doc string) int {
	return len(strings.Join(strings.Fields(doc), ""))
}
