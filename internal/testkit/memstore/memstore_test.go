package memstore_test

import (
	"testing"

	"github.com/credbroker/credbroker/internal/testkit/storetest"
)

func TestConformance(t *testing.T) { storetest.Run(t, storetest.Memory) }
