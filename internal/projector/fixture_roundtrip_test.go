package projector_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/projector"
)

const streamFixture = "../../events/projector/stream-batch.json"

// The sample event (also usable with `sam local invoke -e`) survives a
// round trip through the Lambda event types unchanged.
func TestStreamFixtureRoundTrips(t *testing.T) {
	raw, err := os.ReadFile(filepath.FromSlash(streamFixture))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.DynamoDBEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	back, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var want, got any
	_ = json.Unmarshal(raw, &want)
	_ = json.Unmarshal(back, &got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("round trip changed the event (-fixture +round trip):\n%s", diff)
	}

	changes, err := projector.DecodeEvent(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range changes {
		if c.Err != nil {
			t.Errorf("decode: %v", c.Err)
		}
	}
	if len(changes) != 4 || changes[1].EventName != "MODIFY" || changes[1].New.Prefix.S != "runs/2026" || changes[2].New != nil {
		t.Errorf("decoded changes = %+v", changes)
	}
}

func TestStreamFixtureProjects(t *testing.T) {
	raw, err := os.ReadFile(filepath.FromSlash(streamFixture))
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	const alice = "3f8e2a5c-0b6d-4c1e-9a7f-2d4b6c8e0a1b"
	f.member(alice, "genomics", "write")
	f.bucket("genomics", "genomics-raw-data", "runs/2026")
	f.put(map[string]types.AttributeValue{"pk": s("PROJECT#genomics"), "sk": s("BUCKET#scratch"), "prefix": s("tmp/*")})

	resp, err := (&projector.Handler{Projector: f.proj}).Handle(context.Background(), raw)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("resp %+v, err %v", resp, err)
	}
	if diff := cmp.Diff([]string{"genomics-raw-data/runs/2026/:write"}, places(f.item(alice))); diff != "" {
		t.Errorf("item (-want +got):\n%s", diff)
	}
	rej := f.audit.Of(broker.DetailProjectionRejected)
	if len(rej) != 1 || rej[0].Detail.(broker.ProjectionRejectedDetail).SK != "BUCKET#scratch" {
		t.Errorf("rejections = %+v", rej)
	}
}
