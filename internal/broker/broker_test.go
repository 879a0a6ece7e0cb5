package broker_test

import (
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
)

func TestNarrowsWhenAGrantIsNoLongerCovered(t *testing.T) {
	g := func(bucket, prefix string, a broker.Access) broker.Grant {
		return broker.Grant{Bucket: bucket, Prefix: prefix, Access: a}
	}
	t1, t2 := time.Date(2026, 12, 31, 18, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	until := func(g broker.Grant, t time.Time) broker.Grant { g.ExpiresAt = t; return g }
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
		{"an expiry given to an unbounded grant narrows", []broker.Grant{g("lake", "", broker.Read)}, []broker.Grant{until(g("lake", "", broker.Read), t2)}, true},
		{"an earlier expiry narrows", []broker.Grant{until(g("lake", "", broker.Read), t2)}, []broker.Grant{until(g("lake", "", broker.Read), t1)}, true},
		{"a later expiry does not narrow", []broker.Grant{until(g("lake", "", broker.Read), t1)}, []broker.Grant{until(g("lake", "", broker.Read), t2)}, false},
		{"a removed expiry does not narrow", []broker.Grant{until(g("lake", "", broker.Read), t1)}, []broker.Grant{g("lake", "", broker.Read)}, false},
		{"a wider grant that ends sooner does not cover", []broker.Grant{g("lake", "runs/", broker.Read)}, []broker.Grant{until(g("lake", "", broker.Write), t2)}, true},
		{"a wider unbounded grant covers a bounded one", []broker.Grant{until(g("lake", "runs/", broker.Read), t1)}, []broker.Grant{g("lake", "", broker.Write)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := broker.Narrows(tc.prev, tc.next); got != tc.want {
				t.Errorf("Narrows = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestExpiryUnionAndLiveness(t *testing.T) {
	t1, t2 := time.Date(2026, 12, 31, 18, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	var none time.Time
	for _, tc := range []struct {
		name       string
		a, b, want time.Time
	}{
		{"two bounded give the later", t1, t2, t2},
		{"the order does not matter", t2, t1, t2},
		{"an unbounded one removes the bound", t1, none, none},
		{"two unbounded stay unbounded", none, none, none},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := broker.LaterExpiry(tc.a, tc.b); !got.Equal(tc.want) {
				t.Errorf("LaterExpiry = %v, want %v", got, tc.want)
			}
		})
	}
	g := broker.Grant{Bucket: "lake", Access: broker.Read, ExpiresAt: t1}
	if !g.LiveAt(t1.Add(-time.Second)) || g.LiveAt(t1) || g.LiveAt(t1.Add(time.Second)) {
		t.Error("a bounded grant must be live before its expiry only")
	}
	if !(broker.Grant{Bucket: "lake"}).LiveAt(t2.AddDate(100, 0, 0)) {
		t.Error("an unbounded grant must never end")
	}
	if got := broker.LiveGrants([]broker.Grant{g, {Bucket: "pond"}}, t1); len(got) != 1 || got[0].Bucket != "pond" {
		t.Errorf("LiveGrants at the expiry = %v, want only the unbounded grant", got)
	}
	p := broker.UserPolicy{Expires: map[string]time.Time{"a": t1, "b": t2}}
	for _, tc := range []struct {
		at, want time.Time
	}{{t1.Add(-time.Hour), t1}, {t1, t2}, {t2, none}} {
		if got := p.NextExpiry(tc.at); !got.Equal(tc.want) {
			t.Errorf("NextExpiry(%v) = %v, want %v", tc.at, got, tc.want)
		}
	}
}
