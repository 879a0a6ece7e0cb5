package admin

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/cli"
	"github.com/credbroker/credbroker/internal/exitcode"
	"github.com/credbroker/credbroker/internal/policy"
)

// fakeRecords is a hand-written stand-in for the membership table, with
// function fields for the calls a test expects; it serves the fault moto
// cannot (a record rewritten between the read and the delete). Any other
// call panics on the nil records.
type fakeRecords struct {
	records
	get      func(pk, sk string) (broker.SourceItem, bool, error)
	deleteIf func(it broker.SourceItem) (bool, error)
	deleted  []string
}

func (f *fakeRecords) GetSourceItem(_ context.Context, pk, sk string) (broker.SourceItem, bool, error) {
	return f.get(pk, sk)
}

func (f *fakeRecords) DeleteSourceItemIf(_ context.Context, it broker.SourceItem) (bool, error) {
	f.deleted = append(f.deleted, it.PK+" / "+it.SK)
	return f.deleteIf(it)
}

// holding is a table holding it alone.
func holding(it broker.SourceItem) func(pk, sk string) (broker.SourceItem, bool, error) {
	return func(pk, sk string) (broker.SourceItem, bool, error) {
		return it, pk == it.PK && sk == it.SK, nil
	}
}

func TestRejectedDeleteRemovesOnlyARecordThatBreaksTheRules(t *testing.T) {
	badRole := broker.SourceItem{PK: "USER#alice-1", SK: "PROJECT#p1", Role: broker.StringAttr("owner")}
	badKey := broker.SourceItem{PK: "USER#x", SK: "PROJECT#p1"}
	member := broker.SourceItem{PK: "USER#alice-1", SK: "PROJECT#p1", Role: broker.StringAttr("write")}
	bucket := broker.SourceItem{PK: "PROJECT#p1", SK: "BUCKET#demo-raw", Prefix: broker.StringAttr("runs/")}
	other := broker.SourceItem{PK: "USER#alice-1", SK: "PROFILE"}
	deletes := func(broker.SourceItem) (bool, error) { return true, nil }
	tests := []struct {
		name     string
		table    broker.SourceItem
		deleteIf func(broker.SourceItem) (bool, error)
		pk, sk   string
		dry      bool
		code     int
		says     string // on stdout when it succeeds, in the error otherwise
		deletes  bool
	}{
		{"a role no record may have is deleted", badRole, deletes, badRole.PK, badRole.SK, false, exitcode.OK,
			`deleted: a record that breaks the rules (membership USER#alice-1/PROJECT#p1: role "owner" is not "read" or "write") (USER#alice-1 / PROJECT#p1)`, true},
		{"a key no validated delete can name is deleted", badKey, deletes, badKey.PK, badKey.SK, false, exitcode.OK, "deleted: a record that breaks the rules", true},
		{"a dry run deletes nothing", badRole, nil, badRole.PK, badRole.SK, true, exitcode.OK, "would delete: a record that breaks the rules", false},
		{"a valid membership is refused with the delete that takes it", member, nil, member.PK, member.SK, false, exitcode.Usage,
			"follows the rules (user alice-1 in project p1, role write); delete it with `credbroker admin member delete --user alice-1 --project p1 --stack s.json`", false},
		{"a valid bucket record is refused with the delete that takes it", bucket, nil, bucket.PK, bucket.SK, false, exitcode.Usage,
			"delete it with `credbroker admin bucket delete --project p1 --bucket demo-raw --stack s.json`", false},
		{"a record the broker does not read is refused", other, nil, other.PK, other.SK, false, exitcode.Usage, "the broker never reads it", false},
		{"no record is nothing to do", badRole, nil, "USER#bob-2", "PROJECT#p1", false, exitcode.OK, "not found, nothing deleted (USER#bob-2 / PROJECT#p1)", false},
		{"a record rewritten since it was read is kept", badRole,
			func(broker.SourceItem) (bool, error) {
				return true, broker.Errorf(broker.Conflict, "delete", "changed")
			}, badRole.PK, badRole.SK, false, exitcode.Failure,
			"changed since it was read; run `credbroker admin rejected --stack s.json` again", true},
		{"a record deleted since it was read is not found", badRole,
			func(broker.SourceItem) (bool, error) { return false, nil }, badRole.PK, badRole.SK, false, exitcode.OK, "not found, nothing deleted", true},
		{"a failing table fails", badRole,
			func(broker.SourceItem) (bool, error) {
				return false, broker.Wrap(broker.Transient, "delete", errors.New("throttled"))
			}, badRole.PK, badRole.SK, false, exitcode.Failure,
			"throttled", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &fakeRecords{get: holding(tt.table), deleteIf: tt.deleteIf}
			a := &admin{store: store, compiler: policy.Compiler{Partition: "aws"}}
			var stdout bytes.Buffer
			err := a.deleteRejected(t.Context(), &cli.Env{Stdout: &stdout}, tt.pk, tt.sk, " --stack s.json", tt.dry)
			if code := cli.ExitCode(err); code != tt.code {
				t.Fatalf("exit %d (%v), want %d", code, err, tt.code)
			}
			said := stdout.String()
			if err != nil {
				said = cli.Message(err)
			}
			if !strings.Contains(said, tt.says) {
				t.Errorf("said %q, want %q", said, tt.says)
			}
			if (len(store.deleted) > 0) != tt.deletes {
				t.Errorf("deletes %v, want a delete: %v", store.deleted, tt.deletes)
			}
		})
	}
}
