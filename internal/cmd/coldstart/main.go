// Command coldstart measures the credential function's cold start: from
// starting the AWS Lambda Runtime Interface Emulator with the built
// bootstrap to the first answer of a real GET /auths/resources invocation,
// with every AWS dependency in moto. It sets up its own resources in moto
// (tables and base role from template.yaml, an audit bus, a Cognito pool
// and user, the user's policy item), builds the bootstrap for the host, and
// runs the emulator on 127.0.0.1 once per run.
//
//	GOFLAGS=-mod=mod go install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@v0.0.0-20261030222936-bef5c4ba774d
//	go run ./internal/cmd/withmoto -- go run ./internal/cmd/coldstart -runs 10
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	ciptypes "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/ddbstore"
	"github.com/credbroker/credbroker/internal/motoserver"
	"github.com/credbroker/credbroker/internal/policy"
	"github.com/credbroker/credbroker/internal/samtemplate"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
)

func main() {
	runs := flag.Int("runs", 5, "cold starts to measure")
	rie := flag.String("rie", "", "aws-lambda-rie binary (default: PATH, then $(go env GOPATH)/bin)")
	endpoint := flag.String("moto", os.Getenv("MOTO_ENDPOINT"), "moto endpoint (default $MOTO_ENDPOINT, as withmoto sets it)")
	flag.Parse()
	if err := run(*runs, *rie, *endpoint); err != nil {
		fmt.Fprintln(os.Stderr, "coldstart:", err)
		os.Exit(1)
	}
}

func run(runs int, rie, endpoint string) error {
	if endpoint == "" {
		return errors.New("no moto endpoint: run under `go run ./internal/cmd/withmoto --` or pass -moto")
	}
	rie, err := findRIE(rie)
	if err != nil {
		return err
	}
	ctx := context.Background()
	st, err := setUp(ctx, endpoint)
	if err != nil {
		return fmt.Errorf("set up moto: %w", err)
	}
	dir, err := os.MkdirTemp("", "coldstart-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bootstrap := filepath.Join(dir, "bootstrap")
	build := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags", "-s -w", "-o", bootstrap, "./functions/credentials")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build bootstrap: %w", err)
	}
	info, err := os.Stat(bootstrap)
	if err != nil {
		return err
	}
	payload, err := json.Marshal(st.event())
	if err != nil {
		return err
	}

	var ready, first, warm []time.Duration
	for i := range runs {
		r, f, w, err := measure(rie, bootstrap, st.env(endpoint), payload)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		fmt.Printf("run %2d: emulator listening %7.1f ms, first answer %7.1f ms, warm answer %6.1f ms\n", i+1, ms(r), ms(f), ms(w))
		ready, first, warm = append(ready, r), append(first, f), append(warm, w)
	}
	fmt.Printf("bootstrap %.1f MiB (host %s build); median of %d: emulator listening %.1f ms, process start to first answer %.1f ms, warm answer %.1f ms\n",
		float64(info.Size())/(1<<20), hostArch(), runs, ms(median(ready)), ms(median(first)), ms(median(warm)))
	return nil
}

func findRIE(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if p, err := exec.LookPath("aws-lambda-rie"); err == nil {
		return p, nil
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "aws-lambda-rie")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("aws-lambda-rie not found: GOFLAGS=-mod=mod go install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@v0.0.0-20261030222936-bef5c4ba774d")
}

// measure starts the emulator and invokes the function once cold and once
// warm. It returns the time from starting the emulator process until it
// accepted a connection, until the first answer, and the warm answer's
// latency.
func measure(rie, bootstrap string, env []string, payload []byte) (ready, first, warm time.Duration, err error) {
	apiPort, err := motoserver.FreePort()
	if err != nil {
		return 0, 0, 0, err
	}
	rtPort, err := motoserver.FreePort()
	if err != nil {
		return 0, 0, 0, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(apiPort)
	cmd := exec.Command(rie, "--log-level", "error",
		"--runtime-interface-emulator-address", addr,
		"--runtime-api-address", "127.0.0.1:"+strconv.Itoa(rtPort),
		bootstrap)
	cmd.Env = env
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, 0, err
	}
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if err != nil {
			err = fmt.Errorf("%w\nemulator and function output:\n%s", err, logs.String())
		}
	}()

	deadline := start.Add(20 * time.Second)
	for {
		c, derr := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if derr == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			return 0, 0, 0, fmt.Errorf("emulator not listening after 20s: %v", derr)
		}
		time.Sleep(time.Millisecond) // polling a port, not synchronising a test
	}
	ready = time.Since(start)
	url := "http://" + addr + "/2015-03-31/functions/function/invocations"
	if err := invoke(url, payload); err != nil {
		return 0, 0, 0, err
	}
	first = time.Since(start)
	t := time.Now()
	if err := invoke(url, payload); err != nil {
		return 0, 0, 0, err
	}
	return ready, first, time.Since(t), nil
}

func invoke(url string, payload []byte) error {
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Post(url, "application/json", bytes.NewReader(payload))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var out events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(body, &out); err != nil || out.StatusCode != http.StatusOK {
		return fmt.Errorf("invocation answered %s: %s", resp.Status, body)
	}
	return nil
}

// stack is what setUp created in moto.
type stack struct {
	policyTable, roleARN, bus, poolID, clientID, jwksURL, accessToken string
}

func (s stack) env(endpoint string) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"AWS_REGION=" + mototest.Region,
		"AWS_ACCESS_KEY_ID=testing",
		"AWS_SECRET_ACCESS_KEY=testing",
		"AWS_ENDPOINT_URL=" + endpoint,
		"CREDBROKER_POLICY_TABLE=" + s.policyTable,
		"CREDBROKER_BASE_ROLE_ARN=" + s.roleARN,
		"CREDBROKER_USER_POOL_ID=" + s.poolID,
		"CREDBROKER_ALLOWED_CLIENT_IDS=" + s.clientID,
		"CREDBROKER_EVENT_BUS=" + s.bus,
		"CREDBROKER_JWKS_URL=" + s.jwksURL,
		"CREDBROKER_LOG_LEVEL=WARN",
	}
}

func (s stack) event() events.APIGatewayV2HTTPRequest {
	return events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: "GET /auths/resources", RawPath: "/auths/resources",
		Headers: map[string]string{"authorization": "Bearer " + s.accessToken, "user-agent": "coldstart"},
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RequestID: "coldstart",
			HTTP:      events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "GET", Path: "/auths/resources", SourceIP: "127.0.0.1"},
		},
	}
}

func setUp(ctx context.Context, endpoint string) (stack, error) {
	cfg := mototest.ConfigFor(endpoint)
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	st := stack{policyTable: "coldstart-policy-" + suffix, bus: "coldstart-audit-" + suffix}

	tpl, err := samtemplate.LoadDefault()
	if err != nil {
		return st, err
	}
	def, err := tpl.Table("PolicyTable")
	if err != nil {
		return st, err
	}
	ddb := dynamodb.NewFromConfig(cfg)
	if _, err := def.Create(ctx, ddb, st.policyTable); err != nil {
		return st, err
	}
	role, err := tpl.CreateBaseRole(ctx, iam.NewFromConfig(cfg), "coldstart-base-"+suffix)
	if err != nil {
		return st, err
	}
	st.roleARN = role.ARN
	if _, err := eventbridge.NewFromConfig(cfg).CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(st.bus)}); err != nil {
		return st, err
	}

	idp := cip.NewFromConfig(cfg)
	pool, err := idp.CreateUserPool(ctx, &cip.CreateUserPoolInput{PoolName: aws.String("coldstart-" + suffix)})
	if err != nil {
		return st, err
	}
	st.poolID = aws.ToString(pool.UserPool.Id)
	st.jwksURL = strings.TrimRight(endpoint, "/") + "/" + st.poolID + "/.well-known/jwks.json"
	app, err := idp.CreateUserPoolClient(ctx, &cip.CreateUserPoolClientInput{
		UserPoolId: pool.UserPool.Id, ClientName: aws.String("coldstart"),
		ExplicitAuthFlows: []ciptypes.ExplicitAuthFlowsType{ciptypes.ExplicitAuthFlowsTypeAllowUserPasswordAuth},
	})
	if err != nil {
		return st, err
	}
	st.clientID = aws.ToString(app.UserPoolClient.ClientId)
	const username, password = "coldstart", "Correct-Horse-9-battery"
	user, err := idp.AdminCreateUser(ctx, &cip.AdminCreateUserInput{UserPoolId: pool.UserPool.Id, Username: aws.String(username),
		MessageAction: ciptypes.MessageActionTypeSuppress, TemporaryPassword: aws.String(password)})
	if err != nil {
		return st, err
	}
	if _, err := idp.AdminSetUserPassword(ctx, &cip.AdminSetUserPasswordInput{UserPoolId: pool.UserPool.Id,
		Username: aws.String(username), Password: aws.String(password), Permanent: true}); err != nil {
		return st, err
	}
	var sub string
	for _, a := range user.User.Attributes {
		if aws.ToString(a.Name) == "sub" {
			sub = aws.ToString(a.Value)
		}
	}
	auth, err := idp.InitiateAuth(ctx, &cip.InitiateAuthInput{ClientId: app.UserPoolClient.ClientId, AuthFlow: ciptypes.AuthFlowTypeUserPasswordAuth,
		AuthParameters: map[string]string{"USERNAME": username, "PASSWORD": password}})
	if err != nil || auth.AuthenticationResult == nil {
		return st, fmt.Errorf("sign in: %v", err)
	}
	st.accessToken = aws.ToString(auth.AuthenticationResult.AccessToken)

	res, err := policy.Compiler{}.Compile(map[string][]broker.Place{
		"genomics": {{Bucket: "genomics-raw", Prefix: "runs/2024/", Access: broker.Write}, {Bucket: "shared-reference", Access: broker.Read}},
	})
	if err != nil {
		return st, err
	}
	store := &ddbstore.Store{Client: ddb, PolicyTable: st.policyTable}
	claim, err := store.Claim(ctx, sub, time.Now())
	if err != nil {
		return st, err
	}
	p := broker.UserPolicy{UserID: sub, Version: res.Version, Grants: res.Grants, Sets: res.Sets, ByProject: res.ByProject, UpdatedAt: time.Now()}
	return st, store.Commit(ctx, claim, p, nil)
}

func median(d []time.Duration) time.Duration {
	s := slices.Sorted(slices.Values(d))
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func hostArch() string {
	out, err := exec.Command("go", "env", "GOOS", "GOARCH").Output()
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(out)), "/")
}
