package admin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/credbroker/credbroker/internal/awsconfig"
	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/cli"
	"github.com/credbroker/credbroker/internal/revoker"
)

func init() {
	register(cli.Command{
		Path:    "admin revoke",
		Summary: "revoke every current session of one user now, through the revoker function (docs/security.md \"Revoking a user\")",
		Run:     adminRevoke,
	})
}

// adminRevoke asks the revoker function to revoke the user, through
// Lambda's Invoke API, and prints the cutoff it set. The revoker stamps the
// cutoff with its own clock and keeps the deny entry for its own session
// duration: this machine's clock, however far off, enters nothing.
func adminRevoke(ctx context.Context, env *cli.Env, args []string) error {
	fs := cli.NewFlags(env, "admin revoke")
	t := cli.AddTargetFlags(fs, cli.Revoker)
	user := fs.String("user", "", "the user's id (Cognito sub)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *user == "" {
		return cli.Usagef("--user is required")
	}
	if err := broker.ValidateUserID(*user); err != nil {
		return cli.Usagef("--user: %s", broker.MessageOf(err))
	}
	tgt, err := t.Resolve(env, cli.Revoker)
	if err != nil {
		return err
	}
	client, err := lambdaClient(ctx, tgt, func(o *lambda.Options) { o.HTTPClient = invokeHTTPClient() })
	if err != nil {
		return err
	}
	id, err := operatorRequestID()
	if err != nil {
		return err
	}
	payload, err := json.Marshal(revoker.Action{Action: "revoke", UserID: *user, RequestID: id})
	if err != nil {
		return err
	}
	out, err := client.Invoke(ctx, &lambda.InvokeInput{
		FunctionName:   aws.String(tgt.RevokerFunction),
		InvocationType: lambdatypes.InvocationTypeRequestResponse,
		Payload:        payload,
	})
	if err != nil {
		var nf *lambdatypes.ResourceNotFoundException
		if errors.As(err, &nf) {
			return cli.Usagef("no revoker function %q: check --revoker-function (the RevokerFunctionName output)", tgt.RevokerFunction)
		}
		return fmt.Errorf("invoke the revoker %s: %w", tgt.RevokerFunction, err)
	}
	if out.FunctionError != nil {
		return revokerError(out.Payload)
	}
	var res revoker.Result
	if err := json.Unmarshal(out.Payload, &res); err != nil || res.UserID != *user || res.IssuedBefore.IsZero() {
		return fmt.Errorf("the revoker answered %s, not the revocation of %s", cli.OneLine(string(out.Payload)), *user)
	}
	fmt.Fprintf(env.Stdout, "revoked (request %s): sessions of %s issued before %s are denied, scope %s; the revoker's clock set the cutoff\n",
		id, res.UserID, res.IssuedBefore.UTC().Format(time.RFC3339Nano), res.Scope)
	return nil
}

// revokerError turns the payload of a function error into the command's
// error: a payload the revoker refused is the operator's (exit 2), any
// other failure is a failure (exit 3) that may be retried; either way no
// cutoff was reported.
func revokerError(payload []byte) error {
	var fe struct {
		Message string `json:"errorMessage"`
		Type    string `json:"errorType"`
	}
	if err := json.Unmarshal(payload, &fe); err != nil || fe.Message == "" {
		return fmt.Errorf("the revoker failed: %s", cli.OneLine(string(payload)))
	}
	if strings.HasPrefix(fe.Message, revoker.ErrRefused.Error()) {
		return cli.Usagef("the revoker refused the revocation: %s", fe.Message)
	}
	return fmt.Errorf("the revoker failed (%s): %s; run the command again", fe.Type, fe.Message)
}

// operatorRequestID names the invocation in the revoker's log and in the
// CredentialsRevoked event.
func operatorRequestID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "operator-" + hex.EncodeToString(b), nil
}

// invokeHTTPClient waits for the revoker's answer as long as the function
// may run (its Timeout is 60 s in template.yaml), unlike the shared client
// whose timeouts suit ordinary API calls.
func invokeHTTPClient() *awshttp.BuildableClient {
	return awsconfig.HTTPClient().
		WithTimeout(90 * time.Second).
		WithTransportOptions(func(t *http.Transport) { t.ResponseHeaderTimeout = 75 * time.Second })
}
