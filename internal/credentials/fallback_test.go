package credentials_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/credentials"
	"github.com/credbroker/credbroker/internal/testkit/fakeclock"
)

// handle sends one request for user and returns the raw answer.
func handle(t *testing.T, s *credentials.Service, user string, headers map[string]string) events.APIGatewayV2HTTPResponse {
	t.Helper()
	h := map[string]string{"authorization": "Bearer " + user}
	for k, v := range headers {
		h[k] = v
	}
	ev := events.APIGatewayV2HTTPRequest{RawPath: credentials.Path, Headers: h}
	ev.RequestContext.HTTP.Method = "GET"
	resp, err := s.Handle(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func answerOf(t *testing.T, resp events.APIGatewayV2HTTPResponse) credentials.Answer {
	t.Helper()
	var a credentials.Answer
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, resp.Body)
	}
	if err := json.Unmarshal([]byte(resp.Body), &a); err != nil {
		t.Fatal(err)
	}
	return a
}

// After the deny list fell back to one cutoff for everybody, the endpoint
// hands out no set that cutoff denies: none from its cache, none minted
// while it is still ahead (503 until it passes), none STS stamped before
// it. Each answer says which cutoffs apply and when each set was issued.
func TestAFallbackCutoffIsNeverAnsweredWithCredentialsItDenies(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		// allBefore is the fallback's cutoff from t0, read after a first
		// answer minted at t0; at is when the second request comes.
		allBefore, at time.Duration
		// stsLag is how far STS's clock is behind the endpoint's.
		stsLag     time.Duration
		noCache    bool
		wantStatus int
		wantRetry  string
		wantMinted bool // the second answer has a new set
	}{
		{name: "cutoff ahead: 503 until it passes, rounded up to the second", allBefore: 5*time.Second + 400*time.Millisecond, at: 2 * time.Second,
			wantStatus: 503, wantRetry: "4"},
		{name: "cutoff less than a second ahead: Retry-After 1", allBefore: 2*time.Second + 100*time.Millisecond, at: 2*time.Second + 50*time.Millisecond,
			wantStatus: 503, wantRetry: "1"},
		{name: "cutoff passed after the cached set was issued: a fresh mint", allBefore: 1500 * time.Millisecond, at: 3 * time.Second,
			wantStatus: 200, wantMinted: true},
		{name: "a no-cache request does not get the seconds-old set the cutoff denies", allBefore: 1500 * time.Millisecond, at: 3 * time.Second,
			noCache: true, wantStatus: 200, wantMinted: true},
		{name: "cutoff before the cached set was issued: the cache serves", allBefore: -time.Second, at: 3 * time.Second,
			wantStatus: 200},
		{name: "a set STS stamped before the cutoff is withheld", allBefore: 1500 * time.Millisecond, at: 3 * time.Second, stsLag: 2 * time.Second,
			wantStatus: 503, wantRetry: "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := fakeclock.New(t0)
			sts := fakeclock.New(t0)
			f := newFakes(t, map[string]map[string][]broker.Place{"alice": {"p": {{Bucket: "lake", Access: broker.Read}}}})
			item := f.items["alice"]
			item.RevokedBefore = t0.Add(-time.Minute + 250*time.Millisecond)
			f.items["alice"] = item
			f.issue = stsAt(sts)
			var reads atomic.Int64
			var allBefore atomic.Int64 // Unix ms, 0 for none
			svc := f.service(func(s *credentials.Service) {
				s.Now, s.Cache = clk.Now, credentials.NewCache(8, clk.Now)
				s.Fallback = &credentials.Fallback{Now: clk.Now, Read: func(context.Context) (time.Time, error) {
					reads.Add(1)
					if ms := allBefore.Load(); ms != 0 {
						return time.UnixMilli(ms).UTC(), nil
					}
					return time.Time{}, nil
				}}
			})
			first := answerOf(t, handle(t, svc, "alice", nil))
			if first.AllRevokedBefore != "" || first.RevokedBefore != "2026-11-30T11:59:00.250Z" || first.CredentialSets[0].Issued != "2026-11-30T12:00:00Z" {
				t.Errorf("first answer: revokedBefore %q, allRevokedBefore %q, issued %q; want the user's cutoff to the millisecond, no fallback, the issue time",
					first.RevokedBefore, first.AllRevokedBefore, first.CredentialSets[0].Issued)
			}
			allBefore.Store(t0.Add(tc.allBefore).UnixMilli())
			clk.Add(tc.at)
			sts.Add(tc.at - tc.stsLag)
			f.assumes.Store(0)
			emitted := len(f.issued())
			var headers map[string]string
			if tc.noCache {
				headers = map[string]string{"cache-control": "no-cache"}
			}
			resp := handle(t, svc, "alice", headers)
			if resp.StatusCode != tc.wantStatus || resp.Headers["Retry-After"] != tc.wantRetry {
				t.Fatalf("status %d, Retry-After %q; want %d, %q (%s)", resp.StatusCode, resp.Headers["Retry-After"], tc.wantStatus, tc.wantRetry, resp.Body)
			}
			if reads.Load() != 2 {
				t.Errorf("%d reads of the fallback cutoff over two requests %v apart, want 2", reads.Load(), tc.at)
			}
			if resp.StatusCode != 200 {
				if len(f.issued()) != emitted {
					t.Error("a withheld set was audited as issued")
				}
				return
			}
			second := answerOf(t, resp)
			if minted := second.CredentialSets[0].AccessKeyID != first.CredentialSets[0].AccessKeyID; minted != tc.wantMinted || f.assumes.Load() != map[bool]int64{true: 1}[tc.wantMinted] {
				t.Errorf("a new set: %v (%d AssumeRole), want %v", minted, f.assumes.Load(), tc.wantMinted)
			}
			want := t0.Add(tc.allBefore).Add(999 * time.Millisecond).Truncate(time.Second).Format(time.RFC3339)
			if second.AllRevokedBefore != want {
				t.Errorf("allRevokedBefore %q, want %q (the cutoff rounded up, as IAM compares)", second.AllRevokedBefore, want)
			}
		})
	}
}

// The cutoff is read at most once per interval, whatever the number of
// requests; a failed read keeps the last value known and is tried again
// after the interval; concurrent callers share one read.
func TestTheFallbackCutoffIsReadOncePerIntervalAndSurvivesAFailedRead(t *testing.T) {
	clk := fakeclock.New(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	cutoff := clk.Now().Add(3 * time.Second)
	var reads atomic.Int64
	var fail atomic.Bool
	f := &credentials.Fallback{Now: clk.Now, Logger: discard(), Read: func(context.Context) (time.Time, error) {
		reads.Add(1)
		if fail.Load() {
			return time.Time{}, errors.New("throttled")
		}
		return cutoff, nil
	}}
	ctx := context.Background()
	for range 10 {
		if got := f.Get(ctx); !got.Equal(cutoff) {
			t.Fatalf("Get = %v, want %v", got, cutoff)
		}
	}
	if reads.Load() != 1 {
		t.Errorf("%d reads within the interval, want 1", reads.Load())
	}
	fail.Store(true)
	clk.Add(credentials.DefaultFallbackInterval)
	for range 3 {
		if got := f.Get(ctx); !got.Equal(cutoff) {
			t.Errorf("after a failed read Get = %v, want the last value known %v", got, cutoff)
		}
	}
	if reads.Load() != 2 {
		t.Errorf("%d reads, want 2: a failed read is not retried before the interval", reads.Load())
	}
	fail.Store(false)
	cutoff = time.Time{}
	clk.Add(credentials.DefaultFallbackInterval)
	if got := f.Get(ctx); !got.IsZero() || reads.Load() != 3 {
		t.Errorf("after the interval: Get = %v after %d reads, want the pruned fallback (zero) after 3", got, reads.Load())
	}
	var none *credentials.Fallback
	if got := none.Get(ctx); !got.IsZero() {
		t.Errorf("a nil Fallback knows of %v", got)
	}
}
