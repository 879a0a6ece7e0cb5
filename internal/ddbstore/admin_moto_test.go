//go:build integration

package ddbstore_test

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/ddbstore"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
)

// DeleteSourceItemIf deletes a record only while it is as read: the
// operators' delete of a record that breaks the rules must not remove one
// rewritten since, valid or not.
func TestDeleteSourceItemIfDeletesOnlyTheRecordAsRead(t *testing.T) {
	ctx := t.Context()
	tables := mototest.NewTables(t)
	store := &ddbstore.Store{Client: tables.DDB, MembershipTable: tables.Membership}
	num := &types.AttributeValueMemberN{Value: "1"}
	put := func(pk, sk string, attrs map[string]types.AttributeValue) broker.SourceItem {
		item := map[string]types.AttributeValue{"pk": mototest.S(pk), "sk": mototest.S(sk)}
		for k, v := range attrs {
			item[k] = v
		}
		tables.Put(t, tables.Membership, item)
		it, found, err := store.GetSourceItem(ctx, pk, sk)
		if err != nil || !found {
			t.Fatalf("read back %s / %s: found %v, %v", pk, sk, found, err)
		}
		return it
	}
	tests := []struct {
		name    string
		record  map[string]types.AttributeValue
		then    map[string]types.AttributeValue // rewritten to this between read and delete; nil: not
		gone    bool                            // deleted before the delete
		found   bool
		kind    broker.Kind
		deleted bool
	}{
		{"a record as read is deleted", map[string]types.AttributeValue{"role": mototest.S("admin")}, nil, false, true, broker.Other, true},
		{"a record of another type as read is deleted", map[string]types.AttributeValue{"role": num}, nil, false, true, broker.Other, true},
		{"a record without attributes as read is deleted", nil, nil, false, true, broker.Other, true},
		{"a record rewritten with another role is kept", map[string]types.AttributeValue{"role": mototest.S("admin")},
			map[string]types.AttributeValue{"role": mototest.S("write")}, false, true, broker.Conflict, false},
		{"a record given an attribute it lacked is kept", map[string]types.AttributeValue{"role": num},
			map[string]types.AttributeValue{"role": num, "expiresAt": mototest.S("2099-01-01T00:00:00Z")}, false, true, broker.Conflict, false},
		{"a record deleted in between is not found", map[string]types.AttributeValue{"role": mototest.S("admin")}, nil, true, false, broker.Other, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pk, sk := "USER#u"+string(rune('a'+i)), "PROJECT#p1"
			it := put(pk, sk, tt.record)
			switch {
			case tt.then != nil:
				put(pk, sk, tt.then)
			case tt.gone:
				tables.Delete(t, tables.Membership, pk, sk)
			}
			found, err := store.DeleteSourceItemIf(ctx, it)
			if found != tt.found || broker.KindOf(err) != tt.kind || (tt.kind == broker.Other && err != nil) {
				t.Fatalf("found %v, err %v; want found %v, kind %v", found, err, tt.found, tt.kind)
			}
			_, still, err := store.GetSourceItem(ctx, pk, sk)
			if err != nil || still != (!tt.deleted && !tt.gone) {
				t.Errorf("after the delete the record is there: %v (%v); want deleted %v", still, err, tt.deleted)
			}
		})
	}
}
