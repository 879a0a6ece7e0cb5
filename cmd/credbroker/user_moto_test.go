//go:build integration

package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/credbroker/credbroker/client"
	"github.com/credbroker/credbroker/client/cognitoauth"
	"github.com/credbroker/credbroker/internal/cli"
	"github.com/credbroker/credbroker/internal/exitcode"
	"github.com/credbroker/credbroker/internal/localstack"
	"github.com/credbroker/credbroker/internal/stackfile"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
	"github.com/credbroker/credbroker/internal/testkit/stacktest"
)

// keyLog is a reverse proxy that records the access key each request was
// signed with (SigV4's Credential=) and its path: what the service behind
// it saw.
type keyLog struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string // "<access key> <method> <path>"
}

func newKeyLog(t *testing.T, target string) *keyLog {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	k := &keyLog{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	k.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, cred, _ := strings.Cut(r.Header.Get("Authorization"), "Credential=")
		key, _, _ := strings.Cut(cred, "/")
		k.mu.Lock()
		k.seen = append(k.seen, strings.TrimSpace(key+" "+r.Method+" "+r.URL.Path))
		k.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(k.Close)
	return k
}

// take returns what was recorded since the last call.
func (k *keyLog) take() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := k.seen
	k.seen = nil
	return out
}

// The user commands end to end: login through the CLI against the local
// stack's user pool, credential-process consumed by the real AWS CLI as a
// profile's credential_process against moto's S3, and env evaluated by a
// shell. The user's grants need two credential sets, so a profile per
// bucket must pick the right one.
func TestUserCommandsDriveTheAWSCLI(t *testing.T) {
	awsCLI, err := exec.LookPath("aws")
	if err != nil {
		t.Fatal("the AWS CLI is not installed (pip install awscli): this test runs it with credbroker as its credential_process")
	}
	ctx := t.Context()
	st := stacktest.Start(t, localstack.Options{Name: "cli"})

	// The stack file the user commands get names the endpoint through a
	// proxy that counts the requests.
	api := newKeyLog(t, st.Info.APIURL)
	info := st.Info
	info.APIURL = api.URL
	stackFile := filepath.Join(t.TempDir(), "stack.json")
	if err := stackfile.Write(stackFile, info); err != nil {
		t.Fatal(err)
	}

	// carol: project wide (read) owns 13 buckets with the longest names,
	// more than one session policy holds; project solo (write) owns one.
	cfg := mototest.Config(t)
	idp := cip.NewFromConfig(cfg)
	tables := mototest.Tables{DDB: dynamodb.NewFromConfig(cfg), Membership: st.Info.MembershipTable}
	runID := strings.TrimPrefix(mototest.Name(t, ""), "-")[:8]
	sub := mototest.User(t, idp, st.Info.UserPoolID, "carol", "Carol-Passw0rd!")
	var wide []string
	for i := range 13 {
		b := fmt.Sprintf("cli-%s-%02d-", runID, i)
		wide = append(wide, b+strings.Repeat("x", 63-len(b)-1)+"z")
		tables.Bucket(t, "wide-"+runID, wide[i], "")
	}
	solo := "cli-solo-" + runID
	tables.Bucket(t, "solo-"+runID, solo, "")
	tables.Member(t, sub, "wide-"+runID, "read")
	tables.Member(t, sub, "solo-"+runID, "write")

	configHome := t.TempDir()
	cli := func(vars map[string]string, args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(ctx, args, &cli.Env{
			Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr,
			Getenv: func(k string) string { return vars[k] }, ConfigDir: configHome,
		})
		return code, stdout.String(), stderr.String()
	}

	if code, out, errOut := cli(map[string]string{"CREDBROKER_PASSWORD": "Wrong-Passw0rd!"}, "login", "--stack", stackFile, "--username", "carol"); code != exitcode.Usage {
		t.Errorf("login with a wrong password: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, out, errOut := cli(map[string]string{"CREDBROKER_PASSWORD": "Carol-Passw0rd!"}, "login", "--stack", stackFile, "--username", "carol"); code != exitcode.OK {
		t.Fatalf("login: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	tokenFile := filepath.Join(configHome, "credbroker", st.Info.UserPoolID+"."+st.Info.UserPoolClientID+".tokens.json")
	if m := permOf(t, tokenFile); m != 0o600 {
		t.Errorf("token file mode %04o, want 0600", m)
	}

	// The projection is asynchronous, as on AWS: wait (with the tokens
	// the login kept) until the endpoint serves every grant, and learn
	// how it groups them into sets.
	tokens, err := cognitoauth.New(cognitoauth.Config{Client: idp, UserPoolID: st.Info.UserPoolID, ClientID: st.Info.UserPoolClientID,
		Store: cognitoauth.FileStore{Path: tokenFile}})
	if err != nil {
		t.Fatal(err)
	}
	watcher, err := client.New(st.Info.APIURL, tokens)
	if err != nil {
		t.Fatal(err)
	}
	var answer *client.Answer
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		answer, err = watcher.Reload(ctx, "")
		if err == nil && grantCount(answer) == len(wide)+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the endpoint never served carol's %d grants: %v, %v", len(wide)+1, answer, err)
		}
	}
	if len(answer.CredentialSets) < 2 {
		t.Fatalf("carol's grants fit %d credential set; the test needs two", len(answer.CredentialSets))
	}
	groups := map[string][]string{} // bucket -> the buckets of its set
	for _, s := range answer.CredentialSets {
		var bs []string
		for _, g := range s.Grants {
			bs = append(bs, g.Bucket)
		}
		for _, b := range bs {
			groups[b] = bs
		}
	}
	// Two buckets in different sets.
	first := answer.CredentialSets[0].Grants[0].Bucket
	second := answer.CredentialSets[1].Grants[0].Bucket

	admin := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	for _, b := range []string{first, second, solo} {
		if _, err := admin.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("hello-" + b + ".txt"), Body: strings.NewReader("hello")}); err != nil {
			t.Fatal(err)
		}
	}

	// The binary the AWS CLI runs, and a profile per bucket and project.
	bin := filepath.Join(t.TempDir(), "credbroker")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	awsConfig := filepath.Join(dir, "config")
	process := func(scope string) string {
		return fmt.Sprintf("credential_process = %s credential-process --stack %s %s\n", bin, stackFile, scope)
	}
	writeFile(t, awsConfig, "[profile first]\n"+process("--bucket "+first)+
		"[profile second]\n"+process("--bucket "+second)+
		"[profile solo]\n"+process("--project solo-"+runID)+
		"[profile broken]\n"+process("--bucket cli-never-granted-"+runID)+
		"[default]\n")
	writeFile(t, filepath.Join(dir, "credentials"), "")
	s3Proxy := newKeyLog(t, st.Info.AWSEndpoint)
	environ := []string{
		"AWS_CONFIG_FILE=" + awsConfig, "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "credentials"),
		"AWS_DEFAULT_REGION=" + st.Info.Region, "AWS_EC2_METADATA_DISABLED=true", "XDG_CONFIG_HOME=" + configHome,
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "CREDBROKER_") && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") {
			environ = append(environ, kv)
		}
	}
	ls := func(profile, bucket string) (string, error) {
		cmd := exec.CommandContext(ctx, awsCLI, "--profile", profile, "--endpoint-url", s3Proxy.URL, "s3", "ls", "s3://"+bucket)
		cmd.Env = environ
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return string(out), fmt.Errorf("%w: %s", err, stderr.String())
		}
		return string(out), nil
	}
	// usedKey checks that every S3 call went to bucket with one key, and
	// returns it.
	usedKey := func(what, bucket string) string {
		t.Helper()
		seen := s3Proxy.take()
		if len(seen) == 0 {
			t.Fatalf("%s: moto's S3 saw no call", what)
		}
		key, _, _ := strings.Cut(seen[0], " ")
		for _, s := range seen {
			if !strings.HasPrefix(s, key+" GET /"+bucket) {
				t.Errorf("%s: S3 call %q, want GET /%s with key %s", what, s, bucket, key)
			}
		}
		return key
	}

	api.take()
	keys := map[string]string{}
	for _, p := range []struct{ profile, bucket string }{{"first", first}, {"second", second}, {"solo", solo}} {
		out, err := ls(p.profile, p.bucket)
		if err != nil || !strings.Contains(out, "hello-"+p.bucket+".txt") {
			t.Fatalf("aws --profile %s s3 ls s3://%s: %v\n%s", p.profile, p.bucket, err, out)
		}
		keys[p.profile] = usedKey("profile "+p.profile, p.bucket)
	}
	if keys["first"] == keys["second"] {
		t.Errorf("buckets of two sets were reached with one key %s", keys["first"])
	}
	// The key the AWS CLI used is the one STS minted for the set that
	// holds the bucket: its session policy names the set's buckets and
	// none of the other set's (or of the other project).
	pol := mototest.SessionPolicies(t)
	for profile, want := range map[string][]string{"first": groups[first], "second": groups[second], "solo": {solo}} {
		p := pol[keys[profile]]
		if p == "" {
			t.Errorf("profile %s: moto's STS issued no key %s", profile, keys[profile])
			continue
		}
		for _, b := range append(slices.Clone(wide), solo) {
			if named, granted := strings.Contains(p, "arn:aws:s3:::"+b), slices.Contains(want, b); named != granted {
				t.Errorf("profile %s: the session policy of %s names %s: %v, want %v", profile, keys[profile], b, named, granted)
			}
		}
	}

	// Every further run of the command is answered from the cache, with
	// the same keys: no request to the endpoint, or, once the cached answer
	// is 10 s old (a slow machine), one revalidation that keeps the keys.
	endpointCalls := api.take()
	if _, err := ls("second", second); err != nil {
		t.Fatal(err)
	}
	if key := usedKey("again", second); key != keys["second"] {
		t.Errorf("a second aws call used %s, want the cached %s", key, keys["second"])
	}
	if again := api.take(); len(again) > 1 {
		t.Errorf("a second aws call reached the endpoint more than once: %v", again)
	}
	t.Logf("endpoint requests of the first three profiles' runs: %d", len(endpointCalls))

	// A profile for a bucket never granted fails with the command's
	// one-line message, and no credentials.
	if out, err := ls("broken", "cli-never-granted-"+runID); err == nil || !strings.Contains(err.Error(), "no access to s3://cli-never-granted-"+runID+"/") {
		t.Errorf("a bucket never granted: %v\n%s", err, out)
	}
	if seen := s3Proxy.take(); len(seen) != 0 {
		t.Errorf("S3 was called without credentials: %v", seen)
	}

	// env's lines, evaluated by a shell, drive the AWS CLI the same way.
	script := fmt.Sprintf(`eval "$(%s env --stack %s --bucket %s)" && exec %s --endpoint-url %s s3 ls s3://%s`, bin, stackFile, first, awsCLI, s3Proxy.URL, first)
	cmd := exec.CommandContext(ctx, "sh", "-c", script)
	cmd.Env = environ
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "hello-"+first+".txt") {
		t.Fatalf("env then aws: %v\n%s", err, out)
	}
	if key := usedKey("env", first); key != keys["first"] {
		t.Errorf("env's credentials are %s, want the cached %s", key, keys["first"])
	}

	// How long a run answered from the cache takes, process start
	// included (measured, not asserted; see docs/benchmarks.md "The credbroker command (issue 12)").
	var took []time.Duration
	for range 20 {
		start := time.Now()
		c := exec.CommandContext(ctx, bin, "credential-process", "--stack", stackFile, "--bucket", second)
		c.Env = environ
		if out, err := c.Output(); err != nil || !strings.Contains(string(out), keys["second"]) {
			t.Fatalf("credential-process: %v\n%s", err, out)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	t.Logf("credential-process from the cache, built binary: median %v, max %v over %d runs", took[len(took)/2], took[len(took)-1], len(took))
}

func grantCount(a *client.Answer) int {
	n := 0
	for _, s := range a.CredentialSets {
		n += len(s.Grants)
	}
	return n
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
