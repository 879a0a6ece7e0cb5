package localstack_test

import (
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
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awscreds "github.com/aws/aws-sdk-go-v2/credentials"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	ciptypes "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/credbroker/credbroker/internal/localstack"
	"github.com/credbroker/credbroker/internal/motoserver"
	"github.com/credbroker/credbroker/internal/mototest"
)

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func start(t testing.TB, seed bool) *localstack.Stack {
	t.Helper()
	dir := t.TempDir()
	st, err := localstack.Start(context.Background(), localstack.Options{
		Moto: mototest.Endpoint(t), Port: freePort(t), Dir: dir, Seed: seed, Name: mototest.Name(t, "local"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Stop)
	return st
}

type answer struct {
	status int
	body   struct {
		UserID         string `json:"userId"`
		PolicyVersion  string `json:"policyVersion"`
		CredentialSets []struct {
			AccessKeyID string `json:"accessKeyId"`
			Grants      []struct {
				Bucket, Prefix, Access string
				Projects               []string
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
	cfg := aws.Config{Region: st.Info.Region, BaseEndpoint: aws.String(st.Info.AWSEndpoint), Credentials: awscreds.NewStaticCredentialsProvider("x", "x", "")}
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
	for _, k := range []string{"region", "awsEndpoint", "apiUrl", "membershipTable", "policyTable", "eventBusName", "userPoolId", "userPoolClientId", "baseRoleArn"} {
		if info[k] == "" {
			t.Errorf("stack.json lacks %s", k)
		}
	}

	token := signIn(t, st, st.Demo.Username, st.Demo.Password)
	a := until(t, st, token, func(a answer) bool { return a.status == http.StatusOK })
	want := []string{"demo-curated/team-a/:write", "demo-raw/:write"}
	if got := a.places(); !slices.Equal(got, want) {
		t.Errorf("demo grants = %v, want %v", got, want)
	}
	if a.body.UserID != st.Demo.UserID {
		t.Errorf("userId %q, want the demo user's sub %q", a.body.UserID, st.Demo.UserID)
	}

	// The user leaves the project: the endpoint stops issuing.
	ddb := dynamodb.NewFromConfig(aws.Config{Region: st.Info.Region, BaseEndpoint: aws.String(st.Info.AWSEndpoint), Credentials: awscreds.NewStaticCredentialsProvider("x", "x", "")})
	_, err = ddb.DeleteItem(context.Background(), &dynamodb.DeleteItemInput{TableName: aws.String(st.Info.MembershipTable),
		Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "USER#" + st.Demo.UserID}, "sk": &types.AttributeValueMemberS{Value: "PROJECT#demo"}}})
	if err != nil {
		t.Fatal(err)
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

func TestATakenPortIsReportedWithItsExitCode(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = localstack.Start(context.Background(), localstack.Options{Moto: mototest.Endpoint(t), Port: l.Addr().(*net.TCPAddr).Port, Dir: t.TempDir()})
	if !errors.Is(err, motoserver.ErrPortInUse) || localstack.ExitCode(err) != localstack.ExitPortInUse {
		t.Errorf("err = %v (exit %d), want port in use", err, localstack.ExitCode(err))
	}
}

// BenchmarkChangeToEndpoint measures how long a membership-table change
// takes to reach the user on the local stack: first to the policy item
// (stream poll and projection), then to the endpoint's answer as a client
// polling it sees it. Reported as p50 and p99 over b.N changes.
func BenchmarkChangeToEndpoint(b *testing.B) {
	st := start(b, true)
	token := signIn(b, st, st.Demo.Username, st.Demo.Password)
	until(b, st, token, func(a answer) bool { return a.status == http.StatusOK })
	ddb := dynamodb.NewFromConfig(aws.Config{Region: st.Info.Region, BaseEndpoint: aws.String(st.Info.AWSEndpoint), Credentials: awscreds.NewStaticCredentialsProvider("x", "x", "")})
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
