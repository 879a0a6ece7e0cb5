package broker_test

import (
	"testing"

	"github.com/credbroker/credbroker/internal/broker"
)

func TestNarrowsWhenAGrantIsNoLongerCovered(t *testing.T) {
	g := func(bucket, prefix string, a broker.Access) broker.Grant {
		return broker.Grant{Bucket: bucket, Prefix: prefix, Access: a}
	}
	for _, tc := range []struct {
		name       string
		prev, next []broker.Grant
		want       bool
	}{
		{"nothing to nothing does not narrow", nil, nil, false},
		{"an added bucket does not narrow", []broker.Grant{g("lake", "", broker.Read)}, []broker.Grant{g("lake", "", broker.Read), g("pond", "", broker.Write)}, false},
		{"read raised to write does not narrow", []broker.Grant{g("lake", "", broker.Read)}, []broker.Grant{g("lake", "", broker.Write)}, false},
		{"a folder widened to its bucket does not narrow", []broker.Grant{g("lake", "runs/", broker.Write)}, []broker.Grant{g("lake", "", broker.Write)}, false},
		{"a folder replaced by a parent folder does not narrow", []broker.Grant{g("lake", "runs/2026/", broker.Read)}, []broker.Grant{g("lake", "runs/", broker.Read)}, false},
		{"write lowered to read narrows", []broker.Grant{g("lake", "", broker.Write)}, []broker.Grant{g("lake", "", broker.Read)}, true},
		{"a bucket narrowed to a folder narrows", []broker.Grant{g("lake", "", broker.Read)}, []broker.Grant{g("lake", "runs/", broker.Read)}, true},
		{"a removed bucket narrows", []broker.Grant{g("lake", "", broker.Read), g("pond", "", broker.Read)}, []broker.Grant{g("lake", "", broker.Read)}, true},
		{"a folder of another bucket does not cover", []broker.Grant{g("lake", "runs/", broker.Read)}, []broker.Grant{g("lakehouse", "", broker.Write)}, true},
		{"everything removed narrows", []broker.Grant{g("lake", "", broker.Read)}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := broker.Narrows(tc.prev, tc.next); got != tc.want {
				t.Errorf("Narrows = %v, want %v", got, tc.want)
			}
		})
	}
}
