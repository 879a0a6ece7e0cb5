package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/policy"
)

func TestPercentileIsTheNearestRank(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"no values gives zero", nil, 50, 0},
		{"one value is every percentile", ms(7), 99, 7 * time.Millisecond},
		{"median of an even count is the lower middle", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"median of an odd count is the middle", ms(1, 2, 3), 50, 2 * time.Millisecond},
		{"p99 of 1..100 is 99", ms(hundred...), 99, 99 * time.Millisecond},
		{"p99 of four values is the largest", ms(1, 2, 3, 4), 99, 4 * time.Millisecond},
		{"p100 is the maximum", ms(1, 2, 3), 100, 3 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tt.sorted, tt.p, got, tt.want)
			}
		})
	}
}

// fakeWorld is a run's model without AWS: one user with write access to the
// shared project, whose pool has bucket "bucket-s0" (present), folder "s1/team/"
// (removed after it was granted) and bucket "bucket-s2" (never written).
func fakeWorld() *world {
	w := &world{id: "t", shared: "shared", ever: map[string]bool{}}
	w.places = []*sharedPlace{{bucket: "bucket-s0", present: true}, {bucket: "bucket-s1", folder: "team"}, {bucket: "bucket-s2"}}
	w.ever["bucket-s0/"], w.ever["bucket-s1/team/"] = true, true
	w.users = []*user{
		{name: "writer", sub: "user-w", shared: broker.Write, own: broker.Place{Bucket: "own-w", Access: broker.Write}},
		{name: "reader", sub: "user-r", shared: broker.Read, own: broker.Place{Bucket: "own-r", Access: broker.Write}},
	}
	return w
}

func place(bucket, prefix string, access broker.Access) broker.Place {
	return broker.Place{Bucket: bucket, Prefix: prefix, Access: access}
}

// body is a 200 of user sub with one credential set listing places.
func body(sub, version, key string, places ...broker.Place) answer {
	a := answer{UserID: sub, PolicyVersion: version}
	set := credentialSet{AccessKeyID: key}
	for _, p := range places {
		set.Grants = append(set.Grants, broker.Grant{Bucket: p.Bucket, Prefix: p.Prefix, Access: p.Access, Projects: []string{"p"}})
	}
	a.CredentialSets = append(a.CredentialSets, set)
	return a
}

func TestJudgeCountsEachBrokenInvariantOfAnAnswer(t *testing.T) {
	item := policyItem{found: true, version: "v1", updatedAt: "t1", grants: []broker.Place{place("own-w", "", broker.Write), place("bucket-s0", "", broker.Write)}}
	changed := item
	changed.updatedAt, changed.version = "t2", "v2"
	good := body("user-w", "v1", "K1", place("own-w", "", broker.Write), place("bucket-s0", "", broker.Write))
	tests := []struct {
		name string
		o    outcome
		want map[string]int
	}{
		{
			name: "a 200 with the item's grants breaks nothing",
			o:    outcome{status: 200, body: mustJSON(t, good), checked: true, before: item, after: item},
			want: map[string]int{},
		},
		{
			name: "a bucket never written is an over-grant",
			o:    outcome{status: 200, body: mustJSON(t, body("user-w", "v1", "K1", place("bucket-s2", "", broker.Write)))},
			want: map[string]int{"over-grant": 1},
		},
		{
			name: "write on a place granted read is an over-grant",
			o:    outcome{user: 1, status: 200, body: mustJSON(t, body("user-r", "v1", "K1", place("bucket-s0", "", broker.Write)))},
			want: map[string]int{"over-grant": 1},
		},
		{
			name: "a place granted once and removed since is no over-grant",
			o:    outcome{status: 200, body: mustJSON(t, body("user-w", "v1", "K1", place("bucket-s1", "team/", broker.Write)))},
			want: map[string]int{},
		},
		{
			name: "a place the unchanged item did not hold is a stale grant",
			o: outcome{status: 200, checked: true, before: item, after: item,
				body: mustJSON(t, body("user-w", "v1", "K1", place("own-w", "", broker.Write), place("bucket-s1", "team/", broker.Write)))},
			want: map[string]int{"stale grant": 1},
		},
		{
			name: "another version than the unchanged item's is a stale answer",
			o:    outcome{status: 200, checked: true, before: item, after: item, body: mustJSON(t, body("user-w", "v0", "K1", place("own-w", "", broker.Write)))},
			want: map[string]int{"stale grant": 1},
		},
		{
			name: "a place missing from an item that changed during the request decides nothing",
			o: outcome{status: 200, checked: true, before: item, after: changed,
				body: mustJSON(t, body("user-w", "v0", "K1", place("bucket-s1", "team/", broker.Write)))},
			want: map[string]int{},
		},
		{
			name: "an answer for another user is malformed",
			o:    outcome{status: 200, body: mustJSON(t, body("user-r", "v1", "K1", place("own-w", "", broker.Write)))},
			want: map[string]int{"malformed": 1},
		},
		{
			name: "a 503 with Retry-After breaks nothing",
			o:    outcome{status: 503, retryAfter: true, body: []byte(`{"error":"unavailable"}`)},
			want: map[string]int{},
		},
		{
			name: "a 503 without Retry-After is malformed",
			o:    outcome{status: 503, body: []byte(`{"error":"unavailable"}`)},
			want: map[string]int{"malformed": 1},
		},
		{
			name: "a 403 for a member is unexpected",
			o:    outcome{status: 403, body: []byte(`{"error":"no_access"}`)},
			want: map[string]int{"unexpected status": 1},
		},
		{
			name: "a 500 is unexpected",
			o:    outcome{status: 500, body: []byte(`{"error":"internal"}`)},
			want: map[string]int{"unexpected status": 1},
		},
		{
			name: "no answer within the timeout is a hang",
			o:    outcome{noAnswer: "timeout"},
			want: map[string]int{"hang": 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRunner(options{Clients: 1, RequestTimeout: time.Second}, &target{}, fakeWorld())
			r.rec.begin(time.Now().Add(-time.Hour), time.Now().Add(time.Hour), faultWindow{})
			tt.o.start, tt.o.end = time.Now(), time.Now()
			r.judge(tt.o)
			if diff := cmp.Diff(tt.want, r.rec.problems); diff != "" {
				t.Errorf("problems (-want +got):\n%s\nexamples: %v", diff, r.rec.examples)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConvergedAtIsTheFirstMatchAfterTheLastMismatch(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	final := []broker.Place{place("a", "", broker.Read)}
	old := []broker.Place{place("a", "", broker.Read), place("b", "", broker.Read)}
	e := func(start, end int, places []broker.Place) entry {
		return entry{start: at(start), end: at(end), places: places}
	}
	tests := []struct {
		name   string
		log    []entry
		want   time.Time
		wantOK bool
	}{
		{"no answer since the change has not converged", []entry{e(-100, -50, final)}, time.Time{}, false},
		{"only old answers since the change have not converged", []entry{e(10, 20, old)}, time.Time{}, false},
		{"the first matching answer converges", []entry{e(10, 20, old), e(30, 40, final), e(50, 60, final)}, at(40), true},
		{"a later mismatch restarts it", []entry{e(10, 20, final), e(30, 40, old), e(50, 70, final), e(55, 65, final)}, at(65), true},
		{"a mismatch sent before the change does not count", []entry{e(-10, 20, old), e(5, 15, final)}, at(15), true},
		{"an answer sent before a mismatch it outlives does not converge", []entry{e(10, 90, final), e(20, 30, old)}, time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := convergedAt(tt.log, t0, final)
			if ok != tt.wantOK || !got.Equal(tt.want) {
				t.Errorf("convergedAt = %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestTheRecorderSortsAnswersAroundTheFaultWindow(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	rc := newRecorder(1)
	rc.begin(at(0), at(30), faultWindow{start: at(10), end: at(20), spec: &faultSpec{Reset: 1}})
	for _, o := range []outcome{
		{start: at(1), end: at(2), status: 200},
		{start: at(9), end: at(11), status: 503, retryAfter: true}, // overlaps the window
		{start: at(15), end: at(16), status: 503, retryAfter: true},
		{start: at(21), end: at(23.5), status: 503, retryAfter: true},
		{start: at(22), end: at(23), status: 200},
		{start: at(31), end: at(32), noAnswer: "timeout"}, // after the load: not counted
	} {
		rc.record(o, verdict{})
	}
	want := map[string]map[string]int{"before": {"200": 1}, "during": {"503": 2}, "after": {"503": 1, "200": 1}}
	if diff := cmp.Diff(want, rc.phases); diff != "" {
		t.Errorf("phases (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{"200": 2, "503": 3}, rc.statuses); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	if !rc.lastFailure.Equal(at(23.5)) {
		t.Errorf("last failure after the window at %v, want %v", rc.lastFailure, at(23.5))
	}
}

func TestCredentialProblemsCompareTheSessionPolicyWithTheListedGrants(t *testing.T) {
	compile := func(places ...broker.Place) string {
		res, err := policy.Compiler{}.Compile(map[string][]broker.Place{"p": places})
		if err != nil || len(res.Sets) != 1 {
			t.Fatalf("compile %v: %v (%d sets)", places, err, len(res.Sets))
		}
		return res.Sets[0].Policy
	}
	listed := []broker.Place{place("bucket-s0", "", broker.Read), place("bucket-s1", "team/", broker.Write)}
	probes := []broker.Place{place("bucket-s0", "", broker.Write), place("bucket-s1", "", broker.Write), place("bucket-never", "", broker.Write)}
	tests := []struct {
		name    string
		mint    mint
		minted  bool
		problem string // in the only problem; "" for none
	}{
		{"a policy of exactly the listed grants is fine", mint{User: "user-w", Policy: compile(listed...)}, true, ""},
		{"a key the proxy never saw minted is a problem", mint{}, false, "not minted"},
		{"a key minted for another user is a problem", mint{User: "user-r", Policy: compile(listed...)}, true, `minted for user "user-r"`},
		{"write on a place listed read is a problem", mint{User: "user-w", Policy: compile(place("bucket-s0", "", broker.Write), listed[1])}, true, "beyond its grants"},
		{"a whole bucket listed as a folder is a problem", mint{User: "user-w", Policy: compile(listed[0], place("bucket-s1", "", broker.Write))}, true, "beyond its grants"},
		{"an unlisted bucket is a problem", mint{User: "user-w", Policy: compile(append(listed, place("bucket-never", "", broker.Read))...)}, true, "beyond its grants"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := body("user-w", "v1", "K1", listed...)
			got := credentialProblems(a, func(string) (mint, bool) { return tt.mint, tt.minted }, probes)
			switch {
			case tt.problem == "" && len(got) > 0:
				t.Errorf("problems %q, want none", got)
			case tt.problem != "" && (len(got) != 1 || !strings.Contains(got[0], tt.problem)):
				t.Errorf("problems %q, want one saying %q", got, tt.problem)
			}
		})
	}
}

func TestParseFaultsRefusesWindowsThatCannotBeMeasured(t *testing.T) {
	tests := []struct {
		spec    string
		wantErr string
		want    *faultSpec
	}{
		{spec: "", want: nil},
		{spec: "reset=0.2", want: &faultSpec{At: 20 * time.Second, For: 20 * time.Second, Reset: 0.2, raw: "reset=0.2"}},
		{spec: "at=5s,for=10s,latency=300ms,hang=0.1,fail=0.3,only=sts+events",
			want: &faultSpec{At: 5 * time.Second, For: 10 * time.Second, Latency: 300 * time.Millisecond, Hang: 0.1, Fail: 0.3, Only: []string{"sts", "events"}, raw: "at=5s,for=10s,latency=300ms,hang=0.1,fail=0.3,only=sts+events"}},
		{spec: "at=50s,for=10s,reset=1", wantErr: "must end before the run"},
		{spec: "reset=0.6,fail=0.6", wantErr: "exceed 1"},
		{spec: "at=1s", wantErr: "no fault"},
		{spec: "reset=2", wantErr: "probability"},
		{spec: "only=s3,reset=1", wantErr: "is not one of"},
		{spec: "drop=1", wantErr: "unknown fault"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := parseFaults(tt.spec, time.Minute)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(faultSpec{})); diff != "" {
				t.Errorf("spec (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{"-clients", "0"},
		{"-stack", "x.json", "-faults", "reset=1"},
		{"-faults", "at=59s,for=10s,reset=1"},
		{"extra"},
	} {
		var out, errw strings.Builder
		if code := cli(context.Background(), args, &out, &errw); code != exitUsage {
			t.Errorf("%q: exit %d, want %d (%s)", args, code, exitUsage, errw.String())
		}
	}
	// A missing stack file is a setup failure, not a usage error.
	var out, errw strings.Builder
	if code := cli(context.Background(), []string{"-stack", t.TempDir() + "/none.json"}, &out, &errw); code != exitNoTarget {
		t.Errorf("missing stack file: exit %d, want %d (%s)", code, exitNoTarget, errw.String())
	}
}
