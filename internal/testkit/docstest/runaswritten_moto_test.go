//go:build integration

package docstest_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/localstack"
	"github.com/credbroker/credbroker/internal/testkit/docstest"
	"github.com/credbroker/credbroker/internal/testkit/stacktest"
)

// documents are the docs whose shell blocks a reader runs against the local
// stack; each runs in its own terminal, from the top.
var documents = []string{"README.md", "docs/clients.md", "web/README.md"}

// skipped are the blocks that cannot run against the test's stack, by the
// name their docs-test comment gives them.
var skipped = map[string]string{
	"make-run":  "starts a local stack; the test has started its own",
	"make-test": "runs the tests, this one among them",
	"aws-only":  "needs an AWS account and a deployed stack",
	"install":   "installs software on the machine",
}

// TestDocsRunAsWritten runs every shell block of the documents, unchanged,
// in a copy of the checkout whose .local/stack.json is a seeded local stack
// started for the test on free ports (never the developer's `make run`),
// with build/credbroker built from this tree.
func TestDocsRunAsWritten(t *testing.T) {
	root := repoRoot(t)
	work := t.TempDir()
	// The checkout, seen through links, with a .local and a build of its own.
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		switch e.Name() {
		case ".local", "build", ".git":
			continue
		}
		if err := os.Symlink(filepath.Join(root, e.Name()), filepath.Join(work, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	build := exec.Command("go", "build", "-o", filepath.Join(work, "build", "credbroker"), "./cmd/credbroker")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/credbroker: %v\n%s", err, out)
	}
	st := stacktest.Start(t, localstack.Options{Dir: filepath.Join(work, ".local"), Seed: true,
		LambdaPort: stacktest.FreePort(t), Out: testWriter{t}})
	_ = st
	home := t.TempDir()
	for _, doc := range documents {
		t.Run(doc, func(t *testing.T) {
			f, err := os.Open(filepath.Join(root, doc))
			if err != nil {
				t.Fatal(err)
			}
			blocks, err := docstest.Extract(doc, f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			var run []docstest.Block
			for _, b := range blocks {
				if reason, ok := skipped[b.Name]; ok {
					t.Logf("skipped %s: %s", b, reason)
					continue
				}
				run = append(run, b)
			}
			if len(run) == 0 {
				t.Fatalf("%s has no block to run", doc)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
			defer cancel()
			mark := filepath.Join(t.TempDir(), "mark")
			cmd := exec.CommandContext(ctx, "bash", "-c", docstest.Script(run))
			cmd.Dir = work
			cmd.Env = readerEnv(home, mark)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err = cmd.Run()
			at, _ := os.ReadFile(mark)
			if err != nil {
				where := "before its first block"
				if i, convErr := strconv.Atoi(strings.TrimSpace(string(at))); convErr == nil && i < len(run) {
					where = run[i].String()
				}
				t.Fatalf("%s: the block at %s failed: %v\n%s", doc, where, err, out.String())
			}
			t.Logf("%s: %d blocks ran\n%s", doc, len(run), out.String())
		})
	}
}

// readerEnv is a reader's terminal: their PATH and nothing of the test
// run's AWS settings, a home of their own (token files), no stack of ours.
func readerEnv(home, mark string) []string {
	env := []string{"HOME=" + home, "DOCSTEST_MARK=" + mark}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "PATH", k == "GOPATH", k == "GOCACHE", k == "GOMODCACHE", k == "GOFLAGS", k == "LANG", k == "TMPDIR":
			env = append(env, kv)
		}
	}
	if os.Getenv("GOCACHE") == "" { // the reader's Go cache: this run's, so `go run` does not start cold
		if out, err := exec.Command("go", "env", "GOCACHE").Output(); err == nil {
			env = append(env, "GOCACHE="+strings.TrimSpace(string(out)))
		}
	}
	if os.Getenv("GOMODCACHE") == "" {
		if out, err := exec.Command("go", "env", "GOMODCACHE").Output(); err == nil {
			env = append(env, "GOMODCACHE="+strings.TrimSpace(string(out)))
		}
	}
	return env
}

func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Logf("%s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}
