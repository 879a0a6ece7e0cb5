package projector_test

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
)

func TestStreamRecordsBecomePolicyItems(t *testing.T) {
	f := newFixture(t)
	f.member("alice", "p1", "write")
	f.member("bob", "p1", "")
	f.bucket("p1", "lake-raw", "")
	f.bucketByUpdate("p1", "lake-curated", "team-a") // moto: two INSERT records
	f.member("alice", "p2", "read")
	f.bucket("p2", "shared-exports", "p2/")

	recs := f.streamRecords()
	if resp := f.deliver(recs); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures: %v", seqs(resp))
	}
	f.assertConverged("alice", "bob")
	if diff := cmp.Diff([]string{"lake-curated/team-a/:write", "lake-raw/:write", "shared-exports/p2/:read"}, places(f.item("alice"))); diff != "" {
		t.Errorf("alice (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"lake-curated/team-a/:read", "lake-raw/:read"}, places(f.item("bob"))); diff != "" {
		t.Errorf("bob (-want +got):\n%s", diff)
	}

	// Membership removed, bucket moved from p1 to p2: only the new records.
	f.leave("bob", "p1")
	f.unbucket("p1", "lake-raw")
	f.bucket("p2", "lake-raw", "")
	all := f.streamRecords()
	if resp := f.deliver(all[len(recs):]); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures: %v", seqs(resp))
	}
	f.assertConverged("alice", "bob")
	if got := f.item("bob"); !got.Empty() {
		t.Errorf("bob left p1 but still has %v", places(got))
	}
	if diff := cmp.Diff([]string{"lake-curated/team-a/:write", "lake-raw/:read", "shared-exports/p2/:read"}, places(f.item("alice"))); diff != "" {
		t.Errorf("alice (-want +got):\n%s", diff)
	}

	// Every committed change is on the audit trail, with what it added and removed.
	var bobChanges []broker.PolicyChangedDetail
	for _, e := range f.audit.Of(broker.DetailPolicyChanged) {
		if d := e.Detail.(broker.PolicyChangedDetail); d.UserID == "bob" {
			bobChanges = append(bobChanges, d)
		}
	}
	if len(bobChanges) != 2 {
		t.Fatalf("bob: %d PolicyChanged events, want 2 (granted, revoked)", len(bobChanges))
	}
	last := bobChanges[1]
	if len(last.Added) != 0 || len(last.Removed) != 2 || last.PolicyVersion != f.item("bob").Version || last.PreviousVersion != bobChanges[0].PolicyVersion {
		t.Errorf("revocation event = %+v", last)
	}
	if len(last.Causes) == 0 {
		t.Error("revocation event names no stream event")
	}
}

func TestDuplicatedAndReorderedDeliveryGivesTheSameItems(t *testing.T) {
	f := newFixture(t)
	f.member("alice", "p1", "write")
	f.member("carol", "p1", "read")
	f.bucket("p1", "lake-raw", "")
	f.bucket("p1", "lake-raw", "in/") // MODIFY
	f.member("carol", "p2", "write")
	f.bucket("p2", "exports", "")
	f.leave("alice", "p1")
	f.member("alice", "p1", "read")
	f.unbucket("p2", "exports")
	recs := f.streamRecords()

	f.deliver(recs)
	f.assertConverged("alice", "carol")
	want := map[string]string{"alice": f.item("alice").Version, "carol": f.item("carol").Version}
	changes := len(f.audit.Of(broker.DetailPolicyChanged))

	rng := rand.New(rand.NewPCG(3, 4))
	reversed := slices.Clone(recs)
	slices.Reverse(reversed)
	shuffled := slices.Clone(recs)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for name, batch := range map[string][]events.DynamoDBEventRecord{
		"reversed":   reversed,
		"duplicated": append(slices.Clone(recs), recs...),
		"shuffled":   shuffled,
		"one record": recs[:1],
	} {
		if resp := f.deliver(batch); len(resp.BatchItemFailures) != 0 {
			t.Fatalf("%s: failures %v", name, seqs(resp))
		}
		for u, v := range want {
			if got := f.item(u).Version; got != v {
				t.Errorf("%s delivery changed %s's item: %s -> %s", name, u, v, got)
			}
		}
	}
	if n := len(f.audit.Of(broker.DetailPolicyChanged)); n != changes {
		t.Errorf("redelivery emitted %d more PolicyChanged events", n-changes)
	}
}

func TestBadRecordsGrantNothingAndDoNotStopGoodOnes(t *testing.T) {
	f := newFixture(t)
	f.member("alice", "p1", "write")
	f.bucket("p1", "good-bucket", "ok/")
	bad := []map[string]types.AttributeValue{
		{"pk": s("PROJECT#p1"), "sk": s("BUCKET#Bad_Bucket")},
		{"pk": s("PROJECT#p1"), "sk": s("BUCKET#ab")},
		{"pk": s("PROJECT#p1"), "sk": s("BUCKET#192.168.10.1")},
		{"pk": s("PROJECT#p1"), "sk": s("BUCKET#wild*card")},
		{"pk": s("PROJECT#p1"), "sk": s("BUCKET#star-prefix"), "prefix": s("raw/*")},
		{"pk": s("PROJECT#p1"), "sk": s("BUCKET#question-prefix"), "prefix": s("raw?/")},
		{"pk": s("PROJECT#p1"), "sk": s("BUCKET#variable-prefix"), "prefix": s("${aws:username}/")},
		{"pk": s("PROJECT#p1"), "sk": s("BUCKET#slash-prefix"), "prefix": s("/etc/")},
		{"pk": s("PROJECT#p1"), "sk": s("BUCKET#control-prefix"), "prefix": s("a\x00b/")},
		{"pk": s("PROJECT#p1"), "sk": s("BUCKET#number-prefix"), "prefix": &types.AttributeValueMemberN{Value: "7"}},
		{"pk": s("PROJECT#p1"), "sk": s("BUCKET#null-prefix"), "prefix": &types.AttributeValueMemberNULL{Value: true}},
		{"pk": s("PROJECT#p1"), "sk": s("BUCKET#empty-prefix"), "prefix": s("")},
		{"pk": s("PROJECT#p1"), "sk": s("BUCKET#list-prefix"), "prefix": &types.AttributeValueMemberL{}},
		{"pk": s("PROJECT#p1"), "sk": s("BUCKET#huge-prefix"), "prefix": s(strings.Repeat("x", 1100))},
		{"pk": s("PROJECT#p1"), "sk": s("BUCKET#unfittable-prefix"), "prefix": s(strings.Repeat("y", 950))},
		{"pk": s("USER#alice"), "sk": s("PROJECT#p3"), "role": s("admin")},
		{"pk": s("USER#alice"), "sk": s("PROJECT#p4"), "role": &types.AttributeValueMemberBOOL{Value: true}},
		{"pk": s("USER#alice"), "sk": s("PROJECT#p5"), "role": &types.AttributeValueMemberNULL{Value: true}},
		{"pk": s("USER#alice"), "sk": s("PROJECT#bad project")},
		{"pk": s("USER#a"), "sk": s("PROJECT#p1")},
		{"pk": s("PROJECT#" + strings.Repeat("p", 129)), "sk": s("BUCKET#fine-bucket")},
	}
	for _, it := range bad {
		f.put(it)
	}
	// Projects p3 and p4 own buckets: the bad memberships must not reach them.
	f.bucket("p3", "p3-bucket", "")
	f.bucket("p4", "p4-bucket", "")
	f.bucket("p5", "p5-bucket", "")
	f.put(map[string]types.AttributeValue{"pk": s("ORG#x"), "sk": s("SETTINGS")}) // not ours: ignored
	f.member("alice", "p1", "write")

	recs := f.streamRecords()
	if resp := f.deliver(recs); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures: %v", seqs(resp))
	}
	if diff := cmp.Diff([]string{"good-bucket/ok/:write"}, places(f.item("alice"))); diff != "" {
		t.Errorf("alice (-want +got):\n%s", diff)
	}
	rejected := map[string]bool{}
	for _, e := range f.audit.Of(broker.DetailProjectionRejected) {
		d := e.Detail.(broker.ProjectionRejectedDetail)
		if d.Reason == "" || d.EventID == "" || d.SequenceNumber == "" {
			t.Errorf("rejection without reason or ids: %+v", d)
		}
		rejected[d.PK+" "+d.SK] = true
	}
	for _, it := range bad {
		k := it["pk"].(*types.AttributeValueMemberS).Value + " " + it["sk"].(*types.AttributeValueMemberS).Value
		if !rejected[k] {
			t.Errorf("no ProjectionRejected for %s", k)
		}
	}
	if rejected["ORG#x SETTINGS"] {
		t.Error("a record of another shape was reported instead of ignored")
	}
}

func TestABucketThatTurnsInvalidStopsGranting(t *testing.T) {
	f := newFixture(t)
	f.member("alice", "p1", "read")
	f.bucket("p1", "lake", "raw/")
	f.deliver(f.streamRecords())
	if got := places(f.item("alice")); len(got) != 1 {
		t.Fatalf("alice = %v", got)
	}
	before := len(f.streamRecords())
	f.bucket("p1", "lake", "raw/*") // an admin tool writes a wildcard
	f.deliver(f.streamRecords()[before:])
	if got := f.item("alice"); !got.Empty() {
		t.Errorf("bucket record with a wildcard prefix still grants %v", places(got))
	}
}

func TestAMalformedRecordIsRejectedAloneAndStillRevokes(t *testing.T) {
	for _, tc := range []struct{ name, value string }{
		{"a string attribute holding a number", `{"S":12}`},
		// aws-lambda-go's decoder panics on this one.
		{"a binary set holding a number", `{"BS":[1]}`},
	} {
		t.Run(tc.name+" is rejected alone", func(t *testing.T) {
			f := newFixture(t)
			f.member("alice", "p1", "read")
			f.member("bob", "p1", "read")
			f.bucket("p1", "lake", "")
			f.deliver(f.streamRecords())
			before := len(f.streamRecords())
			f.leave("alice", "p1")
			f.leave("bob", "p1")
			recs := f.streamRecords()[before:]

			payload, err := jsonRecords(recs)
			if err != nil {
				t.Fatal(err)
			}
			// Break alice's record: an attribute value that is not a DynamoDB value.
			payload = strings.Replace(payload, `"OldImage":{`, `"OldImage":{"role":`+tc.value+`,`, 1)
			resp, err := f.handleRaw(payload)
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.BatchItemFailures) != 0 {
				t.Fatalf("failures: %v", seqs(resp))
			}
			if len(f.audit.Of(broker.DetailProjectionRejected)) != 1 {
				t.Errorf("want one rejection for the malformed record, got %d", len(f.audit.Of(broker.DetailProjectionRejected)))
			}
			for _, u := range []string{"alice", "bob"} {
				if got := f.item(u); !got.Empty() {
					t.Errorf("%s left p1 but keeps %v", u, places(got))
				}
			}
		})
	}
	f := newFixture(t)
	if _, err := f.handleRaw(`{"Records": 7}`); err == nil {
		t.Error("a payload that is not a DynamoDB event was accepted")
	}
}

func TestPolicyChangedIsNotLostWhenTheBusFails(t *testing.T) {
	f := newFixture(t)
	f.member("alice", "p1", "read")
	f.bucket("p1", "lake", "")
	recs := f.streamRecords()
	down := errors.New("bus unavailable")
	f.audit.Fail = func(evs []broker.AuditEvent) error { return broker.Wrap(broker.Transient, "emit", down) }

	resp := f.deliver(recs)
	if len(resp.BatchItemFailures) == 0 {
		t.Fatal("the change was committed but its event was not sent, and nothing asks for redelivery")
	}
	if got := places(f.item("alice")); len(got) != 1 {
		t.Fatalf("the policy itself must still be committed (fail closed on revocation), got %v", got)
	}

	f.audit.Fail = nil
	if resp := f.deliver(recs); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("redelivery failed: %v", seqs(resp))
	}
	evs := f.audit.Of(broker.DetailPolicyChanged)
	if len(evs) != 1 {
		t.Fatalf("want exactly the one pending PolicyChanged, got %d", len(evs))
	}
	d := evs[0].Detail.(broker.PolicyChangedDetail)
	if d.UserID != "alice" || d.PolicyVersion != f.item("alice").Version || len(d.Added) != 1 {
		t.Errorf("event = %+v", d)
	}
	// Delivered once more: the outbox is empty, nothing is sent again.
	f.deliver(recs)
	if n := len(f.audit.Of(broker.DetailPolicyChanged)); n != 1 {
		t.Errorf("outbox not cleared: %d events", n)
	}
}

func TestRejectionsAreRetriedWhenTheBusFails(t *testing.T) {
	f := newFixture(t)
	f.put(map[string]types.AttributeValue{"pk": s("PROJECT#p1"), "sk": s("BUCKET#Bad")})
	f.member("alice", "p1", "read")
	f.bucket("p1", "lake", "")
	recs := f.streamRecords()
	f.audit.Fail = func(evs []broker.AuditEvent) error {
		if evs[0].DetailType == broker.DetailProjectionRejected {
			return broker.Errorf(broker.Transient, "emit", "bus down")
		}
		return nil
	}
	resp := f.deliver(recs)
	if diff := cmp.Diff([]string{recs[0].Change.SequenceNumber}, seqs(resp)); diff != "" {
		t.Errorf("failed records (-want +got):\n%s", diff)
	}
	if got := places(f.item("alice")); len(got) != 1 {
		t.Errorf("a failed rejection blocked a good record: alice = %v", got)
	}
}
