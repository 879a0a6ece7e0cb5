package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/testkit/iameval"
	"github.com/credbroker/credbroker/internal/testkit/rolesession"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, o options)
	}{
		{name: "local by default", check: func(t *testing.T, o options) {
			if o.StackName != "" || o.Bucket != "" || o.DenyTimeout <= 0 || o.GrantTimeout <= 0 || o.PollEvery <= 0 {
				t.Errorf("options %+v", o)
			}
		}},
		{name: "deployed from the environment", env: map[string]string{"STACK_NAME": "prod", "SMOKE_BUCKET": "prod-data", "AWS_REGION": "eu-west-1"},
			check: func(t *testing.T, o options) {
				if o.StackName != "prod" || o.Bucket != "prod-data" || o.Region != "eu-west-1" {
					t.Errorf("options %+v", o)
				}
			}},
		{name: "flags win over the environment", args: []string{"-stack-name", "b", "-bucket", "b-x"}, env: map[string]string{"STACK_NAME": "a"},
			check: func(t *testing.T, o options) {
				if o.StackName != "b" || o.Bucket != "b-x" {
					t.Errorf("options %+v", o)
				}
			}},
		{name: "deployed without a bucket", args: []string{"-stack-name", "prod"}, wantErr: "needs -bucket"},
		{name: "bucket without a stack", args: []string{"-bucket", "x"}, wantErr: "deployed stack only"},
		{name: "moto with a stack", args: []string{"-stack-name", "p", "-bucket", "x", "-moto", "http://127.0.0.1:1"}, wantErr: "local stack only"},
		{name: "zero timeout", args: []string{"-deny-timeout", "0s"}, wantErr: "must be positive"},
		{name: "stray argument", args: []string{"prod"}, wantErr: "unexpected arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parse(tc.args, env(tc.env), io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, o)
		})
	}
}

func TestCLIExitsWithUsageOnBadArguments(t *testing.T) {
	var stderr strings.Builder
	if got := cli(context.Background(), []string{"-stack-name", "prod"}, env(nil), io.Discard, &stderr); got != 2 {
		t.Fatalf("exit %d, want 2", got)
	}
	if !strings.Contains(stderr.String(), "-bucket") {
		t.Fatalf("stderr %q does not say what is missing", stderr.String())
	}
}

// fakeCFN answers DescribeStacks with its function field.
type fakeCFN struct {
	describe func(*cloudformation.DescribeStacksInput) (*cloudformation.DescribeStacksOutput, error)
}

func (f fakeCFN) DescribeStacks(_ context.Context, in *cloudformation.DescribeStacksInput, _ ...func(*cloudformation.Options)) (*cloudformation.DescribeStacksOutput, error) {
	return f.describe(in)
}

func stackWith(status cftypes.StackStatus, outputs map[string]string) fakeCFN {
	return fakeCFN{describe: func(in *cloudformation.DescribeStacksInput) (*cloudformation.DescribeStacksOutput, error) {
		st := cftypes.Stack{StackName: in.StackName, StackStatus: status}
		for k, v := range outputs {
			st.Outputs = append(st.Outputs, cftypes.Output{OutputKey: aws.String(k), OutputValue: aws.String(v)})
		}
		return &cloudformation.DescribeStacksOutput{Stacks: []cftypes.Stack{st}}, nil
	}}
}

func TestStackOutputs(t *testing.T) {
	full := map[string]string{
		"ApiUrl": "https://abc.execute-api.eu-west-1.amazonaws.com", "MembershipTableName": "prod-membership",
		"PolicyTableName": "prod-policy", "UserPoolId": "eu-west-1_Abc", "UserPoolClientId": "client1",
		"BaseRoleArn": "arn:aws:iam::111122223333:role/prod-base", "AuditBusName": "prod-audit",
	}
	t.Run("complete", func(t *testing.T) {
		var asked string
		api := stackWith(cftypes.StackStatusUpdateComplete, full)
		inner := api.describe
		api.describe = func(in *cloudformation.DescribeStacksInput) (*cloudformation.DescribeStacksOutput, error) {
			asked = aws.ToString(in.StackName)
			return inner(in)
		}
		info, err := stackOutputs(context.Background(), api, "prod")
		if err != nil {
			t.Fatal(err)
		}
		if asked != "prod" {
			t.Errorf("asked for stack %q", asked)
		}
		if info.APIURL != full["ApiUrl"] || info.MembershipTable != "prod-membership" || info.UserPoolID != "eu-west-1_Abc" ||
			info.UserPoolClientID != "client1" || info.BaseRoleARN != full["BaseRoleArn"] || info.PolicyTable != "prod-policy" {
			t.Errorf("info %+v", info)
		}
	})
	t.Run("missing outputs", func(t *testing.T) {
		partial := map[string]string{"ApiUrl": full["ApiUrl"], "UserPoolId": "x"}
		_, err := stackOutputs(context.Background(), stackWith(cftypes.StackStatusCreateComplete, partial), "prod")
		if err == nil || !strings.Contains(err.Error(), "MembershipTableName, UserPoolClientId") {
			t.Fatalf("err = %v", err)
		}
	})
	for _, status := range []cftypes.StackStatus{cftypes.StackStatusRollbackComplete, cftypes.StackStatusCreateInProgress, cftypes.StackStatusDeleteComplete} {
		t.Run(string(status), func(t *testing.T) {
			_, err := stackOutputs(context.Background(), stackWith(status, full), "prod")
			if err == nil || !strings.Contains(err.Error(), string(status)) {
				t.Fatalf("err = %v", err)
			}
		})
	}
	t.Run("describe fails", func(t *testing.T) {
		boom := errors.New("ValidationError: Stack with id prod does not exist")
		_, err := stackOutputs(context.Background(), fakeCFN{describe: func(*cloudformation.DescribeStacksInput) (*cloudformation.DescribeStacksOutput, error) {
			return nil, boom
		}}, "prod")
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestS3Request(t *testing.T) {
	for _, tc := range []struct {
		method, target string
		header         string
		action, res    string
	}{
		{"PUT", "/b/k/x.txt?x-id=PutObject", "", "s3:PutObject", "arn:aws:s3:::b/k/x.txt"},
		{"GET", "/b/k/x.txt?x-id=GetObject", "", "s3:GetObject", "arn:aws:s3:::b/k/x.txt"},
		{"HEAD", "/b/k", "", "s3:GetObject", "arn:aws:s3:::b/k"},
		{"DELETE", "/b/k?x-id=DeleteObject", "", "s3:DeleteObject", "arn:aws:s3:::b/k"},
		{"GET", "/b?list-type=2&prefix=raw%2F", "", "s3:ListBucket", "arn:aws:s3:::b"},
		{"GET", "/b/k?acl", "", "s3:Unsupported", "arn:aws:s3:::b/k"},
		{"PUT", "/b/k", "other/key", "s3:Unsupported", "arn:aws:s3:::b/k"},
		{"DELETE", "/b", "", "s3:Unsupported", "arn:aws:s3:::b"},
	} {
		r := httptest.NewRequest(tc.method, tc.target, nil)
		if tc.header != "" {
			r.Header.Set("X-Amz-Copy-Source", tc.header)
		}
		got := s3Request(r)
		if got.Action != tc.action || got.Resource != tc.res {
			t.Errorf("%s %s: %s on %s, want %s on %s", tc.method, tc.target, got.Action, got.Resource, tc.action, tc.res)
		}
		if tc.action == "s3:ListBucket" && got.Context["s3:prefix"] != "raw/" {
			t.Errorf("%s %s: s3:prefix %q", tc.method, tc.target, got.Context["s3:prefix"])
		}
	}
}

// The judge records a session from the AssumeRole it forwards and judges
// that session's S3 calls before they reach the upstream: an allowed call
// goes through, a denied one gets S3's 403 AccessDenied and never arrives;
// calls signed with other keys are not judged.
func TestTheJudgeDeniesBeforeForwarding(t *testing.T) {
	var forwarded atomic.Int32
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Target") == "" && strings.Contains(r.Header.Get("Authorization"), "/sts/") {
			io.WriteString(w, `<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIAUSER</AccessKeyId><Expiration>2026-01-01T01:00:00Z</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>`)
			return
		}
		forwarded.Add(1)
	}))
	defer upstream.Close()
	j, err := newJudge(upstream.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	// The role allows objects of the stack's buckets; a revocation page
	// denies sessions of the user issued before a cutoff.
	cutoff := "2026-01-01T00:30:00Z"
	ceiling := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:PutObject"],"Resource":"arn:aws:s3:::stack-*/*"}]}`
	page := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:SourceIdentity":"u1"},"DateLessThan":{"aws:TokenIssueTime":"` + cutoff + `"}}}]}`
	var revoked atomic.Bool
	j.role = func(context.Context) (iameval.Role, error) {
		r := rolesession.RolePolicies{Boundary: ceiling, Managed: map[string]string{"ceiling": ceiling}, Inline: map[string]string{}}
		if revoked.Load() {
			r.Inline["revocations"] = page
		}
		return r.Role()
	}

	session := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::stack-data/*"}]}`
	form := url.Values{"Action": {"AssumeRole"}, "SourceIdentity": {"u1"}, "Policy": {session}, "DurationSeconds": {"3600"},
		"Tags.member.1.Key": {broker.UserTagKey}, "Tags.member.1.Value": {"u1"}}
	send := func(method, path, key, service, body string) int {
		t.Helper()
		req, err := http.NewRequest(method, j.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+key+"/20260101/us-east-1/"+service+"/aws4_request, SignedHeaders=host, Signature=x")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusForbidden && !strings.Contains(string(b), "<Code>AccessDenied</Code>") {
			t.Errorf("a 403 without AccessDenied: %s", b)
		}
		return resp.StatusCode
	}
	if got := send("PUT", "/stack-data/k", "ASIAUSER", "s3", "x"); got != http.StatusOK {
		t.Fatalf("a call before the session is known: %d, want it forwarded unjudged", got)
	}
	if got := send("POST", "/", "ADMIN", "sts", form.Encode()); got != http.StatusOK {
		t.Fatalf("AssumeRole: %d", got)
	}
	if !j.knows("ASIAUSER") {
		t.Fatal("the judge did not record the session")
	}
	before := forwarded.Load()
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"PUT", "/stack-data/k", http.StatusOK},
		{"GET", "/stack-data/k", http.StatusOK},
		{"GET", "/stack-other/k", http.StatusForbidden}, // the session policy does not reach it
		{"PUT", "/other-data/k", http.StatusForbidden},  // nor the role
		{"GET", "/stack-data/k?acl", http.StatusForbidden},
	} {
		if got := send(c.method, c.path, "ASIAUSER", "s3", ""); got != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, got, c.want)
		}
	}
	revoked.Store(true)
	if got := send("GET", "/stack-data/k", "ASIAUSER", "s3", ""); got != http.StatusForbidden {
		t.Errorf("after the revocation page: %d, want 403", got)
	}
	if got := send("GET", "/stack-data/k", "OTHERKEY", "s3", ""); got != http.StatusOK {
		t.Errorf("a call signed with another key: %d, want it forwarded", got)
	}
	if got, want := forwarded.Load()-before, int32(3); got != want {
		t.Errorf("%d calls reached the upstream, want %d (the two allowed and the unjudged one)", got, want)
	}
	if judged, denied := j.stats("ASIAUSER"); judged != 6 || denied != 4 {
		t.Errorf("stats: %d judged, %d denied; want 6 and 4", judged, denied)
	}
}
