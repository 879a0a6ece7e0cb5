package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credbroker/credbroker/client"
)

// What the credbroker command needs: botocore runs credential_process on
// nearly every AWS CLI call, so an answer from the cache must take well
// under 50 ms. These benchmarks measure the cached paths with a user whose
// 30 grants (63-character bucket names) need three credential sets.

// benchAnswer is a realistic answer: three sets of long bucket names, with
// session tokens of STS's usual size.
func benchAnswer(exp time.Time) []byte {
	var sets []set
	for s := range 3 {
		var grants []string
		for g := range 10 {
			grants = append(grants, fmt.Sprintf("bench-bucket-%d-%02d-%s", s, g, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"))
		}
		sets = append(sets, set{fmt.Sprintf("ASIABENCH%d", s), grants})
	}
	b := body("v1.bench", exp, sets...)
	// Session tokens of about 1 KB, as STS issues for a session policy.
	var a map[string]any
	_ = json.Unmarshal(b, &a)
	for _, cs := range a["credentialSets"].([]any) {
		cs.(map[string]any)["sessionToken"] = strings.Repeat("IQoJb3JpZ2luX2VjE", 60)
	}
	b, _ = json.Marshal(a)
	return b
}

const benchBucket = "bench-bucket-2-07-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"

func benchEndpoint(b *testing.B) *fakeEndpoint {
	answer := benchAnswer(time.Now().Add(time.Hour))
	return newFakeEndpoint(b, func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 200, answer) })
}

// refusingTokens fails a benchmark that reaches for a token: a cached
// answer must not need one.
type refusingTokens struct{ b *testing.B }

func (r refusingTokens) Token(context.Context) (string, error) {
	r.b.Error("a cached answer asked for a token")
	return "", io.EOF
}
func (r refusingTokens) Refresh(ctx context.Context) (string, error) { return r.Token(ctx) }

// An S3 client calls Retrieve before every request.
func BenchmarkRetrieveFromMemory(b *testing.B) {
	f := benchEndpoint(b)
	c, err := client.New(f.URL, client.StaticToken("t"))
	if err != nil {
		b.Fatal(err)
	}
	p := c.ObjectCredentialsProvider(benchBucket, "runs/2026/x.csv", client.Read)
	if _, err := p.Retrieve(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if _, err := p.Retrieve(b.Context()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := p.Retrieve(context.Background()); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	if f.count() != 1 {
		b.Errorf("%d requests, want 1", f.count())
	}
}

// warmFileCache returns an endpoint and a file cache holding its answer.
func warmFileCache(b *testing.B) (*fakeEndpoint, string) {
	f := benchEndpoint(b)
	path := filepath.Join(b.TempDir(), "answers.json")
	warm, err := client.New(f.URL, client.StaticToken("t"), func(o *client.Options) { o.Cache = client.FileCache{Path: path} })
	if err != nil {
		b.Fatal(err)
	}
	if _, err := warm.Answer(b.Context(), ""); err != nil {
		b.Fatal(err)
	}
	return f, path
}

// One credential_process run in process: a new Client reads the file
// cache, routes the bucket and prints the JSON the AWS CLI reads.
func BenchmarkCredentialProcessFromFile(b *testing.B) {
	f, path := warmFileCache(b)
	for b.Loop() {
		if err := credentialProcess(b.Context(), f.URL, path, refusingTokens{b}, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	if f.count() != 1 {
		b.Errorf("%d requests, want 1", f.count())
	}
}

// One credential_process run as a process of its own: the test binary
// re-run as the command (larger than the real command, so an upper
// bound), from exec to exit.
func BenchmarkCredentialProcessExec(b *testing.B) {
	f, path := warmFileCache(b)
	for b.Loop() {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "CREDBROKER_BENCH_PROCESS="+f.URL+" "+path)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
	}
	if f.count() != 1 {
		b.Errorf("%d requests, want 1", f.count())
	}
}

// TestMain runs the command of BenchmarkCredentialProcessExec when asked.
func TestMain(m *testing.M) {
	if v := os.Getenv("CREDBROKER_BENCH_PROCESS"); v != "" {
		var url, path string
		fmt.Sscan(v, &url, &path)
		if err := credentialProcess(context.Background(), url, path, client.StaticToken(""), os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// credentialProcess is what `credbroker credential-process --bucket`
// does with a warm cache.
func credentialProcess(ctx context.Context, url, path string, tokens client.TokenSource, out io.Writer) error {
	c, err := client.New(url, tokens, func(o *client.Options) { o.Cache = client.FileCache{Path: path} })
	if err != nil {
		return err
	}
	creds, err := c.Credentials(ctx, client.Target{Bucket: benchBucket})
	if err != nil {
		return err
	}
	return json.NewEncoder(out).Encode(struct {
		Version                                   int
		AccessKeyID                               string `json:"AccessKeyId"`
		SecretAccessKey, SessionToken, Expiration string
	}{1, creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken, creds.Expires.UTC().Format(time.RFC3339)})
}
