// Package browsertest drives a real headless Chromium (Debian's chromium
// package) through chromedp for the browser tests of the integration tier.
// Like moto, the browser is not optional: a test that needs it fails when it
// is missing, unless BROWSER_TESTS=off says that this machine leaves the
// browser tier out (`.ci/run` never sets it).
package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// OffVar turns the browser tests into skips when set to "off".
const OffVar = "BROWSER_TESTS"

// StepTimeout bounds every step of a Page: a wait for a DOM state that never
// comes fails the test after it, with the page's console and DOM.
const StepTimeout = 30 * time.Second

// Chromium returns the browser's path (chromium, else chromium-browser on
// PATH) or fails the test.
func Chromium(tb testing.TB) string {
	tb.Helper()
	if os.Getenv(OffVar) == "off" {
		tb.Skip(OffVar + "=off: the browser tier is left out on this machine")
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	tb.Fatal("chromium is not installed: `apt-get install chromium` (Debian; `.ci/run` installs it), " +
		"or set " + OffVar + "=off to leave the browser tests out on this machine")
	return ""
}

// Request is a request the page sent.
type Request struct{ Method, URL string }

// Page is one tab of a headless Chromium that lives as long as the test.
type Page struct {
	tb  testing.TB
	ctx context.Context

	mu       sync.Mutex
	console  []string
	thrown   []string
	requests []Request
}

// Open starts Chromium with one blank tab. limit bounds the browser's whole
// life; each step is bounded by StepTimeout. When the test fails, the
// page's console, its requests, its DOM and a screenshot are reported.
func Open(tb testing.TB, limit time.Duration) *Page {
	tb.Helper()
	path := Chromium(tb)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Flag("headless", "new"),
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
	)
	if os.Geteuid() == 0 {
		// Chromium's sandbox refuses to run as root (CI runs as root).
		opts = append(opts, chromedp.NoSandbox)
	}
	p := &Page{tb: tb}
	base, cancelBase := context.WithTimeout(context.Background(), limit)
	alloc, cancelAlloc := chromedp.NewExecAllocator(base, opts...)
	ctx, cancelTab := chromedp.NewContext(alloc, chromedp.WithListener(p.record))
	tb.Cleanup(func() { cancelTab(); cancelAlloc(); cancelBase() })
	p.ctx = ctx
	// The first Do starts the browser and ties it to ctx (not to a step's
	// shorter deadline).
	if err := chromedp.Do(ctx); err != nil {
		tb.Fatalf("start %s: %v", path, err)
	}
	// Registered after the cancel, so it runs before it, on a live tab.
	tb.Cleanup(func() {
		if tb.Failed() {
			p.report()
		}
	})
	return p
}

// record runs in the tab's message loop, in the order Chrome sent the
// events: by the time a step returns, every request and message the page
// made before that step's answer is recorded.
func (p *Page) record(ev any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch e := ev.(type) {
	case *network.EventRequestWillBeSent:
		if e.Request != nil {
			p.requests = append(p.requests, Request{Method: e.Request.Method, URL: e.Request.URL})
		}
	case *runtime.EventConsoleAPICalled:
		args := make([]string, 0, len(e.Args))
		for _, a := range e.Args {
			if len(a.Value) > 0 {
				args = append(args, string(a.Value))
			} else {
				args = append(args, a.Description)
			}
		}
		p.console = append(p.console, fmt.Sprintf("console.%s: %s", e.Type, strings.Join(args, " ")))
	case *runtime.EventExceptionThrown:
		text := e.ExceptionDetails.Text
		if x := e.ExceptionDetails.Exception; x != nil && x.Description != "" {
			text += " " + x.Description
		}
		p.thrown = append(p.thrown, text)
		p.console = append(p.console, "uncaught: "+text)
	case *cdplog.EventEntryAdded:
		if e.Entry != nil {
			p.console = append(p.console, fmt.Sprintf("log %s %s: %s %s", e.Entry.Level, e.Entry.Source, e.Entry.Text, e.Entry.URL))
		}
	}
}

// Do runs steps within StepTimeout; what names them in a failure.
func (p *Page) Do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.tb.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, StepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.tb.Fatalf("%s: %v", what, err)
	}
}

// Get runs one action that returns a value, within StepTimeout.
func Get[T any](p *Page, what string, a chromedp.Action[T]) T {
	p.tb.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, StepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		p.tb.Fatalf("%s: %v", what, err)
	}
	return v
}

// Requests returns the requests the page has sent so far.
func (p *Page) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Request(nil), p.requests...)
}

// Uncaught returns the exceptions nothing in the page caught.
func (p *Page) Uncaught() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.thrown...)
}

// Screenshot writes a PNG of the whole page to path.
func (p *Page) Screenshot(path string) error {
	ctx, cancel := context.WithTimeout(p.ctx, StepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, png, 0o644)
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// report logs what the page did and shows, for a failed test.
func (p *Page) report() {
	p.mu.Lock()
	console, requests := strings.Join(p.console, "\n  "), p.requests
	p.mu.Unlock()
	p.tb.Logf("page console and browser log:\n  %s", console)
	var rs strings.Builder
	for _, r := range requests {
		fmt.Fprintf(&rs, "\n  %s %s", r.Method, r.URL)
	}
	p.tb.Logf("page requests:%s", rs.String())
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	if html, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html"))); err != nil {
		p.tb.Logf("page DOM: %v", err)
	} else {
		p.tb.Logf("page DOM:\n%s", html)
	}
	shot := filepath.Join(os.TempDir(), unsafeName.ReplaceAllString(p.tb.Name(), "_")+"-failed.png")
	if err := p.Screenshot(shot); err != nil {
		p.tb.Logf("screenshot: %v", err)
	} else {
		p.tb.Logf("screenshot of the failed page: %s", shot)
	}
}
