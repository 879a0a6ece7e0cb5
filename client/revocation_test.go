package client_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/credbroker/credbroker/client"
)

// revoked adds the optional revocation fields to an answer body: the
// user's cutoff, the fallback's (zero for none) and every set's issue time.
func revoked(b []byte, user, all, issued time.Time) []byte {
	var a map[string]any
	if err := json.Unmarshal(b, &a); err != nil {
		panic(err)
	}
	if !user.IsZero() {
		a["revokedBefore"] = user.UTC().Format("2006-01-02T15:04:05.000Z07:00")
	}
	if !all.IsZero() {
		a["allRevokedBefore"] = all.UTC().Format(time.RFC3339)
	}
	for _, s := range a["credentialSets"].([]any) {
		s.(map[string]any)["issued"] = issued.UTC().Format(time.RFC3339)
	}
	out, _ := json.Marshal(a)
	return out
}

// What one answer tells of a revocation applies to every answer held: an
// answer another revocation denies is dropped, and fetched again fresh.
func TestAnAnswerThatTellsOfARevocationDropsTheHeldAnswersItDenies(t *testing.T) {
	t0 := newFakeClock().Now()
	for _, tc := range []struct {
		name string
		// the answer for project p, fetched first, then the one for all
		// grants, which tells of the revocation
		held, told []byte
		dropped    bool
	}{
		{name: "a fallback after the held set was issued: dropped",
			held:    revoked(body("v1", t0.Add(15*time.Minute), set{"K1", []string{"b"}}), time.Time{}, time.Time{}, t0),
			told:    revoked(body("v1", t0.Add(20*time.Minute), set{"K2", []string{"b"}}), time.Time{}, t0.Add(4*time.Second), t0.Add(5*time.Minute)),
			dropped: true},
		{name: "a fallback before the held set was issued: kept",
			held: revoked(body("v1", t0.Add(15*time.Minute), set{"K1", []string{"b"}}), time.Time{}, time.Time{}, t0),
			told: revoked(body("v1", t0.Add(20*time.Minute), set{"K2", []string{"b"}}), time.Time{}, t0.Add(-time.Minute), t0.Add(5*time.Minute))},
		{name: "a held set without an issue time, under a fallback: dropped",
			held:    body("v1", t0.Add(15*time.Minute), set{"K1", []string{"b"}}),
			told:    revoked(body("v1", t0.Add(20*time.Minute), set{"K2", []string{"b"}}), time.Time{}, t0.Add(-time.Minute), t0.Add(5*time.Minute)),
			dropped: true},
		{name: "a newer cutoff of the user, same grants: dropped",
			held:    revoked(body("v1", t0.Add(15*time.Minute), set{"K1", []string{"b"}}), t0.Add(-time.Hour), time.Time{}, t0),
			told:    revoked(body("v1", t0.Add(20*time.Minute), set{"K2", []string{"b"}}), t0.Add(4*time.Second), time.Time{}, t0.Add(5*time.Minute)),
			dropped: true},
		{name: "the same cutoff of the user: kept",
			held: revoked(body("v1", t0.Add(15*time.Minute), set{"K1", []string{"b"}}), t0.Add(-time.Hour), time.Time{}, t0),
			told: revoked(body("v1", t0.Add(20*time.Minute), set{"K2", []string{"b"}}), t0.Add(-time.Hour), time.Time{}, t0.Add(5*time.Minute))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			f := newFakeEndpoint(t, func(w http.ResponseWriter, r *http.Request, n int) {
				switch {
				case r.URL.Query().Get("project") == "p" && n == 0:
					writeJSON(w, 200, tc.held)
				case r.URL.Query().Get("project") == "p":
					writeJSON(w, 200, revoked(body("v1", clock.Now().Add(15*time.Minute), set{"K3", []string{"b"}}), t0.Add(time.Hour), time.Time{}, clock.Now()))
				default:
					writeJSON(w, 200, tc.told)
				}
			})
			c := newClient(t, f, client.StaticToken("t"), clock)
			if _, err := c.Answer(t.Context(), "p"); err != nil {
				t.Fatal(err)
			}
			clock.Add(5 * time.Minute)
			if _, err := c.Answer(t.Context(), ""); err != nil {
				t.Fatal(err)
			}
			a, err := c.Answer(t.Context(), "p")
			if err != nil {
				t.Fatal(err)
			}
			reqs := f.requests()
			if dropped := len(reqs) == 3; dropped != tc.dropped {
				t.Fatalf("the held answer dropped: %v, want %v (requests %s)", dropped, tc.dropped, describe(reqs))
			}
			if tc.dropped && (a.CredentialSets[0].AccessKeyID != "K3" || reqs[2].Header.Get("Cache-Control") != "no-cache") {
				t.Errorf("after the drop: key %s, requests %s; want K3 fetched with no-cache", a.CredentialSets[0].AccessKeyID, describe(reqs))
			}
		})
	}
}

// An endpoint instance that has not read the fallback yet may answer with
// a set another instance's answer said is denied: the client asks once
// more for fresh credentials, once the fallback's cutoff has passed; a
// second such answer is an error, not a loop.
func TestAnAnswerAKnownCutoffDeniesIsFetchedOnceMoreAfterTheCutoff(t *testing.T) {
	for _, tc := range []struct {
		name    string
		healed  bool // the second instance has read the fallback by then
		wantErr bool
	}{
		{name: "the instance caught up: the fresh answer is served", healed: true},
		{name: "still denied: an error after one more try", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			t0 := clock.Now()
			cutoff := t0.Add(3 * time.Second)
			f := newFakeEndpoint(t, func(w http.ResponseWriter, r *http.Request, n int) {
				issued := t0.Add(-time.Minute) // minted before the fallback by an instance unaware of it
				if n == 0 {
					writeJSON(w, 200, revoked(body("v1", t0.Add(15*time.Minute), set{"K1", []string{"b"}}), time.Time{}, cutoff, t0.Add(4*time.Second)))
					return
				}
				if tc.healed && n == 2 {
					issued = clock.Now()
				}
				writeJSON(w, 200, revoked(body("v1", t0.Add(15*time.Minute), set{"K9", []string{"b"}}), time.Time{}, time.Time{}, issued))
			})
			c := newClient(t, f, client.StaticToken("t"), clock)
			if _, err := c.Answer(t.Context(), "p"); err != nil {
				t.Fatal(err)
			}
			a, err := c.Answer(t.Context(), "")
			if tc.wantErr {
				if !errors.Is(err, client.ErrUnavailable) {
					t.Errorf("err = %v, want ErrUnavailable", err)
				}
			} else if err != nil || a.CredentialSets[0].Issued.Before(cutoff) {
				t.Fatalf("Answer = %+v, %v; want the set issued after the cutoff", a, err)
			}
			reqs := f.requests()
			if len(reqs) != 3 || reqs[2].Header.Get("Cache-Control") != "no-cache" {
				t.Errorf("requests %s; want the denied answer fetched once more, with no-cache", describe(reqs))
			}
			if got := clock.Sleeps(); !slices.Equal(got, []time.Duration{3 * time.Second}) {
				t.Errorf("slept %v, want until the cutoff passed (3s)", got)
			}
		})
	}
}

// The credential_process runs once per AWS CLI call and cannot see S3's
// refusals: with Revalidate it asks the endpoint again once the answer is
// that old, learns of revocations from the file cache written by another
// run, and serves the held answer while the endpoint is unavailable.
func TestRevalidationAndTheFileCacheCarryRevocationsBetweenProcesses(t *testing.T) {
	clock := newFakeClock()
	down := false
	f := newFakeEndpoint(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if down {
			writeError(w, 503, "unavailable", "")
			return
		}
		all := time.Time{}
		if r.URL.Query().Get("project") == "" {
			all = clock.Now().Add(-time.Second) // a fallback just after the first answer
		}
		writeJSON(w, 200, revoked(body("v1", clock.Now().Add(15*time.Minute), set{"K" + string(rune('1'+n)), []string{"b"}}), time.Time{}, all, clock.Now()))
	})
	path := filepath.Join(t.TempDir(), "credentials.json")
	cli := func() *client.Client {
		return newClient(t, f, client.StaticToken("t"), clock, func(o *client.Options) {
			o.Cache, o.Revalidate, o.MaxRetries = client.FileCache{Path: path}, 10*time.Second, -1
		})
	}
	key := func(c *client.Client, project string) string {
		t.Helper()
		a, err := c.Answer(t.Context(), project)
		if err != nil {
			t.Fatal(err)
		}
		return a.CredentialSets[0].AccessKeyID
	}
	if got := key(cli(), "p"); got != "K1" {
		t.Fatalf("first run: %s", got)
	}
	clock.Add(5 * time.Second)
	if got := key(cli(), "p"); got != "K1" || f.count() != 1 {
		t.Errorf("a run within Revalidate: %s after %d requests, want K1 from the file", got, f.count())
	}
	clock.Add(2 * time.Second)
	if got := key(cli(), ""); got != "K2" {
		t.Fatalf("another profile's run: %s", got)
	}
	if got := key(cli(), "p"); got != "K3" || f.count() != 3 {
		t.Errorf("after another run learned of a fallback: %s after %d requests, want K3 fetched anew", got, f.count())
	}
	clock.Add(11 * time.Second)
	down = true
	if got := key(cli(), "p"); got != "K3" || f.count() != 4 {
		t.Errorf("revalidation while the endpoint is down: %s after %d requests, want K3 served after one try", got, f.count())
	}
}
