package localstack

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/awsconfig"
)

// The local Lambda API answers the SDK's lambda client as Lambda does: the
// handler's result, a returned error as a function error, an unknown
// function as ResourceNotFoundException, and a caller off loopback not at
// all.
func TestLocalLambdaAPIAnswersTheSDKAsLambdaDoes(t *testing.T) {
	var got []string // the payloads the function received
	api := &lambdaAPI{log: slog.New(slog.NewTextHandler(io.Discard, nil)), functions: map[string]function{
		"echo": func(_ context.Context, p json.RawMessage) (any, error) {
			got = append(got, string(p))
			var in struct{ Fail string }
			if err := json.Unmarshal(p, &in); err != nil {
				return nil, err
			}
			if in.Fail != "" {
				return nil, errors.New(in.Fail)
			}
			return map[string]string{"answer": "ok"}, nil
		},
	}}
	// offLoopback makes the server see a caller from another machine.
	offLoopback := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.RemoteAddr = "192.0.2.7:40000"
		api.ServeHTTP(w, r)
	})

	type outcome struct {
		Payload       string
		FunctionError string
		ErrorCode     string // the API error's code, when the call failed
		Received      []string
	}
	tests := []struct {
		name     string
		handler  http.Handler
		function string
		payload  string
		want     outcome
	}{
		{"the handler's result comes back", api, "echo", `{"x":1}`,
			outcome{Payload: `{"answer":"ok"}`, Received: []string{`{"x":1}`}}},
		{"the function is found by its ARN too", api, "arn:aws:lambda:us-east-1:123456789012:function:echo", `{}`,
			outcome{Payload: `{"answer":"ok"}`, Received: []string{`{}`}}},
		{"a returned error is a function error", api, "echo", `{"Fail":"no such user"}`,
			outcome{Payload: `{"errorMessage":"no such user","errorType":"errorString"}`, FunctionError: "Unhandled", Received: []string{`{"Fail":"no such user"}`}}},
		{"an unknown function is not found and runs nothing", api, "credbroker-nothing", `{}`,
			outcome{ErrorCode: "ResourceNotFoundException"}},
		{"a caller off loopback is refused and runs nothing", offLoopback, "echo", `{}`,
			outcome{ErrorCode: "AccessDeniedException"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got = nil
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			cfg := awsconfig.Local("us-east-1", srv.URL)
			client := lambda.NewFromConfig(cfg, func(o *lambda.Options) { o.RetryMaxAttempts = 1 })
			out, err := client.Invoke(context.Background(), &lambda.InvokeInput{
				FunctionName: aws.String(tc.function), InvocationType: lambdatypes.InvocationTypeRequestResponse,
				Payload: []byte(tc.payload),
			})
			var res outcome
			var apiErr smithy.APIError
			switch {
			case errors.As(err, &apiErr):
				res.ErrorCode = apiErr.ErrorCode()
			case err != nil:
				t.Fatal(err)
			default:
				res.Payload, res.FunctionError = string(out.Payload), aws.ToString(out.FunctionError)
			}
			res.Received = got
			if diff := cmp.Diff(tc.want, res); diff != "" {
				t.Errorf("outcome (-want +got):\n%s", diff)
			}
		})
	}
}
