package lambdaext_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/lambdaext"
)

// runtimeAPI is a hand-written fake of Lambda's Extensions API (no Lambda
// here): it registers one extension and hands it an INVOKE event each time
// the test invokes, recording how much work was queued whenever the
// extension asked for its next event.
type runtimeAPI struct {
	t        *testing.T
	srv      *httptest.Server
	refuse   bool
	failNext int // the next call (1-based) answered with a 500; 0: none
	invokes  chan string
	mu       sync.Mutex
	name     string
	events   []string
	nexts    int
	atNext   []int // the flusher's Len at each next after the first
	flusher  *queue
	nextSeen chan struct{}
	closing  chan struct{}
}

func newRuntimeAPI(t *testing.T, f *queue) *runtimeAPI {
	r := &runtimeAPI{t: t, invokes: make(chan string), flusher: f, nextSeen: make(chan struct{}, 16), closing: make(chan struct{})}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	// Cleanups run last first: the pending next call ends before Close.
	t.Cleanup(func() { close(r.closing) })
	return r
}

func (r *runtimeAPI) addr() string { return strings.TrimPrefix(r.srv.URL, "http://") }

func (r *runtimeAPI) serve(w http.ResponseWriter, req *http.Request) {
	switch req.URL.Path {
	case "/2020-01-01/extension/register":
		if r.refuse {
			http.Error(w, "no", http.StatusForbidden)
			return
		}
		var body struct{ Events []string }
		_ = json.NewDecoder(req.Body).Decode(&body)
		r.mu.Lock()
		r.name, r.events = req.Header.Get("Lambda-Extension-Name"), body.Events
		r.mu.Unlock()
		w.Header().Set("Lambda-Extension-Identifier", "ext-1")
		_, _ = io.WriteString(w, "{}")
	case "/2020-01-01/extension/event/next":
		if req.Header.Get("Lambda-Extension-Identifier") != "ext-1" {
			http.Error(w, "unknown extension", http.StatusForbidden)
			return
		}
		r.mu.Lock()
		r.nexts++
		if r.nexts > 1 {
			r.atNext = append(r.atNext, r.flusher.Len())
		}
		failed := r.nexts == r.failNext
		r.mu.Unlock()
		if failed {
			http.Error(w, "runtime API failure", http.StatusInternalServerError)
			return
		}
		r.nextSeen <- struct{}{}
		select {
		case id := <-r.invokes:
			_ = json.NewEncoder(w).Encode(lambdaext.Event{EventType: "INVOKE", RequestID: id,
				DeadlineMs: time.Now().Add(time.Minute).UnixMilli()})
		case <-r.closing:
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
		}
	default:
		http.NotFound(w, req)
	}
}

// queue is a Flusher counting queued and flushed items.
type queue struct {
	queued, flushed atomic.Int64
}

func (q *queue) Flush(context.Context) error {
	q.flushed.Add(q.queued.Swap(0))
	return nil
}
func (q *queue) Len() int { return int(q.queued.Load()) }

// The extension does the queued work after each invocation's handler has
// returned and before it asks Lambda for the next event: the next request
// finds nothing left over, and the handler never waited for the work.
func TestWorkIsDoneAfterEachInvocationBeforeTheNext(t *testing.T) {
	q := &queue{}
	api := newRuntimeAPI(t, q)
	handler := func(_ context.Context, n int) (int, error) {
		q.queued.Add(int64(n))
		if q.flushed.Load() != 0 && n == 1 {
			t.Error("work was done before the first handler returned")
		}
		return n, nil
	}
	// The fake's shutdown fails the pending next call: the extension
	// then exits, which must not end the test binary.
	wrapped := lambdaext.FlushAfterInvokeExiting(api.addr(), q, handler, slog.New(slog.DiscardHandler), func(int) {})
	<-api.nextSeen // init: the extension waits for the first event

	for i, n := range []int{1, 3, 2} {
		api.invokes <- "req"
		if got, _ := wrapped(context.Background(), n); got != n {
			t.Fatalf("invocation %d answered %d", i, got)
		}
		<-api.nextSeen
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if api.name == "" || len(api.events) != 1 || api.events[0] != "INVOKE" {
		t.Errorf("registered as %q for %v, want a name and INVOKE only (internal extensions cannot have SHUTDOWN)", api.name, api.events)
	}
	if len(api.atNext) != 3 || api.atNext[0] != 0 || api.atNext[1] != 0 || api.atNext[2] != 0 {
		t.Errorf("work left when the extension asked for the next event: %v, want none each time", api.atNext)
	}
	if got := q.flushed.Load(); got != 6 {
		t.Errorf("%d items done, want 6", got)
	}
}

// Without a registered extension nothing would run between invocations, so
// the handler does the work before answering.
func TestWithoutTheExtensionWorkIsDoneBeforeTheAnswer(t *testing.T) {
	q := &queue{}
	api := newRuntimeAPI(t, q)
	api.refuse = true
	wrapped := lambdaext.FlushAfterInvoke(api.addr(), q, func(_ context.Context, n int) (int, error) {
		q.queued.Add(int64(n))
		return n, nil
	}, slog.New(slog.DiscardHandler))
	if _, err := wrapped(context.Background(), 4); err != nil {
		t.Fatal(err)
	}
	if q.Len() != 0 || q.flushed.Load() != 4 {
		t.Errorf("after the answer: %d queued, %d done; want 0 and 4", q.Len(), q.flushed.Load())
	}
}

// An extension that stops asking for the next event holds the environment
// until the invocation times out. When Next fails the extension, which is
// the process itself, does what is queued and ends the process with a
// failure status, so Lambda starts a new environment.
func TestExtensionExitsWhenNextFails(t *testing.T) {
	q := &queue{}
	api := newRuntimeAPI(t, q)
	api.failNext = 2 // the one after the first invocation
	exited := make(chan int, 2)
	wrapped := lambdaext.FlushAfterInvokeExiting(api.addr(), q, func(_ context.Context, n int) (int, error) {
		q.queued.Add(int64(n))
		return n, nil
	}, slog.New(slog.DiscardHandler), func(code int) { exited <- code })
	<-api.nextSeen

	api.invokes <- "req"
	if _, err := wrapped(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	if code := <-exited; code == 0 {
		t.Errorf("exit status %d after Next failed, want a failure status", code)
	}
	if q.Len() != 0 || q.flushed.Load() != 3 {
		t.Errorf("at exit: %d queued, %d done; want 0 and 3", q.Len(), q.flushed.Load())
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if api.nexts != 2 {
		t.Errorf("%d next calls, want 2 (none after the failure)", api.nexts)
	}
}
