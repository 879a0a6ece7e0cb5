package localstack

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"reflect"
	"strings"
	"time"
)

// RevokerFunction is the local revoker's function name, in stack.json's
// revokerFunction: what `credbroker admin revoke` and `aws lambda invoke`
// name.
const RevokerFunction = "credbroker-revoker"

// invokePrefix is Lambda's Invoke route: POST
// /2015-03-31/functions/{FunctionName}/invocations.
const invokePrefix = "/2015-03-31/functions/"

// maxPayload is Lambda's limit on a synchronous invocation's request.
const maxPayload = 6 << 20

// functionTimeout is the revoker's Timeout in template.yaml.
const functionTimeout = 60 * time.Second

// function is a handler as lambda.Start takes it.
type function func(ctx context.Context, payload json.RawMessage) (any, error)

// lambdaAPI serves Lambda's Invoke API (REST-JSON, RequestResponse only)
// for the local stack's functions, so that tools reach them with the SDK's
// lambda client exactly as they reach the deployed functions. Signatures
// are not checked (moto does not either); only loopback callers are served,
// as nothing else may trigger a revocation.
type lambdaAPI struct {
	functions map[string]function
	log       *slog.Logger
}

func (a *lambdaAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !fromLoopback(r) {
		lambdaError(w, http.StatusForbidden, "AccessDeniedException", "the local Lambda API serves loopback callers only")
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, invokePrefix)
	name, ok2 := strings.CutSuffix(name, "/invocations")
	if !ok || !ok2 || r.Method != http.MethodPost {
		lambdaError(w, http.StatusNotFound, "UnknownOperationException", "the local Lambda API serves only POST "+invokePrefix+"{FunctionName}/invocations")
		return
	}
	fn, ok := a.functions[functionName(name)]
	if !ok {
		lambdaError(w, http.StatusNotFound, "ResourceNotFoundException", "Function not found: "+name)
		return
	}
	if t := r.Header.Get("X-Amz-Invocation-Type"); t != "" && t != "RequestResponse" {
		lambdaError(w, http.StatusBadRequest, "InvalidParameterValueException", "the local Lambda API supports only the RequestResponse invocation type, not "+t)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPayload))
	if err != nil {
		lambdaError(w, http.StatusRequestEntityTooLarge, "RequestTooLargeException", "request payload too large or unreadable")
		return
	}
	if len(body) == 0 {
		body = []byte("{}") // what Lambda hands a function invoked without a payload
	}
	if !json.Valid(body) {
		lambdaError(w, http.StatusBadRequest, "InvalidRequestContentException", "could not parse request body into json")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amz-Executed-Version", "$LATEST")
	// As on Lambda, a caller that hangs up does not stop the function,
	// which has the template's 60 s instead.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), functionTimeout)
	defer cancel()
	res, err := fn(ctx, body)
	var out []byte
	if err == nil {
		out, err = json.Marshal(res)
	}
	if err != nil {
		// As the Go runtime reports a returned error: the call succeeds,
		// the function failed.
		a.log.Warn("local function returned an error", "function", name, "err", err)
		w.Header().Set("X-Amz-Function-Error", "Unhandled")
		out, _ = json.Marshal(struct {
			Message string `json:"errorMessage"`
			Type    string `json:"errorType"`
		}{err.Error(), errorType(err)})
	}
	_, _ = w.Write(out)
}

// functionName accepts a function's name, its ARN or its partial ARN
// ("123456789012:function:name"), with or without a qualifier.
func functionName(s string) string {
	if i := strings.LastIndex(s, "function:"); i >= 0 {
		s = s[i+len("function:"):]
	}
	name, _, _ := strings.Cut(s, ":")
	return name
}

// errorType names an error's type as the Go runtime does in errorType.
func errorType(err error) string {
	t := reflect.TypeOf(err)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}

func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// lambdaError answers in Lambda's error shape, which the SDK reads from
// the x-amzn-ErrorType header and the body's Message.
func lambdaError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-Errortype", typ)
	w.WriteHeader(status)
	b, _ := json.Marshal(struct{ Type, Message string }{"User", msg})
	_, _ = w.Write(b)
}
