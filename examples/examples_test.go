//go:build integration

// Package examples_test runs the programs the docs give for the local stack
// as a reader runs them: the Go example (examples/local-go), the JavaScript
// one (web/examples/local.mjs) and the browser module's smoke script
// (web/scripts/smoke.mjs), on a seeded local stack of their own.
package examples_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/credbroker/credbroker/internal/localstack"
	"github.com/credbroker/credbroker/internal/samtemplate"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
	"github.com/credbroker/credbroker/internal/testkit/stacktest"
)

// Both examples list what the demo user may read, and end each way they can
// go wrong in one message that names the next step, with the exit status
// their comments give (2 usage, 3 failure), never a stack trace: among them
// a grant on a bucket that S3 does not have, as the README's worked example
// gave before the seed created its bucket. Then the smoke script passes on
// the seeded stack, and with that missing bucket fails its one step, with
// the fix, and goes on.
func TestTheLocalProgramsRunAgainstASeededStack(t *testing.T) {
	root := repoRoot(t)
	web := filepath.Join(root, "web")
	if _, err := os.Stat(filepath.Join(web, "node_modules", "@aws-sdk", "client-s3")); err != nil {
		t.Fatalf("web/node_modules is not installed (%v): run `make test-web` (Node.js 20+ and npm), which `make test` does first", err)
	}
	goExample := filepath.Join(t.TempDir(), "local-go")
	if out, err := exec.Command("go", "build", "-o", goExample, filepath.Join(root, "examples", "local-go")).CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/local-go: %v\n%s", err, out)
	}
	st := stacktest.Start(t, localstack.Options{Seed: true})
	stack, password := st.InfoPath(), st.Demo.Password
	// Each as its docs run it, from the checkout's root.
	examples := []string{"Go", "JavaScript"}
	argv := map[string][]string{"Go": {goExample}, "JavaScript": {"node", "web/examples/local.mjs"}}

	for _, tc := range []struct {
		name     string
		args     []string
		password string
		status   int
		stdout   string
		stderr   []string
	}{
		{"lists a granted folder", []string{"--bucket", "demo-curated", "--prefix", "team-a/"}, password, 0,
			"s3://demo-curated/team-a/hello.txt\t24 bytes\n", nil},
		{"lists a whole bucket", []string{"--bucket", "demo-raw"}, password, 0,
			"s3://demo-raw/team-a/hello.txt\t20 bytes\ns3://demo-raw/team-b/secret.txt\t20 bytes\n", nil},
		{"names the command that shows the grants for a bucket of no grant", []string{"--bucket", "demo-elsewhere"}, password, 3,
			"", []string{"no access to", "demo-elsewhere", "credbroker admin explain --stack " + stack + " --username demo"}},
		{"says which folders the user has for a folder of no grant", []string{"--bucket", "demo-curated", "--prefix", "team-b/"}, password, 3,
			"", []string{"team-a/", "credbroker admin explain"}},
		{"says what to check after a wrong password", nil, "wrong", 2, "", []string{"CREDBROKER_PASSWORD", "SEED=1"}},
		{"says which variable holds the password", nil, "", 2, "", []string{"set CREDBROKER_PASSWORD"}},
		{"says to start the stack when its file is missing", []string{"--stack", filepath.Join(t.TempDir(), "stack.json")}, password, 2,
			"", []string{"does not exist: start the local stack with `SEED=1 make run`"}},
	} {
		for _, ex := range examples {
			t.Run(ex+" example "+tc.name, func(t *testing.T) {
				args := append(append(argv[ex], "--stack", stack), tc.args...)
				status, stdout, stderr := run(t, root, tc.password, args...)
				if status != tc.status || stdout != tc.stdout {
					t.Errorf("exit %d, stdout %q, want %d, %q (stderr %q)", status, stdout, tc.status, tc.stdout, stderr)
				}
				says(t, stderr, tc.stderr...)
			})
		}
	}

	t.Run("the smoke script passes on the seeded stack", func(t *testing.T) {
		status, stdout, stderr := run(t, web, password, "node", "scripts/smoke.mjs", stack, st.Demo.Username, password)
		if status != 0 || strings.Contains(stdout, "FAIL") {
			t.Errorf("exit %d, want 0 and no FAIL:\n%s%s", status, stdout, stderr)
		}
	})

	missing := mototest.Name(t, "missing")
	ddb := dynamodb.NewFromConfig(mototest.ConfigFor(st.Info.AWSEndpoint))
	if _, err := ddb.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(st.Info.MembershipTable),
		Item: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "PROJECT#" + st.Demo.Project},
			"sk": &types.AttributeValueMemberS{Value: "BUCKET#" + missing}}}); err != nil {
		t.Fatal(err)
	}
	for _, ex := range examples {
		t.Run(ex+" example says how to create a granted bucket S3 does not have", func(t *testing.T) {
			// The grant reaches the endpoint about half a second after it
			// is written; until then the example (rightly) says "no access".
			deadline := time.Now().Add(20 * time.Second)
			for {
				status, _, stderr := run(t, root, password, append(argv[ex], "--stack", stack, "--bucket", missing)...)
				if !strings.Contains(stderr, "no access") {
					if status != 3 {
						t.Errorf("exit %d, want 3", status)
					}
					says(t, stderr, "does not exist", "s3 mb s3://"+missing)
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("the grant on %s never reached the example: last exit %d, %q", missing, status, stderr)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}

	t.Run("the smoke script fails the missing bucket's step with the fix, and goes on", func(t *testing.T) {
		status, stdout, stderr := run(t, web, password, "node", "scripts/smoke.mjs", stack, st.Demo.Username, password)
		if status != 1 {
			t.Errorf("exit %d, want 1", status)
		}
		var failed []string
		for line := range strings.Lines(stdout) {
			if strings.HasPrefix(line, "FAIL") {
				failed = append(failed, line)
			}
		}
		if len(failed) != 1 {
			t.Fatalf("FAIL lines %q, want one, for listing s3://%s/", failed, missing)
		}
		says(t, failed[0], "list s3://"+missing+"/", "does not exist", "credbroker admin bucket delete")
		says(t, stdout, "ok   upload to s3://demo-raw/: stored")
		says(t, stderr)
	})
}

// run runs a program in dir with password in CREDBROKER_PASSWORD and
// returns its exit status and output.
func run(t *testing.T, dir, password string, argv ...string) (status int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CREDBROKER_PASSWORD="+password, "AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	var exit *exec.ExitError
	if err := cmd.Run(); err != nil && !errors.As(err, &exit) {
		t.Fatalf("%v: %v", argv, err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

// says fails the test unless text holds every one of wants, and when text
// holds a stack trace (Go's or JavaScript's).
func says(t *testing.T, text string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(text, want) {
			t.Errorf("%q does not say %q", text, want)
		}
	}
	if strings.Contains(text, "\n    at ") || strings.Contains(text, "Node.js v") || strings.Contains(text, "goroutine ") {
		t.Errorf("a stack trace:\n%s", text)
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	tpl, err := samtemplate.DefaultPath()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(tpl)
}
