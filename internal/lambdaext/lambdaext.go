// Package lambdaext runs work after each Lambda invocation, once its answer
// has gone out, as an internal extension (a goroutine of the function's own
// process registered with the Lambda Extensions API).
//
// Lambda returns a function's result to its caller as soon as the runtime
// posts it, but keeps the execution environment running until every
// registered extension asks for the next event. An extension that does its
// work between the invocation's end and that request therefore adds nothing
// to the caller's latency, and its work is not frozen half-done. Registering
// any extension also makes Lambda send SIGTERM to the process before it
// shuts the environment down (with about 500 ms to spare), which is when
// the last work is done.
package lambdaext

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Event is what the Extensions API's next call returns.
type Event struct {
	EventType  string `json:"eventType"` // INVOKE or SHUTDOWN
	DeadlineMs int64  `json:"deadlineMs"`
	RequestID  string `json:"requestId"`
}

// Client speaks the Extensions API at http://$AWS_LAMBDA_RUNTIME_API.
type Client struct {
	// RuntimeAPI is the host:port of AWS_LAMBDA_RUNTIME_API.
	RuntimeAPI string
	// Name is the extension's name in Lambda's logs.
	Name string
	// HTTP defaults to a client without a timeout: next blocks until the
	// next invocation, however long that takes.
	HTTP *http.Client

	id string
}

func (c *Client) url(path string) string {
	return "http://" + c.RuntimeAPI + "/2020-01-01/extension/" + path
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

// Register registers the extension for INVOKE events. It must be called
// before the runtime asks for its first invocation (before lambda.Start).
func (c *Client) Register(ctx context.Context) error {
	body, _ := json.Marshal(map[string][]string{"events": {"INVOKE"}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url("register"), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Lambda-Extension-Name", c.Name)
	resp, err := c.http().Do(req)
	if err != nil {
		return fmt.Errorf("register extension: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("register extension: %s", resp.Status)
	}
	c.id = resp.Header.Get("Lambda-Extension-Identifier")
	if c.id == "" {
		return fmt.Errorf("register extension: no Lambda-Extension-Identifier in the answer")
	}
	return nil
}

// Next tells Lambda that the extension is done with the current event and
// waits for the next one.
func (c *Client) Next(ctx context.Context) (Event, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("event/next"), nil)
	if err != nil {
		return Event{}, err
	}
	req.Header.Set("Lambda-Extension-Identifier", c.id)
	resp, err := c.http().Do(req)
	if err != nil {
		return Event{}, fmt.Errorf("next extension event: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Event{}, fmt.Errorf("next extension event: %s", resp.Status)
	}
	var ev Event
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&ev); err != nil {
		return Event{}, fmt.Errorf("decode extension event: %w", err)
	}
	return ev, nil
}

// AfterInvoke runs work once per invocation, after the handler has
// returned and before the extension asks for the next event. Lambda's
// timeout covers that time too, so work gets at most Budget and never
// runs past the invocation's deadline.
type AfterInvoke struct {
	client  *Client
	work    func(ctx context.Context)
	budget  time.Duration
	handled chan struct{}
}

// NewAfterInvoke returns the loop; register c first.
func NewAfterInvoke(c *Client, budget time.Duration, work func(ctx context.Context)) *AfterInvoke {
	return &AfterInvoke{client: c, work: work, budget: budget, handled: make(chan struct{}, 1)}
}

// Done is the handler's signal that an invocation is over, however it
// ended. Lambda runs one invocation at a time per environment.
func (a *AfterInvoke) Done() {
	select {
	case a.handled <- struct{}{}:
	default:
	}
}

// Loop asks for events until Next fails (the environment is going away, or
// the API cannot be reached), running the work after each invocation's
// handler has called Done. It is meant for its own goroutine.
func (a *AfterInvoke) Loop(ctx context.Context) error {
	for {
		ev, err := a.client.Next(ctx)
		if err != nil {
			return err
		}
		if ev.EventType != "INVOKE" {
			continue
		}
		deadline := time.Now().Add(a.budget)
		if ev.DeadlineMs > 0 {
			deadline = time.UnixMilli(ev.DeadlineMs)
		}
		select {
		case <-a.handled:
		case <-time.After(time.Until(deadline)):
			// The handler did not finish in time; Lambda ends the
			// invocation now whatever the extension does.
			continue
		case <-ctx.Done():
			return ctx.Err()
		}
		wctx, cancel := context.WithDeadline(ctx, minTime(deadline, time.Now().Add(a.budget)))
		a.work(wctx)
		cancel()
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// Flusher is work that invocations queue and that is done after them.
type Flusher interface {
	// Flush does what is queued, within ctx.
	Flush(ctx context.Context) error
	// Len is how much is still queued.
	Len() int
}

// Times given to a Flusher after each invocation's answer and at shutdown,
// where Lambda leaves about 500 ms to a runtime with an internal extension.
const (
	FlushBudget    = 2 * time.Second
	ShutdownBudget = 400 * time.Millisecond
)

// FlushAfterInvoke wraps a handler so that f is flushed after each
// invocation, once its answer has gone out, by an internal extension
// registered on the Runtime API at api; and once more when Lambda shuts
// the environment down (SIGTERM), after which the process exits. If the
// extension cannot be registered, the handler flushes before it answers
// instead: slower, but nothing waits in a frozen process. Call it before
// lambda.Start.
func FlushAfterInvoke[E, R any](api string, f Flusher, handler func(context.Context, E) (R, error), log *slog.Logger) func(context.Context, E) (R, error) {
	return flushAfterInvoke(api, f, handler, log, os.Exit)
}

// flushAfterInvoke is FlushAfterInvoke ending the process with exit.
func flushAfterInvoke[E, R any](api string, f Flusher, handler func(context.Context, E) (R, error), log *slog.Logger, exit func(code int)) func(context.Context, E) (R, error) {
	client := &Client{RuntimeAPI: api, Name: "credbroker-flush"}
	work := func(ctx context.Context) {
		if err := f.Flush(ctx); err != nil {
			log.Warn("queued work not done after the invocation; kept for the next", "queued", f.Len(), "err", err)
		}
	}
	if err := client.Register(context.Background()); err != nil {
		log.Error("extension not registered; queued work is done before each answer", "err", err)
		return func(ctx context.Context, ev E) (R, error) {
			resp, err := handler(ctx, ev)
			fctx, cancel := context.WithTimeout(ctx, FlushBudget)
			work(fctx)
			cancel()
			return resp, err
		}
	}
	after := NewAfterInvoke(client, FlushBudget, work)
	flushAndExit := func(code int) {
		ctx, cancel := context.WithTimeout(context.Background(), ShutdownBudget)
		if err := f.Flush(ctx); err != nil {
			log.Error("queued work lost at exit", "queued", f.Len(), "err", err)
		}
		cancel()
		exit(code)
	}
	go func() {
		// Lambda waits for every registered extension to ask for the next
		// event; one that stops asking holds the environment until the
		// invocation times out. This one is the process itself, so the
		// process ends, and Lambda starts a new environment for the next
		// invocation (Extensions API: an extension that fails exits).
		err := after.Loop(context.Background())
		log.Error("extension stopped; exiting", "err", err)
		flushAndExit(1)
	}()
	sigterm := make(chan os.Signal, 1)
	signal.Notify(sigterm, syscall.SIGTERM)
	go func() {
		<-sigterm
		flushAndExit(0)
	}()
	return func(ctx context.Context, ev E) (R, error) {
		defer after.Done()
		return handler(ctx, ev)
	}
}
