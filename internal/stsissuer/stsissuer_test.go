package stsissuer_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/stsissuer"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
)

const (
	roleARN = "arn:aws:iam::123456789012:role/credbroker-base"
	policy  = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::genomics-raw/*"}]}`
)

// recordingSTS passes each call to next and keeps its input, so a test can
// see the fields moto does not record (SourceIdentity).
type recordingSTS struct {
	next stsissuer.AssumeRoleAPI

	mu     sync.Mutex
	inputs []*sts.AssumeRoleInput
}

func (r *recordingSTS) AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, opts ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	r.mu.Lock()
	r.inputs = append(r.inputs, in)
	r.mu.Unlock()
	return r.next.AssumeRole(ctx, in, opts...)
}

func (r *recordingSTS) calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.inputs)
}

// failingSTS is a hand-written fake for the failures moto cannot produce:
// each call returns err.
type failingSTS struct {
	err   error
	calls atomic.Int64
}

func (f *failingSTS) AssumeRole(context.Context, *sts.AssumeRoleInput, ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	f.calls.Add(1)
	return nil, f.err
}

func newIssuer(t *testing.T, client stsissuer.AssumeRoleAPI) *stsissuer.Issuer {
	t.Helper()
	iss, err := stsissuer.New(stsissuer.Config{Client: client, RoleARN: roleARN})
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

func validRequest() broker.IssueRequest {
	return broker.IssueRequest{
		UserID:      "6c1f2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b",
		SessionName: "cb-6c1f2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b",
		Policy:      policy,
		Duration:    15 * time.Minute,
		CutoffTag:   broker.CutoffTag("6c1f2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b", time.Time{}),
	}
}

func TestIssueRefusesBadRequestsWithoutCallingSTS(t *testing.T) {
	tests := []struct {
		name string
		edit func(*broker.IssueRequest)
	}{
		{"empty policy is refused", func(r *broker.IssueRequest) { r.Policy = "" }},
		{"whitespace policy is refused", func(r *broker.IssueRequest) { r.Policy = " \n\t " }},
		{"session name with a slash is refused", func(r *broker.IssueRequest) { r.SessionName = "cb/user" }},
		{"session name over 64 characters is refused", func(r *broker.IssueRequest) { r.SessionName = strings.Repeat("a", 65) }},
		{"one-character session name is refused", func(r *broker.IssueRequest) { r.SessionName = "a" }},
		{"user id unfit for SourceIdentity is refused", func(r *broker.IssueRequest) { r.UserID = "USER#x" }},
		{"duration under 15 minutes is refused", func(r *broker.IssueRequest) { r.Duration = 14 * time.Minute }},
		{"duration over 12 hours is refused", func(r *broker.IssueRequest) { r.Duration = 13 * time.Hour }},
		{"zero duration is refused", func(r *broker.IssueRequest) { r.Duration = 0 }},
		{"a session without a cutoff tag is refused", func(r *broker.IssueRequest) { r.CutoffTag = "" }},
		{"cutoff tag with a comma is refused", func(r *broker.IssueRequest) { r.CutoffTag = "ab,cd" }},
		{"cutoff tag over 64 characters is refused", func(r *broker.IssueRequest) { r.CutoffTag = strings.Repeat("a", 65) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recordingSTS{next: &failingSTS{err: errors.New("must not be called")}}
			req := validRequest()
			tt.edit(&req)
			_, err := newIssuer(t, rec).Issue(t.Context(), req)
			if k := broker.KindOf(err); k != broker.Internal {
				t.Errorf("Issue() = %v (kind %v), want internal", err, k)
			}
			if n := rec.calls(); n != 0 {
				t.Errorf("AssumeRole called %d times", n)
			}
		})
	}
}

func TestNewChecksTheConfig(t *testing.T) {
	client := sts.New(sts.Options{})
	tests := []struct {
		name string
		cfg  stsissuer.Config
		ok   bool
	}{
		{"role ARN with a path is accepted", stsissuer.Config{Client: client, RoleARN: "arn:aws:iam::123456789012:role/app/base"}, true},
		{"China partition is accepted", stsissuer.Config{Client: client, RoleARN: "arn:aws-cn:iam::123456789012:role/base"}, true},
		{"missing client is refused", stsissuer.Config{RoleARN: roleARN}, false},
		{"user ARN is refused", stsissuer.Config{Client: client, RoleARN: "arn:aws:iam::123456789012:user/bob"}, false},
		{"short account is refused", stsissuer.Config{Client: client, RoleARN: "arn:aws:iam::1234:role/base"}, false},
		{"role without name is refused", stsissuer.Config{Client: client, RoleARN: "arn:aws:iam::123456789012:role/"}, false},
		{"empty ARN is refused", stsissuer.Config{Client: client}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := stsissuer.New(tt.cfg)
			if (err == nil) != tt.ok {
				t.Errorf("New() = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func apiError(code string, fault smithy.ErrorFault) error {
	return &smithy.GenericAPIError{Code: code, Message: "AWS says: arn:aws:iam::123456789012:role/secret " + code, Fault: fault}
}

func httpError(status int) error {
	return &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
		Err:      errors.New("raw failure"),
	}
}

func TestIssueClassifiesSTSErrors(t *testing.T) {
	timeout := &net.OpError{Op: "dial", Net: "tcp", Err: &timeoutError{}}
	tests := []struct {
		name string
		err  error
		want broker.Kind
	}{
		{"throttling is transient", apiError("Throttling", smithy.FaultClient), broker.Transient},
		{"ThrottlingException is transient", apiError("ThrottlingException", smithy.FaultClient), broker.Transient},
		{"internal failure is transient", apiError("InternalFailure", smithy.FaultServer), broker.Transient},
		{"unknown server fault is transient", apiError("SomethingNew", smithy.FaultServer), broker.Transient},
		{"HTTP 503 is transient", httpError(503), broker.Transient},
		{"HTTP 500 is transient", httpError(500), broker.Transient},
		{"network timeout is transient", timeout, broker.Transient},
		{"send failure is transient", &smithyhttp.RequestSendError{Err: errors.New("connection reset")}, broker.Transient},
		{"deadline exceeded is transient", fmt.Errorf("operation error STS: AssumeRole: %w", context.DeadlineExceeded), broker.Transient},
		{"retries exhausted on throttling is transient", &retry.MaxAttemptsError{Attempt: 3, Err: apiError("Throttling", smithy.FaultClient)}, broker.Transient},
		{"packed policy too large is internal", &types.PackedPolicyTooLargeException{Message: aws.String("92% of limit")}, broker.Internal},
		{"malformed policy is internal", &types.MalformedPolicyDocumentException{Message: aws.String("bad")}, broker.Internal},
		{"region disabled is internal", &types.RegionDisabledException{Message: aws.String("off")}, broker.Internal},
		{"access denied is internal", apiError("AccessDenied", smithy.FaultClient), broker.Internal},
		{"validation error is internal", apiError("ValidationError", smithy.FaultClient), broker.Internal},
		{"unknown client fault is internal", apiError("SomethingNew", smithy.FaultClient), broker.Internal},
		{"unexplained error is internal", errors.New("boom"), broker.Internal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &failingSTS{err: tt.err}
			_, err := newIssuer(t, fake).Issue(t.Context(), validRequest())
			if k := broker.KindOf(err); k != tt.want {
				t.Errorf("Issue() = %v (kind %v), want %v", err, k, tt.want)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("Issue() = %v does not wrap the STS error", err)
			}
			if msg := broker.MessageOf(err); strings.Contains(msg, "arn:") || strings.Contains(msg, "AWS says") || msg == "" {
				t.Errorf("safe message %q is empty or leaks the AWS error", msg)
			}
			if fake.calls.Load() != 1 {
				t.Errorf("AssumeRole called %d times, want 1", fake.calls.Load())
			}
		})
	}
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// throttlingSTSServer answers every request like a throttled STS, so the
// real SDK client parses a real error response and retries it.
func throttlingSTSServer(t *testing.T, status int, code string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>`+
			`<Code>%s</Code><Message>Rate exceeded for arn:aws:iam::123456789012:role/x</Message></Error>`+
			`<RequestId>r-1</RequestId></ErrorResponse>`, code)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func sdkClient(url string, attempts int) *sts.Client {
	cfg := mototest.ConfigFor(url)
	cfg.Retryer = func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = attempts
			o.MaxBackoff = time.Millisecond
		})
	}
	return sts.NewFromConfig(cfg)
}

func TestIssueThroughTheSDKClassifiesRealErrorResponses(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		code      string
		want      broker.Kind
		wantCalls int64
	}{
		{"throttling is retried, then transient", 400, "Throttling", broker.Transient, 3},
		{"service unavailable is retried, then transient", 503, "ServiceUnavailable", broker.Transient, 3},
		{"packed policy too large is not retried and internal", 400, "PackedPolicyTooLarge", broker.Internal, 1},
		{"access denied is not retried and internal", 403, "AccessDenied", broker.Internal, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, calls := throttlingSTSServer(t, tt.status, tt.code)
			_, err := newIssuer(t, sdkClient(srv.URL, 3)).Issue(t.Context(), validRequest())
			if k := broker.KindOf(err); k != tt.want {
				t.Errorf("Issue() = %v (kind %v), want %v", err, k, tt.want)
			}
			if got := calls.Load(); got != tt.wantCalls {
				t.Errorf("STS received %d requests, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestIssueGivesUpWhenTheContextEnds(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := newIssuer(t, sdkClient(srv.URL, 3)).Issue(ctx, validRequest())
	if k := broker.KindOf(err); k != broker.Transient {
		t.Errorf("Issue() = %v (kind %v), want transient", err, k)
	}
}

func TestIssueRejectsIncompleteAnswers(t *testing.T) {
	answer := func(c *types.Credentials) stsissuer.AssumeRoleAPI {
		return assumeRoleFunc(func(context.Context, *sts.AssumeRoleInput, ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
			return &sts.AssumeRoleOutput{Credentials: c}, nil
		})
	}
	exp := time.Now().Add(time.Hour)
	tests := []struct {
		name string
		c    *types.Credentials
	}{
		{"no credentials", nil},
		{"no session token", &types.Credentials{AccessKeyId: aws.String("ASIA1"), SecretAccessKey: aws.String("s"), Expiration: &exp}},
		{"no expiration", &types.Credentials{AccessKeyId: aws.String("ASIA1"), SecretAccessKey: aws.String("s"), SessionToken: aws.String("t")}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is internal", func(t *testing.T) {
			_, err := newIssuer(t, answer(tt.c)).Issue(t.Context(), validRequest())
			if k := broker.KindOf(err); k != broker.Internal {
				t.Errorf("Issue() = %v (kind %v), want internal", err, k)
			}
		})
	}
}

// assumeRoleFunc adapts a function to AssumeRoleAPI.
type assumeRoleFunc func(context.Context, *sts.AssumeRoleInput, ...func(*sts.Options)) (*sts.AssumeRoleOutput, error)

func (f assumeRoleFunc) AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, o ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	return f(ctx, in, o...)
}

func ExampleIssuer_Issue() {
	client := sts.NewFromConfig(mototest.ConfigFor("http://127.0.0.1:4566"))
	issuer, err := stsissuer.New(stsissuer.Config{Client: client, RoleARN: "arn:aws:iam::123456789012:role/credbroker-base"})
	if err != nil {
		fmt.Println(err)
		return
	}
	creds, err := issuer.Issue(context.Background(), broker.IssueRequest{
		UserID:      "6c1f2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b",
		SessionName: "cb-6c1f2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b",
		Policy:      `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::genomics-raw/*"}]}`,
		Duration:    15 * time.Minute,
		CutoffTag:   broker.CutoffTag("6c1f2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b", time.Time{}),
	})
	fmt.Println(creds.AccessKeyID != "", err)
}

// Every session carries the user's tag and the cutoff's: the deny list
// finds a revoked user's sessions by them (docs/security.md "Revocation").
func TestIssueTagsEverySessionWithItsUserAndCutoff(t *testing.T) {
	exp := time.Now().Add(time.Hour)
	rec := &recordingSTS{next: assumeRoleFunc(func(context.Context, *sts.AssumeRoleInput, ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
		return &sts.AssumeRoleOutput{Credentials: &types.Credentials{AccessKeyId: aws.String("ASIA1"), SecretAccessKey: aws.String("s"), SessionToken: aws.String("t"), Expiration: &exp}}, nil
	})}
	req := validRequest()
	if _, err := newIssuer(t, rec).Issue(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, tag := range rec.inputs[0].Tags {
		got[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
	}
	want := map[string]string{broker.UserTagKey: broker.UserTag(req.UserID), broker.CutoffTagKey: req.CutoffTag}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("session tags (-want +got):\n%s", diff)
	}
}
