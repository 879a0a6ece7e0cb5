//go:build integration

package ddbstore_test

import (
	"testing"

	"github.com/credbroker/credbroker/internal/testkit/storetest"
)

func TestConformanceOnMoto(t *testing.T) { storetest.Run(t, storetest.Moto) }
