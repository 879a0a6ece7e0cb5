// Package mototest connects tests to the moto_server that `make test` starts
// (its URL is in MOTO_ENDPOINT). Without it the tests fail loudly instead of
// skipping: nothing here is optional.
package mototest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/credbroker/credbroker/internal/motoserver"
)

// Region is the region every test uses.
const Region = "us-east-1"

// Endpoint returns moto's base URL or fails the test.
func Endpoint(tb testing.TB) string {
	tb.Helper()
	url := os.Getenv("MOTO_ENDPOINT")
	if url == "" {
		tb.Fatal("MOTO_ENDPOINT is not set: run the tests with `make test`, which starts moto_server, " +
			"or start `moto_server -H 127.0.0.1 -p 4566` and export MOTO_ENDPOINT=http://127.0.0.1:4566")
	}
	return url
}

// Config returns an AWS SDK config that talks to moto with dummy credentials.
func Config(tb testing.TB) aws.Config {
	tb.Helper()
	return ConfigFor(Endpoint(tb))
}

// ConfigFor returns an AWS SDK config for a moto at url.
func ConfigFor(url string) aws.Config {
	return aws.Config{
		Region:       Region,
		BaseEndpoint: aws.String(url),
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
		HTTPClient:   &http.Client{Timeout: 30 * time.Second},
	}
}

// Name returns a name unique to this test run, for tables, buses and pools
// that share one moto: "<prefix>-<random>".
func Name(tb testing.TB, prefix string) string {
	tb.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		tb.Fatal(err)
	}
	return prefix + "-" + hex.EncodeToString(b[:])
}

// Private starts a moto_server of the test's own, stopped when the test
// ends, and returns its URL: for a check that reads moto's whole state
// (Data), which the shared moto, holding every package's tables by the end
// of a run, takes too long to dump.
func Private(tb testing.TB) string {
	tb.Helper()
	srv, err := motoserver.Start(context.Background(), 0, io.Discard)
	if err != nil {
		tb.Fatalf("start a private moto_server: %v", err)
	}
	tb.Cleanup(srv.Stop)
	return srv.URL
}

// Data returns moto's internal state for one service (GET /moto-api/data.json),
// for checks that moto exposes no API for, such as the session policy STS got.
// moto dumps every backend without a lock, so a dump taken while another
// test package writes can fail ("dictionary changed size during
// iteration", a 500 page): it is asked again, a few times.
func Data(tb testing.TB, service string) map[string]json.RawMessage {
	tb.Helper()
	return DataAt(tb, Endpoint(tb), service)
}

// DataAt is Data of the moto at endpoint (Private's, say).
func DataAt(tb testing.TB, endpoint, service string) map[string]json.RawMessage {
	tb.Helper()
	var last error
	for attempt := range 5 {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
		}
		all, err := dump(endpoint)
		if err != nil {
			last = err
			continue
		}
		svc, ok := all[service]
		if !ok {
			tb.Fatalf("moto data.json has no service %q", service)
		}
		return svc
	}
	tb.Fatalf("moto data.json: %v", last)
	return nil
}

func dump(endpoint string) (map[string]map[string]json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(endpoint, "/")+"/moto-api/data.json", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s: %.200s", resp.Status, body)
	}
	var all map[string]map[string]json.RawMessage
	if err := json.Unmarshal(body, &all); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return all, nil
}

// SessionPolicies returns the session policy moto's STS received with each
// AssumeRole, by the access key it issued.
func SessionPolicies(tb testing.TB) map[string]string {
	tb.Helper()
	var roles []struct {
		AccessKeyID string `json:"access_key_id"`
		Policy      string `json:"policy"`
	}
	if err := json.Unmarshal(Data(tb, "sts")["AssumedRole"], &roles); err != nil {
		tb.Fatalf("decode moto sts.AssumedRole: %v", err)
	}
	out := map[string]string{}
	for _, r := range roles {
		out[r.AccessKeyID] = r.Policy
	}
	return out
}
