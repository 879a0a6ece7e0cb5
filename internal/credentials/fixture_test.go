package credentials_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
)

// fixturePath is the event `sam local invoke CredentialsFunction -e` uses.
var fixturePath = filepath.Join("..", "..", "events", "credentials", "get-resources.json")

func TestFixtureRoundTripsAndIsServed(t *testing.T) {
	raw, err := os.ReadFile(fixturePath)
	if err != nil {
		t.Fatal(err)
	}
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatalf("fixture is not an HTTP API payload 2.0 event: %v", err)
	}
	back, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var orig, again any
	if err := json.Unmarshal(raw, &orig); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(back, &again); err != nil {
		t.Fatal(err)
	}
	// The Go type writes a few structs the fixture leaves out (mTLS
	// authentication) as zero values: equal in meaning, so dropped.
	if diff := cmp.Diff(orig, dropAddedZeros(orig, again)); diff != "" {
		t.Errorf("fixture changed in a round trip (-file +round trip):\n%s", diff)
	}
	if ev.RequestContext.HTTP.Method != "GET" || ev.RawPath != "/auths/resources" || ev.QueryStringParameters["project"] == "" {
		t.Fatalf("fixture is not a GET /auths/resources with a project: %+v", ev)
	}

	// The fixture's token is a placeholder (replace it with a real access
	// token for `sam local invoke`); here a verifier accepts exactly it as
	// the user its authorizer claims name.
	e := newEnv(t)
	sub, client := ev.RequestContext.Authorizer.JWT.Claims["sub"], ev.RequestContext.Authorizer.JWT.Claims["client_id"]
	project := ev.QueryStringParameters["project"]
	e.seed(t, sub, map[string][]broker.Place{project: places("genomics-raw/runs/2024:write"), "other": places("other-bucket")})
	fixtureToken := strings.TrimPrefix(ev.Headers["authorization"], "Bearer ")
	svc := e.service(verifierFunc(func(_ context.Context, token string) (broker.Principal, error) {
		if token != fixtureToken {
			return broker.Principal{}, broker.Errorf(broker.Unauthenticated, "verify", "unknown token")
		}
		return broker.Principal{UserID: sub, ClientID: client}, nil
	}))

	resp, err := svc.Handle(t.Context(), ev)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("Handle(fixture) = %d %v; body %s", resp.StatusCode, err, resp.Body)
	}
	var a struct {
		CredentialSets []struct{ Grants []broker.Grant }
	}
	if err := json.Unmarshal([]byte(resp.Body), &a); err != nil {
		t.Fatal(err)
	}
	want := []broker.Grant{{Bucket: "genomics-raw", Prefix: "runs/2024/", Access: broker.Write, Projects: []string{project}}}
	if len(a.CredentialSets) != 1 {
		t.Fatalf("%d sets, want 1", len(a.CredentialSets))
	}
	if diff := cmp.Diff(want, a.CredentialSets[0].Grants); diff != "" {
		t.Errorf("grants for the fixture's project (-want +got):\n%s", diff)
	}
	var d broker.CredentialsIssuedDetail
	if err := json.Unmarshal(e.events(t, 1)[0], &d); err != nil {
		t.Fatal(err)
	}
	if d.RequestID != ev.RequestContext.RequestID || d.SourceIP != "203.0.113.7" || d.UserAgent != "aws-cli/2.15.0 Python/3.11" {
		t.Errorf("audit detail request %q ip %q agent %q, want the fixture's", d.RequestID, d.SourceIP, d.UserAgent)
	}
}

// dropAddedZeros returns got without the object members that want lacks
// and whose value is a zero ("" , 0, false, null, or an object of zeros).
func dropAddedZeros(want, got any) any {
	w, ok1 := want.(map[string]any)
	g, ok2 := got.(map[string]any)
	if !ok1 || !ok2 {
		return got
	}
	out := make(map[string]any, len(g))
	for k, v := range g {
		if wv, ok := w[k]; ok {
			out[k] = dropAddedZeros(wv, v)
		} else if !isZero(v) {
			out[k] = v
		}
	}
	return out
}

func isZero(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case float64:
		return v == 0
	case bool:
		return !v
	case map[string]any:
		for _, x := range v {
			if !isZero(x) {
				return false
			}
		}
		return true
	}
	return false
}
