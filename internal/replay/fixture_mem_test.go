//go:build !integration

package replay_test

import (
	"context"
	"encoding/json"
	"sort"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/ebaudit"
	"github.com/credbroker/credbroker/internal/replay"
	"github.com/credbroker/credbroker/internal/testkit/brokertest"
	"github.com/credbroker/credbroker/internal/testkit/memstore"
	"github.com/credbroker/credbroker/internal/testkit/memtable"
)

// newTables is the fast tier's: both tables in memory.
func newTables(testing.TB) (sourceTable, policyTable) {
	store := memstore.New()
	return memTable{memtable.New(store)}, memPolicy{store}
}

// memTable is the membership table in memory; its stream is memtable's.
type memTable struct{ *memtable.Table }

func (m memTable) Stream(testing.TB) replay.StreamReader { return m.Table.Stream() }

func (m memTable) NewPolicyTable(testing.TB) policyTable {
	store := memstore.New()
	m.Mirror(store)
	return memPolicy{store}
}

// AuditBus records what the service emits and reads it back as the bus
// would carry it: the detail as ebaudit marshals it for EventBridge.
func (memTable) AuditBus(tb testing.TB) (broker.Auditor, func(int) []sentEvent) {
	a := &brokertest.Auditor{}
	read := 0
	return a, func(int) []sentEvent {
		tb.Helper()
		all := a.All()
		var out []sentEvent
		for _, e := range all[read:] {
			detail, err := ebaudit.MarshalDetail(e.Detail)
			if err != nil {
				tb.Fatalf("%s detail: %v", e.DetailType, err)
			}
			out = append(out, sentEvent{Source: e.Source, DetailType: e.DetailType, Detail: detail})
		}
		read = len(all)
		return out
	}
}

// memPolicy is a policy table in memory, with the membership table that
// memtable mirrors into the same store.
type memPolicy struct{ s *memstore.Store }

func (m memPolicy) Store() store        { return m.s }
func (m memPolicy) Sizes() replay.Sizer { return nil }

// decodeDoc decodes a document as ddbstore does.
func decodeDoc(doc string) (storedDoc, error) {
	var d storedDoc
	err := json.Unmarshal([]byte(doc), &d)
	return d, err
}

func (m memPolicy) PutItem(tb testing.TB, user, version, doc string, claim int64) {
	tb.Helper()
	d, err := decodeDoc(doc)
	if err != nil {
		tb.Fatalf("document of %s: %v", user, err)
	}
	m.s.PutPolicyItem(broker.UserPolicy{UserID: user, Version: version, Grants: d.Grants, Sets: d.Sets, ByProject: d.ByProject, Expires: d.Expires},
		claim, stampedLongAgo)
}

// SetDoc stores a document that does not decode as ddbstore reads one.
func (m memPolicy) SetDoc(_ testing.TB, user, version, doc string) {
	d, err := decodeDoc(doc)
	if err != nil {
		m.s.CorruptDocument(user, err)
		return
	}
	m.s.EditPolicy(user, func(p *broker.UserPolicy) {
		if version != "" {
			p.Version = version
		}
		p.Grants, p.Sets, p.ByProject, p.Expires = d.Grants, d.Sets, d.ByProject, d.Expires
	})
}

func (m memPolicy) Doc(tb testing.TB, user string) string {
	tb.Helper()
	p, err := m.s.GetPolicy(context.Background(), user)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := json.Marshal(storedDoc{Grants: p.Grants, Sets: p.Sets, ByProject: p.ByProject, Expires: p.Expires})
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func (m memPolicy) DeleteItem(_ testing.TB, user string) { m.s.DeletePolicyItem(user) }

func (m memPolicy) PutEntry(tb testing.TB, project, user string, token int64) {
	tb.Helper()
	if err := m.s.PutMembers(context.Background(), user, []string{project}, token); err != nil {
		tb.Fatal(err)
	}
}

func (m memPolicy) DeleteEntry(tb testing.TB, project, user string) {
	tb.Helper()
	ctx := context.Background()
	toks, err := m.s.MemberTokens(ctx, user, []string{project})
	if err != nil {
		tb.Fatal(err)
	}
	if tok, ok := toks[project]; ok {
		if _, err := m.s.RemoveMember(ctx, project, user, tok); err != nil {
			tb.Fatal(err)
		}
	}
}

func (m memPolicy) Snapshot(tb testing.TB) snapshot {
	tb.Helper()
	ctx := context.Background()
	out := snapshot{Versions: map[string]string{}}
	err := m.s.ScanPolicyTable(ctx, 0, 1,
		func(user string, _ bool, _ time.Time) error {
			p, err := m.s.GetPolicy(ctx, user)
			out.Versions[user] = p.Version
			return err
		},
		func(project string, mem broker.Member) error {
			out.Index = append(out.Index, project+"/"+mem.UserID)
			return nil
		})
	if err != nil {
		tb.Fatal(err)
	}
	sort.Strings(out.Index)
	return out
}
