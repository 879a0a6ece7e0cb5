package memstore_test

import (
	"testing"

	"github.com/credbroker/credbroker/internal/memstore"
	"github.com/credbroker/credbroker/internal/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		s := memstore.New()
		return storetest.Harness{Store: s, PutSource: s.PutSource, DeleteSource: s.DeleteSource, Scanner: s}
	})
}
