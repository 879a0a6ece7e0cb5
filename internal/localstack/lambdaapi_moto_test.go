//go:build integration

package localstack_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/credbroker/credbroker/internal/awsconfig"
	"github.com/credbroker/credbroker/internal/exitcode"
	"github.com/credbroker/credbroker/internal/localstack"
	"github.com/credbroker/credbroker/internal/motoserver"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
)

// The stack's revoker answers Lambda's Invoke API on LAMBDA_PORT as the
// deployed function does (a refused payload is a function error), and the
// port is free again after Stop.
func TestTheLocalRevokerAnswersLambdasInvokeAPI(t *testing.T) {
	port := freePort(t)
	st, err := localstack.Start(context.Background(), localstack.Options{
		Moto: mototest.Endpoint(t), Port: freePort(t), LambdaPort: port, Dir: t.TempDir(), Name: mototest.Name(t, "lambda"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Stop()
	client := lambda.NewFromConfig(awsconfig.Local(st.Info.Region, st.Info.LambdaEndpoint))
	out, err := client.Invoke(context.Background(), &lambda.InvokeInput{
		FunctionName: aws.String(st.Info.RevokerFunction), Payload: []byte(`{"action":"revoke","userId":"a*b"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.FunctionError) != "Unhandled" || !strings.Contains(string(out.Payload), "revoker payload refused") {
		t.Errorf("invalid user: function error %q, payload %s; want Unhandled, the revoker's refusal", aws.ToString(out.FunctionError), out.Payload)
	}
	st.Stop()
	if err := motoserver.CheckFree(port); err != nil {
		t.Errorf("the Lambda API's port is still taken after Stop: %v", err)
	}
}

func TestATakenLambdaPortIsReportedWithExit4BeforeAnythingStarts(t *testing.T) {
	dir := t.TempDir()
	_, err := localstack.Start(context.Background(), localstack.Options{
		Moto: mototest.Endpoint(t), Port: freePort(t), LambdaPort: takenPort(t), Dir: dir,
	})
	if !errors.Is(err, motoserver.ErrPortInUse) || localstack.ExitCode(err) != exitcode.Environment || !strings.Contains(err.Error(), "LAMBDA_PORT") {
		t.Errorf("Start = %v (exit %d), want the port in use, LAMBDA_PORT named, exit %d", err, localstack.ExitCode(err), exitcode.Environment)
	}
	if _, err := os.Stat(filepath.Join(dir, "stack.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stack.json written: %v", err)
	}
}
