//go:build integration

package localstack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	ciptypes "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	streamtypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/credbroker/credbroker/internal/awsconfig"
	"github.com/credbroker/credbroker/internal/exitcode"
	"github.com/credbroker/credbroker/internal/localstack"
	"github.com/credbroker/credbroker/internal/motoserver"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
	"github.com/credbroker/credbroker/internal/testkit/stacktest"
)

func freePort(t testing.TB) int { return stacktest.FreePort(t) }

// takenPort returns a loopback port something listens on until the test
// ends.
func takenPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

func start(t testing.TB, seed bool) *localstack.Stack {
	t.Helper()
	return stacktest.Start(t, localstack.Options{Seed: seed})
}

type answer struct {
	status int
	body   struct {
		UserID         string `json:"userId"`
		PolicyVersion  string `json:"policyVersion"`
		CredentialSets []struct {
			AccessKeyID     string `json:"accessKeyId"`
			SecretAccessKey string `json:"secretAccessKey"`
			SessionToken    string `json:"sessionToken"`
			Expiration      string `json:"expiration"`
			Grants          []struct {
				Bucket, Prefix, Access string
				Projects               []string
				ExpiresAt              string `json:"expiresAt"`
			} `json:"grants"`
		} `json:"credentialSets"`
		Error string `json:"error"`
	}
}

func call(t testing.TB, st *localstack.Stack, token, query string) answer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, st.Info.APIURL+"/auths/resources"+query, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a answer
	a.status = resp.StatusCode
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &a.body); err != nil {
		t.Fatalf("body %q: %v", b, err)
	}
	return a
}

func (a answer) places() []string {
	var out []string
	for _, s := range a.body.CredentialSets {
		for _, g := range s.Grants {
			out = append(out, g.Bucket+"/"+g.Prefix+":"+g.Access)
		}
	}
	slices.Sort(out)
	return out
}

// until polls the endpoint until ok holds or a deadline passes: the
// projection is asynchronous, as it is in AWS.
func until(t testing.TB, st *localstack.Stack, token string, ok func(answer) bool) answer {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		a := call(t, st, token, "")
		if ok(a) {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("endpoint never reached the expected state; last answer %d %+v", a.status, a.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func signIn(t testing.TB, st *localstack.Stack, user, password string) string {
	t.Helper()
	cfg := awsconfig.Local(st.Info.Region, st.Info.AWSEndpoint)
	out, err := cip.NewFromConfig(cfg).InitiateAuth(context.Background(), &cip.InitiateAuthInput{
		ClientId: aws.String(st.Info.UserPoolClientID), AuthFlow: ciptypes.AuthFlowTypeUserPasswordAuth,
		AuthParameters: map[string]string{"USERNAME": user, "PASSWORD": password},
	})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.AuthenticationResult.AccessToken)
}

func TestTheLocalStackServesTheContract(t *testing.T) {
	st := start(t, true)

	raw, err := os.ReadFile(filepath.Join(filepath.Dir(st.InfoPath()), "stack.json"))
	if err != nil {
		t.Fatal(err)
	}
	var info map[string]string
	if err := json.Unmarshal(raw, &info); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"region", "awsEndpoint", "apiUrl", "membershipTable", "policyTable", "eventBusName", "userPoolId", "userPoolClientId", "baseRoleArn", "revokerFunction", "lambdaEndpoint"} {
		if info[k] == "" {
			t.Errorf("stack.json lacks %s", k)
		}
	}

	token := signIn(t, st, st.Demo.Username, st.Demo.Password)
	a := until(t, st, token, func(a answer) bool { return a.status == http.StatusOK })
	want := []string{"demo-archive/:read", "demo-curated/team-a/:write", "demo-raw/:write"}
	if got := a.places(); !slices.Equal(got, want) {
		t.Errorf("demo grants = %v, want %v", got, want)
	}
	if a.body.UserID != st.Demo.UserID {
		t.Errorf("userId %q, want the demo user's sub %q", a.body.UserID, st.Demo.UserID)
	}

	// The user leaves both projects: the endpoint stops issuing.
	ddb := dynamodb.NewFromConfig(awsconfig.Local(st.Info.Region, st.Info.AWSEndpoint))
	for _, p := range []string{st.Demo.Project, st.Demo.ReadOnlyProject} {
		_, err = ddb.DeleteItem(context.Background(), &dynamodb.DeleteItemInput{TableName: aws.String(st.Info.MembershipTable),
			Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "USER#" + st.Demo.UserID}, "sk": &types.AttributeValueMemberS{Value: "PROJECT#" + p}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	until(t, st, token, func(a answer) bool { return a.status == http.StatusForbidden && a.body.Error == "no_access" })

	if a := call(t, st, "not-a-token", ""); a.status != http.StatusUnauthorized || a.body.Error != "invalid_token" {
		t.Errorf("bad token: %d %+v", a.status, a.body)
	}
	st.Stop()
	if _, err := os.Stat(st.InfoPath()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stack.json left behind after Stop: %v", err)
	}
}

// Every bucket a documented example names exists in a seeded stack, with
// an object in it, so that no example ends in NoSuchBucket: after the
// README's worked example grants project demo the folder 2026/ of
// demo-exports, the demo user lists it with the credentials the endpoint
// issues; after the time-bounded example adds user contractor to project
// genomics, the contractor gets its folder of genomics-raw.
func TestTheSeedHoldsWhatTheExamplesUse(t *testing.T) {
	st := start(t, true)
	ctx := context.Background()
	cfg := awsconfig.Local(st.Info.Region, st.Info.AWSEndpoint)
	admin := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	for _, b := range []string{"demo-raw", "demo-curated", "demo-archive", "demo-exports", "genomics-raw", "shared-exports"} {
		if !slices.Contains(st.Demo.Buckets, b) {
			t.Errorf("Demo.Buckets %v lacks %s", st.Demo.Buckets, b)
		}
		out, err := admin.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(b)})
		if err != nil || len(out.Contents) == 0 {
			t.Errorf("bucket %s: %v, want a bucket with objects", b, err)
		}
	}

	c := newClient(st)
	c.put(t, map[string]types.AttributeValue{"pk": s("PROJECT#demo"), "sk": s("BUCKET#demo-exports"), "prefix": s("2026/")})
	a := until(t, st, signIn(t, st, st.Demo.Username, st.Demo.Password), func(a answer) bool {
		return slices.Contains(a.places(), "demo-exports/2026/:write")
	})
	set := a.body.CredentialSets[0]
	user := s3.NewFromConfig(aws.Config{Region: st.Info.Region, BaseEndpoint: aws.String(st.Info.AWSEndpoint),
		Credentials: credentials.NewStaticCredentialsProvider(set.AccessKeyID, set.SecretAccessKey, set.SessionToken)},
		func(o *s3.Options) { o.UsePathStyle = true })
	out, err := user.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("demo-exports"), Prefix: aws.String("2026/")})
	if err != nil {
		t.Fatalf("the demo user lists s3://demo-exports/2026/: %v", err)
	}
	if len(out.Contents) == 0 || aws.ToString(out.Contents[0].Key) != "2026/hello.txt" {
		t.Errorf("s3://demo-exports/2026/ lists %d objects, want 2026/hello.txt", len(out.Contents))
	}

	u, err := cip.NewFromConfig(cfg).AdminGetUser(ctx, &cip.AdminGetUserInput{UserPoolId: aws.String(st.Info.UserPoolID), Username: aws.String(st.Demo.Contractor)})
	if err != nil {
		t.Fatalf("user %s: %v", st.Demo.Contractor, err)
	}
	var sub string
	for _, attr := range u.UserAttributes {
		if aws.ToString(attr.Name) == "sub" {
			sub = aws.ToString(attr.Value)
		}
	}
	c.put(t, map[string]types.AttributeValue{"pk": s("USER#" + sub), "sk": s("PROJECT#" + st.Demo.Genomics), "role": s("write")})
	until(t, st, signIn(t, st, st.Demo.Contractor, st.Demo.Password), func(a answer) bool {
		return slices.Equal(a.places(), []string{"genomics-raw/runs/2026/:write"})
	})
}

// What a newcomer meets around the endpoint: other routes and methods, and
// a second `make run` in the same checkout.
func TestTheLocalStackAroundTheEndpoint(t *testing.T) {
	st := start(t, false)
	request := func(t *testing.T, method, path string) (*http.Response, map[string]string) {
		t.Helper()
		req, _ := http.NewRequest(method, st.Info.APIURL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]string
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("%s %s: body is not the error shape: %v", method, path, err)
		}
		return resp, body
	}
	tests := []struct {
		name, method, path string
		status             int
		code, allow        string
	}{
		{"an unknown path is 404 not_found, never cached", http.MethodGet, "/auths", http.StatusNotFound, "not_found", ""},
		{"POST on the endpoint is 405 with Allow: GET", http.MethodPost, "/auths/resources", http.StatusMethodNotAllowed, "method_not_allowed", "GET"},
		{"PUT on the endpoint is 405 with Allow: GET", http.MethodPut, "/auths/resources", http.StatusMethodNotAllowed, "method_not_allowed", "GET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := request(t, tt.method, tt.path)
			if resp.StatusCode != tt.status || body["error"] != tt.code || body["message"] == "" {
				t.Errorf("%d %v, want %d %q with a message", resp.StatusCode, body, tt.status, tt.code)
			}
			if got := resp.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", got)
			}
			if got := resp.Header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow %q, want %q", got, tt.allow)
			}
		})
	}

	t.Run("a second stack in the same directory is refused and leaves the first's stack file alone", func(t *testing.T) {
		dir := filepath.Dir(st.InfoPath())
		before, err := os.ReadFile(st.InfoPath())
		if err != nil {
			t.Fatal(err)
		}
		second, err := localstack.Start(context.Background(), localstack.Options{
			Moto: mototest.Endpoint(t), Port: freePort(t), Dir: dir, Name: mototest.Name(t, "second"),
		})
		if err == nil {
			second.Stop()
			t.Fatal("second Start succeeded")
		}
		if !errors.Is(err, localstack.ErrAlreadyRunning) || localstack.ExitCode(err) != exitcode.Environment {
			t.Errorf("second Start: %v (exit %d), want ErrAlreadyRunning, exit %d", err, localstack.ExitCode(err), exitcode.Environment)
		}
		after, err := os.ReadFile(st.InfoPath())
		if err != nil || !bytes.Equal(before, after) {
			t.Errorf("the first stack's stack.json changed or went: %v\n%s", err, after)
		}
		if a := call(t, st, "not-a-token", ""); a.status != http.StatusUnauthorized {
			t.Errorf("the first stack answers %d after the refused second, want 401", a.status)
		}
	})
}

// The audit bus's archive, slow in moto, is created only when asked for.
func TestTheAuditArchiveIsOptIn(t *testing.T) {
	for _, archive := range []bool{false, true} {
		t.Run(fmt.Sprintf("archive=%v", archive), func(t *testing.T) {
			st, err := localstack.Start(context.Background(), localstack.Options{
				Moto: mototest.Endpoint(t), Port: freePort(t), Dir: t.TempDir(), Name: mototest.Name(t, "local"), Archive: archive,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(st.Stop)
			eb := eventbridge.NewFromConfig(mototest.Config(t))
			bus, err := eb.DescribeEventBus(context.Background(), &eventbridge.DescribeEventBusInput{Name: aws.String(st.Info.EventBusName)})
			if err != nil {
				t.Fatal(err)
			}
			out, err := eb.ListArchives(context.Background(), &eventbridge.ListArchivesInput{EventSourceArn: bus.Arn})
			if err != nil {
				t.Fatal(err)
			}
			if got := len(out.Archives); got != map[bool]int{false: 0, true: 1}[archive] {
				t.Errorf("%d archives on the audit bus with Archive=%v", got, archive)
			}
		})
	}
}

func TestPortErrorsAreReportedWithTheirExitCodes(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	tests := []struct {
		name      string
		o         localstack.Options
		wantInUse bool
		wantExit  int
	}{
		{
			name:      "taken API port is in use (exit 3)",
			o:         localstack.Options{Moto: mototest.Endpoint(t), Port: taken.Addr().(*net.TCPAddr).Port},
			wantInUse: true, wantExit: exitcode.Environment,
		},
		{
			name:      "taken moto port is in use (exit 3)",
			o:         localstack.Options{MotoPort: taken.Addr().(*net.TCPAddr).Port, Port: freePort(t)},
			wantInUse: true, wantExit: exitcode.Environment,
		},
		{
			name:     "API port nothing can listen on keeps its own error (exit 1)",
			o:        localstack.Options{Moto: mototest.Endpoint(t), Port: 70000},
			wantExit: exitcode.Failure,
		},
		{
			name:     "moto port nothing can listen on keeps its own error (exit 1)",
			o:        localstack.Options{MotoPort: 70000, Port: freePort(t)},
			wantExit: exitcode.Failure,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.Dir = t.TempDir()
			st, err := localstack.Start(context.Background(), tt.o)
			if err == nil {
				st.Stop()
				t.Fatal("Start succeeded")
			}
			if errors.Is(err, motoserver.ErrPortInUse) != tt.wantInUse || localstack.ExitCode(err) != tt.wantExit {
				t.Errorf("err = %v (exit %d), want in use %v, exit %d", err, localstack.ExitCode(err), tt.wantInUse, tt.wantExit)
			}
			if !tt.wantInUse && strings.Contains(err.Error(), "already running") {
				t.Errorf("err = %v: blames another stack for an error that is not a taken port", err)
			}
		})
	}
}

// failingStreams is a DynamoDB Streams client whose every call fails with
// err: moto's stream cannot be made to fail.
type failingStreams struct{ err error }

func (f failingStreams) DescribeStream(context.Context, *dynamodbstreams.DescribeStreamInput, ...func(*dynamodbstreams.Options)) (*dynamodbstreams.DescribeStreamOutput, error) {
	return nil, f.err
}

func (f failingStreams) GetShardIterator(context.Context, *dynamodbstreams.GetShardIteratorInput, ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetShardIteratorOutput, error) {
	return nil, f.err
}

func (f failingStreams) GetRecords(context.Context, *dynamodbstreams.GetRecordsInput, ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetRecordsOutput, error) {
	return nil, f.err
}

// announcer is Run's Out: ready is closed once Run reports the stack up.
type announcer struct {
	mu    sync.Mutex
	out   strings.Builder
	ready chan struct{}
}

func (a *announcer) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.out.Write(p)
	if strings.Contains(a.out.String(), "Press Ctrl-C") && a.ready != nil {
		close(a.ready)
		a.ready = nil
	}
	return len(p), nil
}

// runStack runs the stack in the background; once it is up, stopIt is
// called, and runStack returns what Run returned. The deadline only ends
// a Run that does not stop.
func runStack(t *testing.T, o localstack.Options, stopIt func()) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ready := make(chan struct{})
	o.Out = &announcer{ready: ready}
	ran := make(chan error, 1)
	go func() { ran <- localstack.Run(ctx, o) }()
	select {
	case <-ready:
		stopIt()
	case err := <-ran:
		return err
	}
	return <-ran
}

func TestRunEndsWithAnErrorWhenAPartStops(t *testing.T) {
	tests := []struct {
		name string
		o    localstack.Options
		// stop ends a part of the stack started with options o.
		stop func(t *testing.T, o localstack.Options)
		want string // in Run's error
	}{
		{
			name: "stream poller that stops ends Run",
			o: localstack.Options{Moto: mototest.Endpoint(t), Name: mototest.Name(t, "local"),
				Streams: failingStreams{&streamtypes.ResourceNotFoundException{Message: aws.String("stream gone")}}},
			stop: func(*testing.T, localstack.Options) {},
			want: "stream poller stopped",
		},
		{
			name: "moto that exits ends Run",
			o:    localstack.Options{MotoPort: freePort(t)},
			stop: func(t *testing.T, o localstack.Options) { killMoto(t, o.MotoPort) },
			want: "moto_server exited",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.Dir, tt.o.Port = t.TempDir(), freePort(t)
			err := runStack(t, tt.o, func() { tt.stop(t, tt.o) })
			if err == nil || !strings.Contains(err.Error(), tt.want) || localstack.ExitCode(err) != exitcode.Failure {
				t.Fatalf("Run = %v (exit %d), want an error saying %q, exit %d", err, localstack.ExitCode(err), tt.want, exitcode.Failure)
			}
			// Cleaned up as on Ctrl-C.
			if _, err := os.Stat(filepath.Join(tt.o.Dir, "stack.json")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("stack.json left behind: %v", err)
			}
			if err := motoserver.CheckFree(tt.o.Port); err != nil {
				t.Errorf("API port still taken: %v", err)
			}
		})
	}
}

// killMoto kills the moto_server this test process started on port.
func killMoto(t *testing.T, port int) {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, proc := range procs {
		stat, err := os.ReadFile(filepath.Join(proc, "stat"))
		if err != nil {
			continue
		}
		// The parent's pid is the second field after the command, which
		// ends with the last ')'.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		cmdline, _ := os.ReadFile(filepath.Join(proc, "cmdline"))
		args := strings.Split(string(cmdline), "\x00")
		if len(fields) < 2 || fields[1] != strconv.Itoa(os.Getpid()) ||
			!slices.ContainsFunc(args, func(a string) bool { return strings.HasSuffix(a, "moto_server") }) ||
			!slices.Contains(args, strconv.Itoa(port)) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(proc))
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("no moto_server on port %d among this process's children", port)
}

// BenchmarkChangeToEndpoint measures how long a membership-table change
// takes to reach the user on the local stack: first to the policy item
// (stream poll and projection), then to the endpoint's answer as a client
// polling it sees it. Reported as p50 and p99 over b.N changes.
func BenchmarkChangeToEndpoint(b *testing.B) {
	st := start(b, true)
	token := signIn(b, st, st.Demo.Username, st.Demo.Password)
	until(b, st, token, func(a answer) bool { return a.status == http.StatusOK })
	ddb := dynamodb.NewFromConfig(awsconfig.Local(st.Info.Region, st.Info.AWSEndpoint))
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	itemHas := func(bucket string) bool {
		out, err := ddb.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(st.Info.PolicyTable), ConsistentRead: aws.Bool(true),
			Key: map[string]types.AttributeValue{"pk": s("USER#" + st.Demo.UserID), "sk": s("POLICY")}})
		if err != nil {
			b.Fatal(err)
		}
		doc, _ := out.Item["doc"].(*types.AttributeValueMemberS)
		return doc != nil && strings.Contains(doc.Value, `"`+bucket+`"`)
	}
	var toItem, toAnswer []time.Duration
	b.ResetTimer()
	for i := range b.N {
		bucket := fmt.Sprintf("bench-bucket-%04d", i)
		begin := time.Now()
		if _, err := ddb.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(st.Info.MembershipTable),
			Item: map[string]types.AttributeValue{"pk": s("PROJECT#demo"), "sk": s("BUCKET#" + bucket)}}); err != nil {
			b.Fatal(err)
		}
		for deadline := time.Now().Add(20 * time.Second); !itemHas(bucket); time.Sleep(2 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("%s never reached the policy item", bucket)
			}
		}
		toItem = append(toItem, time.Since(begin))
		until(b, st, token, func(a answer) bool { return slices.Contains(a.places(), bucket+"/:write") })
		toAnswer = append(toAnswer, time.Since(begin))
	}
	b.StopTimer()
	pct := func(d []time.Duration, p int) float64 {
		slices.Sort(d)
		return float64(d[min(len(d)-1, len(d)*p/100)].Microseconds()) / 1000
	}
	b.ReportMetric(pct(toItem, 50), "item-p50-ms")
	b.ReportMetric(pct(toItem, 99), "item-p99-ms")
	b.ReportMetric(pct(toAnswer, 50), "answer-p50-ms")
	b.ReportMetric(pct(toAnswer, 99), "answer-p99-ms")
}

// BenchmarkMotoAuditBus measures what an archive on the audit bus costs in
// moto, the reason the local stack has none by default: a PutEvents to a
// bus without and with an archive, and a GetItem while four clients put
// events to the archived bus (moto is one Python process).
func BenchmarkMotoAuditBus(b *testing.B) {
	ctx := context.Background()
	cfg := mototest.Config(b)
	eb := eventbridge.NewFromConfig(cfg)
	bus := func(archive bool) string {
		name := mototest.Name(b, "bench-bus")
		out, err := eb.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(name)})
		if err != nil {
			b.Fatal(err)
		}
		if archive {
			if _, err := eb.CreateArchive(ctx, &eventbridge.CreateArchiveInput{ArchiveName: aws.String(name + "-archive"), EventSourceArn: out.EventBusArn,
				EventPattern: aws.String(`{"source":[{"prefix":"credbroker."}]}`)}); err != nil {
				b.Fatal(err)
			}
		}
		return name
	}
	put := func(name string) error {
		_, err := eb.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{{EventBusName: aws.String(name),
			Source: aws.String("credbroker.credentials"), DetailType: aws.String("CredentialsIssued"),
			Detail: aws.String(`{"userId":"3f8e2a5c-0b6d-4c1e-9a7f-2d4b6c8e0a1b","accessKeyIds":["ASIAEXAMPLE"],"buckets":["b1","b2"]}`)}}})
		return err
	}
	plain, archived := bus(false), bus(true)
	b.Run("PutEvents", func(b *testing.B) {
		for b.Loop() {
			if err := put(plain); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("PutEvents archived bus", func(b *testing.B) {
		for b.Loop() {
			if err := put(archived); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("GetItem beside 4 PutEvents to the archived bus", func(b *testing.B) {
		ddb := dynamodb.NewFromConfig(cfg)
		tables := mototest.NewTables(b)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
						_ = put(archived)
					}
				}
			})
		}
		for b.Loop() {
			if _, err := ddb.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(tables.Policy), ConsistentRead: aws.Bool(true),
				Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "USER#x"}, "sk": &types.AttributeValueMemberS{Value: "POLICY"}}}); err != nil {
				b.Fatal(err)
			}
		}
		close(stop)
		wg.Wait()
	})
}
