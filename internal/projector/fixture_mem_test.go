//go:build !integration

package projector_test

import (
	"testing"

	"github.com/credbroker/credbroker/internal/testkit/memstore"
	"github.com/credbroker/credbroker/internal/testkit/memtable"
	"github.com/credbroker/credbroker/internal/testkit/storetest"
)

// newTables is the fast tier's: both tables in memory.
func newTables(testing.TB) (sourceTable, storetest.Store) {
	store := memstore.New()
	return memtable.New(store), store
}

// bucketByUpdate writes a bucket record as an UpdateItem would; in memory
// that is one INSERT record (moto emits two: fixture_moto_test.go).
func (f *fixture) bucketByUpdate(project, bucket, prefix string) {
	f.t.Helper()
	f.bucket(project, bucket, prefix)
}
