package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/credbroker/credbroker/internal/backoff"
	"github.com/credbroker/credbroker/internal/broker"
)

// runner is one run of the generator against one stack.
type runner struct {
	o        options
	t        *target
	w        *world
	http     *http.Client
	universe []broker.Place
	next     atomic.Int64 // round robin over users
	rec      *recorder

	credMu sync.Mutex
	// credChecked caches credentialProblems per access key and listed
	// grants: a cached set comes back many times.
	credChecked map[string][]string
}

func newRunner(o options, t *target, w *world) *runner {
	return &runner{
		o: o, t: t, w: w, universe: w.universe(), credChecked: map[string][]string{},
		http: &http.Client{Timeout: o.RequestTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: o.Clients + 1}},
		rec:  newRecorder(len(w.users)),
	}
}

// outcome is what one request came to.
type outcome struct {
	user       int
	start, end time.Time
	status     int    // 0: no answer
	noAnswer   string // "timeout" or "error" when status is 0
	retryAfter bool
	body       []byte
	checked    bool // before and after were read
	before     policyItem
	after      policyItem
}

// request asks the endpoint for user u's credentials; with check, it reads
// the user's policy item just before and just after.
func (r *runner) request(ctx context.Context, u int, check bool) outcome {
	usr := r.w.users[u]
	o := outcome{user: u}
	var err error
	if check {
		o.before, err = readItem(ctx, r.w.ddb, r.t.info.PolicyTable, usr.sub)
		check = err == nil
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.t.info.APIURL+"/auths/resources", nil)
	req.Header.Set("Authorization", "Bearer "+usr.token)
	o.start = time.Now()
	resp, err := r.http.Do(req)
	if err == nil {
		o.body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		o.status = resp.StatusCode
		o.retryAfter = resp.Header.Get("Retry-After") != ""
	}
	o.end = time.Now()
	if err != nil {
		o.status, o.noAnswer = 0, "error"
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			o.noAnswer = "timeout"
		}
		return o
	}
	if check {
		o.after, err = readItem(ctx, r.w.ddb, r.t.info.PolicyTable, usr.sub)
		o.checked = err == nil
	}
	return o
}

// warmUp waits until every user's answer shows the initial state. It
// first watches the policy items themselves, so that the wait costs moto
// one read per poll rather than a request (and a CredentialsDenied event)
// per 403, then asks once per user, which mints and caches its credentials.
func (r *runner) warmUp(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	pause := func() error { return backoff.Sleep(ctx, 100*time.Millisecond) }
	for _, usr := range r.w.users {
		want := r.w.expected(usr)
		for {
			it, err := readItem(ctx, r.w.ddb, r.t.info.PolicyTable, usr.sub)
			sortPlaces(it.grants)
			if err == nil && slices.Equal(it.grants, want) {
				break
			}
			if pause() != nil {
				return fmt.Errorf("the policy item of user %s never held its initial grants (last read: %+v, %v)", usr.name, it, err)
			}
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.o.Clients)
	for u, usr := range r.w.users {
		g.Go(func() error {
			want := r.w.expected(usr)
			for {
				o := r.request(gctx, u, false)
				var a answer
				if o.status == http.StatusOK && json.Unmarshal(o.body, &a) == nil && slices.Equal(a.places(), want) {
					return nil
				}
				if pause() != nil {
					return fmt.Errorf("user %s never got its initial grants (last answer %d %s)", usr.name, o.status, strings.TrimSpace(string(o.body)))
				}
			}
		})
	}
	return g.Wait()
}

// client sends requests, one at a time, until stop is closed.
func (r *runner) client(ctx context.Context, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		u := int((r.next.Add(1) - 1) % int64(len(r.w.users)))
		o := r.request(ctx, u, rand.Float64() < r.o.Check)
		if ctx.Err() != nil {
			return
		}
		r.judge(o)
	}
}

// judge checks one outcome and records it.
func (r *runner) judge(o outcome) {
	usr := r.w.users[o.user]
	v := verdict{}
	switch {
	case o.status == 0 && o.noAnswer == "timeout":
		v.add("hang", fmt.Sprintf("no answer within %v", r.o.RequestTimeout))
	case o.status == 0:
		v.add("no answer", "the endpoint's connection failed")
	case o.status == http.StatusOK:
		var a answer
		if err := json.Unmarshal(o.body, &a); err != nil {
			v.add("malformed", fmt.Sprintf("200 body: %v", err))
			break
		}
		if err := a.wellFormed(usr.sub); err != nil {
			v.add("malformed", err.Error())
			break
		}
		v.places = a.places()
		if over := overGrants(a, func(g broker.Place) bool { return r.w.everGranted(usr, g) }); len(over) > 0 {
			v.add("over-grant", fmt.Sprintf("%s was granted %v, never granted to it", usr.name, over))
		}
		if r.t.proxy != nil {
			for _, p := range r.credentials(a) {
				v.add("over-grant", fmt.Sprintf("%s: credentials: %s", usr.name, p))
			}
			keys := make([]string, len(a.CredentialSets))
			for i, s := range a.CredentialSets {
				keys[i] = s.AccessKeyID
			}
			r.t.proxy.arrived(keys)
		}
		if o.checked {
			stale, wrongVersion, decided := staleness(o.before, o.after, a)
			v.decided = decided
			if len(stale) > 0 {
				v.add("stale grant", fmt.Sprintf("%s got %v, which its policy item (version %s) did not hold during the request", usr.name, stale, o.before.version))
			}
			if wrongVersion {
				v.add("stale grant", fmt.Sprintf("%s got version %s while its policy item held %s during the whole request", usr.name, a.PolicyVersion, o.before.version))
			}
		}
	case o.status == http.StatusServiceUnavailable:
		if !o.retryAfter {
			v.add("malformed", "503 without Retry-After")
		}
	default:
		v.add("unexpected status", fmt.Sprintf("%s got %d %s", usr.name, o.status, strings.TrimSpace(string(o.body))))
	}
	r.rec.record(o, v)
}

// credentials checks a 200's access keys, once per key and grant list.
func (r *runner) credentials(a answer) []string {
	var out []string
	for _, s := range a.CredentialSets {
		b, _ := json.Marshal(s)
		k := string(b)
		r.credMu.Lock()
		probs, ok := r.credChecked[k]
		r.credMu.Unlock()
		if !ok {
			one := a
			one.CredentialSets = []credentialSet{s}
			probs = credentialProblems(one, r.t.proxy.mintOf, r.universe)
			r.credMu.Lock()
			r.credChecked[k] = probs
			r.credMu.Unlock()
		}
		out = append(out, probs...)
	}
	return out
}

// verdict is what judge found in one outcome.
type verdict struct {
	problems []problem
	places   []broker.Place // the grants of a 200
	decided  bool           // the staleness check could decide
}

type problem struct{ kind, detail string }

func (v *verdict) add(kind, detail string) { v.problems = append(v.problems, problem{kind, detail}) }

// recorder accumulates outcomes. Latencies and statuses count the load
// window only; problems count every judged answer.
type recorder struct {
	mu        sync.Mutex
	loadStart time.Time
	loadEnd   time.Time
	window    faultWindow

	latencies    []time.Duration
	latencies200 []time.Duration
	statuses     map[string]int
	phases       map[string]map[string]int // before, during (overlapping) and after the fault window
	// lastFailure is the end of the last non-200 answer to a request
	// sent after the fault window.
	lastFailure time.Time

	problems map[string]int
	examples []string
	checked  int // answers read around
	decided  int // of which the item did not change

	log [][]entry // per user, every 200 (convergence)
}

// entry is a 200 of one user, for convergence.
type entry struct {
	start, end time.Time
	places     []broker.Place
}

func newRecorder(users int) *recorder {
	return &recorder{statuses: map[string]int{}, phases: map[string]map[string]int{}, problems: map[string]int{}, log: make([][]entry, users)}
}

func (rc *recorder) begin(start, end time.Time, w faultWindow) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.loadStart, rc.loadEnd, rc.window = start, end, w
}

const maxExamples = 10

func (rc *recorder) record(o outcome, v verdict) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, p := range v.problems {
		rc.problems[p.kind]++
		if len(rc.examples) < maxExamples {
			rc.examples = append(rc.examples, fmt.Sprintf("%s at +%.3fs: %s", p.kind, o.start.Sub(rc.loadStart).Seconds(), p.detail))
		}
	}
	if o.checked && o.status == http.StatusOK {
		rc.checked++
		if v.decided {
			rc.decided++
		}
	}
	if o.status == http.StatusOK && v.places != nil {
		rc.log[o.user] = append(rc.log[o.user], entry{start: o.start, end: o.end, places: v.places})
	}
	if o.start.Before(rc.loadStart) || !o.start.Before(rc.loadEnd) {
		return
	}
	status := strconv.Itoa(o.status)
	if o.status == 0 {
		status = o.noAnswer
	}
	rc.statuses[status]++
	rc.latencies = append(rc.latencies, o.end.Sub(o.start))
	if o.status == http.StatusOK {
		rc.latencies200 = append(rc.latencies200, o.end.Sub(o.start))
	}
	if rc.window.spec != nil {
		// A request that overlapped the window at all counts as during.
		phase := "during"
		switch {
		case !o.end.After(rc.window.start):
			phase = "before"
		case !o.start.Before(rc.window.end):
			phase = "after"
			if o.status != http.StatusOK && o.end.After(rc.lastFailure) {
				rc.lastFailure = o.end
			}
		}
		if rc.phases[phase] == nil {
			rc.phases[phase] = map[string]int{}
		}
		rc.phases[phase][status]++
	}
}

// convergedAt is when a user's answers began to match want for good,
// looking at requests sent after since: the end of the first matching
// answer sent after the last mismatching one was sent. ok is false while
// no such answer exists.
func convergedAt(log []entry, since time.Time, want []broker.Place) (at time.Time, ok bool) {
	lastBad := since
	for _, e := range log {
		if e.start.After(since) && !slices.Equal(e.places, want) && e.start.After(lastBad) {
			lastBad = e.start
		}
	}
	for _, e := range log {
		if e.start.After(lastBad) && slices.Equal(e.places, want) && (!ok || e.end.Before(at)) {
			at, ok = e.end, true
		}
	}
	return at, ok
}

// convergence reports when every user's answers matched want: the latest
// of the users' convergedAt, and the users still not there.
func (rc *recorder) convergence(since time.Time, want [][]broker.Place) (at time.Time, pending int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for u, log := range rc.log {
		t, ok := convergedAt(log, since, want[u])
		if !ok {
			pending++
			continue
		}
		if t.After(at) {
			at = t
		}
	}
	return at, pending
}

// awaitConvergence polls the recorder, while the clients go on, until every
// user's answers match the final state or limit passes.
func (r *runner) awaitConvergence(ctx context.Context, lastChange time.Time, limit time.Duration) (time.Duration, int) {
	want := make([][]broker.Place, len(r.w.users))
	for u, usr := range r.w.users {
		want[u] = r.w.expected(usr)
	}
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		at, pending := r.rec.convergence(lastChange, want)
		if pending == 0 {
			return at.Sub(lastChange), 0
		}
		select {
		case <-ctx.Done():
			return 0, pending
		case <-deadline.C:
			return 0, pending
		case <-tick.C:
		}
	}
}

// write runs the writer from start until end: one change every
// ChangeEvery. It returns when the last change was sent.
func (r *runner) write(ctx context.Context, start, end time.Time, rng *rand.Rand) (last time.Time, changes int, err error) {
	last = start
	wait := time.NewTimer(time.Until(end))
	defer wait.Stop()
	if r.o.ChangeEvery <= 0 {
		select {
		case <-ctx.Done():
		case <-wait.C:
		}
		return last, 0, ctx.Err()
	}
	tick := time.NewTicker(r.o.ChangeEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return last, changes, ctx.Err()
		case <-wait.C:
			return last, changes, nil
		case now := <-tick.C:
			if !now.Before(end) {
				continue
			}
			sent, err := r.w.change(ctx, rng)
			if err != nil {
				return last, changes, err
			}
			last, changes = sent, changes+1
		}
	}
}

// percentile is the nearest-rank percentile of sorted durations: the
// smallest value with at least p% of the values at or below it.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(float64(len(sorted)) * p / 100))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func sortedCopy(d []time.Duration) []time.Duration {
	out := slices.Clone(d)
	slices.Sort(out)
	return out
}
