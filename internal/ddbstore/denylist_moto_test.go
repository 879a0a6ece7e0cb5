//go:build integration

package ddbstore_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/ddbstore"
	"github.com/credbroker/credbroker/internal/revoker"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
)

// fullList is a deny list of n revoked tags as narrowings of users with
// Cognito subs leave them: each entry with its user, its cause (the
// change id) and the two resources a bucket removal names.
func fullList(n int) revoker.List {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	l := revoker.List{Version: 7, Generation: 5, Revoked: map[string]revoker.Cutoff{}}
	for i := range n {
		h := sha256.Sum256([]byte(fmt.Sprint(i)))
		x := hex.EncodeToString(h[:])
		u := x[:8] + "-" + x[8:12] + "-4" + x[13:16] + "-9" + x[17:20] + "-" + x[20:32]
		at := t0.Add(time.Duration(i) * time.Second)
		l.Revoked[broker.CutoffTag(u, time.Time{})] = revoker.Cutoff{Before: at.Add(4 * time.Second), Until: at.Add(time.Hour + time.Minute), User: u,
			Causes: []string{u + "/v1-" + x[32:48] + "/" + fmt.Sprint(1764504000000+i)}, Page: i / 400,
			Resources: []string{"arn:aws:s3:::genomics-raw", "arn:aws:s3:::genomics-raw/*"}}
	}
	return l
}

// The deny list's item holds as many entries as the role's pages at
// AWS's default quotas (its JSON alone would not fit DynamoDB's 400 KB);
// a list too large for the item is refused as such, before anything is
// written; and the item the previous revoker wrote (the JSON as a string)
// still reads.
func TestTheDenyListItemHoldsWhatTheRolesPagesHold(t *testing.T) {
	ctx := t.Context()
	tables := mototest.NewTables(t)
	store := &ddbstore.Store{Client: tables.DDB, PolicyTable: tables.Policy}
	full := fullList(revoker.Capacity(append([]int{10240 - 256}, repeatInt(6144-128, 9)...)))
	if b, _ := json.Marshal(full); len(b) < 400*1024 {
		t.Fatalf("setup: the list's JSON takes %d bytes, which an item holds: the case tests nothing", len(b))
	}
	if err := (revoker.RecordStore{Records: store}).SaveDenyList(ctx, 0, full); err != nil {
		t.Fatalf("a list of %d entries: %v", len(full.Revoked), err)
	}
	got, err := (revoker.RecordStore{Records: store}).LoadDenyList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(full, got); diff != "" {
		t.Errorf("read back (-saved +read):\n%s", diff)
	}

	if err := (revoker.RecordStore{Records: store}).SaveDenyList(ctx, full.Version, fullList(20000)); !errors.Is(err, broker.ErrItemTooLarge) {
		t.Errorf("a list of 20,000 entries: %v, want ErrItemTooLarge", err)
	}
	if got, err := (revoker.RecordStore{Records: store}).LoadDenyList(ctx); err != nil || got.Version != full.Version {
		t.Errorf("after the refused save: version %d (%v), want %d", got.Version, err, full.Version)
	}

	old := revoker.List{Version: 3, Users: map[string]revoker.Cutoff{"alice": {Before: time.Date(2026, 11, 30, 12, 0, 4, 0, time.UTC), Until: time.Date(2026, 11, 30, 12, 16, 4, 0, time.UTC)}}}
	b, _ := json.Marshal(old)
	item := mototest.Key("REVOCATIONS", "DENYLIST")
	item["version"] = &types.AttributeValueMemberN{Value: "3"}
	item["list"] = mototest.S(string(b))
	tables.Put(t, tables.Policy, item)
	if got, err := (revoker.RecordStore{Records: store}).LoadDenyList(ctx); err != nil || !cmp.Equal(old, got) {
		t.Errorf("the previous revoker's item reads as %+v, %v; want %+v", got, err, old)
	}
}

func repeatInt(n, times int) []int {
	out := make([]int, times)
	for i := range out {
		out[i] = n
	}
	return out
}
