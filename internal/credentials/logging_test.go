package credentials_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/credentials"
	"github.com/credbroker/credbroker/internal/emf"
	"github.com/credbroker/credbroker/internal/jwtauth"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of loggers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(s.b.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %v\n%s", err, line)
		}
		out = append(out, m)
	}
	return out
}

func TestEveryLogLineCarriesTheRequestID(t *testing.T) {
	e := newEnv(t)
	pool := newLocalPool(t)
	const user = "d6e7f809-1a2b-4c3d-8e4f-5a6b7c8d9e0f"
	e.seed(t, user, map[string][]broker.Place{"p": places("genomics-raw")})

	var out syncBuffer
	log := slog.New(credentials.LogHandler(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})))
	// The verifier logs its rejections through the same handler.
	verifier, err := jwtauth.New(jwtauth.Config{Issuer: pool.issuer, JWKSURL: pool.jwks.URL, ClientIDs: []string{pool.clientID},
		HTTPClient: pool.jwks.Client(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	svc := e.service(verifier, func(s *credentials.Service) {
		s.Logger = log
		s.Metrics = &emf.Writer{W: &out}
	})
	token := pool.token(t, user)
	requests := map[string]string{"req-good": "Bearer " + token, "req-bad": "Bearer not.a.token"}
	for id, authz := range requests {
		ev := event(map[string]string{"authorization": authz}, "", nil)
		ev.RequestContext.RequestID = id
		if _, err := svc.Handle(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}

	seen := map[string]int{}
	metrics := map[string]map[string]any{}
	for _, line := range out.lines(t) {
		id, _ := line["requestId"].(string)
		if _, ok := requests[id]; !ok {
			t.Errorf("log line without a request id: %v", line)
			continue
		}
		seen[id]++
		if _, ok := line["_aws"]; ok {
			metrics[id] = line
		}
	}
	if seen["req-good"] < 2 || seen["req-bad"] < 3 {
		t.Errorf("lines per request %v: want the summary and metric lines of each, plus the verifier's rejection", seen)
	}
	if m := metrics["req-good"]; m["Issued"] != 1.0 || m["Denied"] != 0.0 || m["Function"] != "credentials" || m["CacheMiss"] != 1.0 {
		t.Errorf("metric line of the issued request: %v", m)
	}
	if m := metrics["req-bad"]; m["Issued"] != 0.0 || m["Denied"] != 1.0 || m["error"] != "invalid_token" {
		t.Errorf("metric line of the denied request: %v", m)
	}
	if signature := token[strings.LastIndex(token, ".")+1:]; strings.Contains(out.b.String(), signature) {
		t.Error("a log line carries the bearer token")
	}
}
