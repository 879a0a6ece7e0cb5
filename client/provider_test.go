package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/testkit/fakeclock"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/credbroker/credbroker/client"
)

// fakeS3 is a hand-written stand-in for S3, because moto does not enforce
// IAM and so never refuses credentials: it refuses the access keys that
// deny says, with S3's AccessDenied, and records the key and body of
// every request.
type fakeS3 struct {
	*httptest.Server
	deny func(key string) bool

	mu     sync.Mutex
	keys   []string
	bodies []string
}

func newFakeS3(t *testing.T, deny func(key string) bool) *fakeS3 {
	f := &fakeS3{deny: deny}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, cred, _ := strings.Cut(r.Header.Get("Authorization"), "Credential=")
		key, _, _ := strings.Cut(cred, "/")
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.keys = append(f.keys, key)
		f.bodies = append(f.bodies, string(b))
		f.mu.Unlock()
		if f.deny(key) {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>1</RequestId></Error>`)
			return
		}
		w.Header().Set("ETag", `"1"`)
		_, _ = io.WriteString(w, "object of "+key)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeS3) seen() ([]string, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.keys), slices.Clone(f.bodies)
}

// s3For is an S3 client of fake that uses p, as docs/clients.md "Go" shows, with a
// retryer that does not wait between attempts.
func s3For(fake *fakeS3, p *client.Provider) *s3.Client {
	return s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(fake.URL), UsePathStyle: true,
		Credentials: p,
		APIOptions:  []func(*middleware.Stack) error{p.RetryOnAccessDenied},
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		}),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
	})
}

// An endpoint that mints K1, K2, ... one per request.
func mintingEndpoint(t *testing.T, clock *fakeclock.Clock) *fakeEndpoint {
	return newFakeEndpoint(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, 200, body("v1", clock.Now().Add(15*time.Minute), set{"K" + string(rune('1'+n)), []string{"b:write"}}))
	})
}

func cacheControls(f *fakeEndpoint) []string {
	var out []string
	for _, r := range f.requests() {
		out = append(out, r.Header.Get("Cache-Control"))
	}
	return out
}

func TestRevokedCredentialsAreReplacedAtTheFirstRefusal(t *testing.T) {
	clock := newFakeClock()
	ep := mintingEndpoint(t, clock)
	s3f := newFakeS3(t, func(key string) bool { return key == "K1" })
	c := newClient(t, ep, client.StaticToken("t"), clock)
	p := c.ObjectCredentialsProvider("b", "raw/x.csv", client.Write)
	if _, err := p.Retrieve(t.Context()); err != nil { // K1 is cached, then revoked
		t.Fatal(err)
	}
	_, err := s3For(s3f, p).PutObject(t.Context(), &s3.PutObjectInput{
		Bucket: aws.String("b"), Key: aws.String("raw/x.csv"), Body: strings.NewReader("payload"),
	})
	if err != nil {
		t.Fatalf("PutObject after revocation: %v", err)
	}
	keys, bodies := s3f.seen()
	if !slices.Equal(keys, []string{"K1", "K2"}) {
		t.Errorf("S3 saw keys %v, want K1 then K2", keys)
	}
	if !slices.Equal(bodies, []string{"payload", "payload"}) {
		t.Errorf("S3 saw bodies %q: the retry must send the whole body again", bodies)
	}
	if got := cacheControls(ep); !slices.Equal(got, []string{"", "no-cache"}) {
		t.Errorf("endpoint requests' Cache-Control %q, want a plain fetch then no-cache", got)
	}
}

// A refusal that fresh credentials do not cure is a real one: it costs
// a refetch at most every DeniedRecheck (an endpoint instance may not have
// read a fallback yet), and MaxDeniedRefetches per interval.
func TestARealRefusalCostsAtMostThreeRefetchesPerInterval(t *testing.T) {
	clock := newFakeClock()
	ep := mintingEndpoint(t, clock)
	s3f := newFakeS3(t, func(string) bool { return true })
	c := newClient(t, ep, client.StaticToken("t"), clock)
	p := c.CredentialsProvider("b")
	s3c := s3For(s3f, p)
	get := func() error {
		_, err := s3c.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("k")})
		return err
	}
	err := get()
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "AccessDenied" {
		t.Fatalf("GetObject = %v, want S3's AccessDenied", err)
	}
	if keys, _ := s3f.seen(); !slices.Equal(keys, []string{"K1", "K2"}) {
		t.Errorf("S3 saw %v, want one retry with fresh credentials", keys)
	}
	steps := []struct {
		name    string
		advance time.Duration
		want    []string // what S3 saw in all
	}{
		{"before the recheck: no refetch", client.DeniedRecheck - time.Second, []string{"K1", "K2", "K2"}},
		{"at the recheck: one more", time.Second, []string{"K1", "K2", "K2", "K2", "K3"}},
		{"at the next recheck: the third", client.DeniedRecheck, []string{"K1", "K2", "K2", "K2", "K3", "K3", "K4"}},
		{"later in the interval: none", client.DefaultDeniedRefetchInterval - 2*client.DeniedRecheck - time.Second, []string{"K1", "K2", "K2", "K2", "K3", "K3", "K4", "K4"}},
		{"when the first leaves the interval: one more", time.Second, []string{"K1", "K2", "K2", "K2", "K3", "K3", "K4", "K4", "K4", "K5"}},
	}
	for _, st := range steps {
		clock.Add(st.advance)
		if err := get(); !errors.As(err, &ae) {
			t.Fatalf("%s: GetObject = %v", st.name, err)
		}
		if keys, _ := s3f.seen(); !slices.Equal(keys, st.want) {
			t.Errorf("%s: S3 saw %v, want %v", st.name, keys, st.want)
		}
	}
	if got := cacheControls(ep); !slices.Equal(got, []string{"", "no-cache", "no-cache", "no-cache", "no-cache"}) {
		t.Errorf("endpoint requests' Cache-Control %q", got)
	}
}

func TestConcurrentRefusalsShareOneRefetch(t *testing.T) {
	clock := newFakeClock()
	ep := mintingEndpoint(t, clock)
	s3f := newFakeS3(t, func(key string) bool { return key == "K1" })
	c := newClient(t, ep, client.StaticToken("t"), clock)
	p := c.CredentialsProvider("b")
	if _, err := p.Retrieve(t.Context()); err != nil {
		t.Fatal(err)
	}
	s3c := s3For(s3f, p)
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = s3c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("k")})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("request %d: %v", i, err)
		}
	}
	if n := ep.count(); n != 2 {
		t.Errorf("%d endpoint requests for 16 concurrent refusals, want 2", n)
	}
}
