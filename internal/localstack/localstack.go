// Package localstack runs the whole broker on this machine with no AWS
// account (`make run`): moto on loopback as every AWS service, the
// resources of template.yaml created in it, the projector fed by a poller
// on the membership table's real stream, and the credential endpoint as a
// local HTTP server that drives the Lambda handler through API Gateway v2
// events.
package localstack

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"

	"github.com/credbroker/credbroker/internal/awsconfig"
	credsvc "github.com/credbroker/credbroker/internal/credentials"
	"github.com/credbroker/credbroker/internal/ddbstore"
	"github.com/credbroker/credbroker/internal/ddbstream"
	"github.com/credbroker/credbroker/internal/exitcode"
	"github.com/credbroker/credbroker/internal/motoserver"
	"github.com/credbroker/credbroker/internal/projector"
	"github.com/credbroker/credbroker/internal/revoker"
	"github.com/credbroker/credbroker/internal/samtemplate"
	"github.com/credbroker/credbroker/internal/stackfile"
	"github.com/credbroker/credbroker/internal/wire"
)

// Info is .local/stack.json (docs/operations.md "Local stack"), written when the stack
// is ready.
type Info = stackfile.Stack

// The ports `make run` uses unless told otherwise.
const (
	DefaultMotoPort = 4566
	DefaultPort     = 8080
	DefaultWebPort  = 8081
	// DefaultLambdaPort serves Lambda's Invoke API for the local
	// functions (`make run`; Options.LambdaPort 0 takes any free port).
	DefaultLambdaPort = 8082
)

// Options configure a local stack.
type Options struct {
	MotoPort int    // default 4566
	Port     int    // default 8080
	Region   string // default us-east-1
	// WebDir, when set, is the built demo page (web/dist/demo): it is
	// served on http://127.0.0.1:WebPort with a config.json for this
	// stack, the credential endpoint allows that origin (CORS, as the
	// template's AllowedOrigins does on AWS), and stack.json gets webUrl.
	WebDir  string
	WebPort int // default 8081
	// LambdaPort serves Lambda's Invoke API for the local revoker on
	// loopback (stack.json's lambdaEndpoint); 0 takes any free port.
	LambdaPort int
	Dir        string // where stack.json and logs go; default .local
	// Moto, when set, is the URL of a moto already running (tests); no
	// moto is started or stopped then.
	Moto string
	// Name prefixes every resource (default "credbroker-local").
	Name string
	// Seed adds a demo user, project and buckets.
	Seed bool
	// AuditTail copies every audit event to an SQS queue.
	AuditTail bool
	// Archive creates the audit bus's archive, as template.yaml does. It
	// is off by default: moto spends about 140 ms of its one Python
	// process on every PutEvents to a bus with an archive (or any other
	// rule target), during which it serves nothing else (docs/operations.md
	// "Differences from AWS").
	Archive bool
	// StackEndpoint, when set, is where the stack's own AWS clients (the
	// projector, the stream poller, the credential endpoint and its key
	// set fetch) send their requests instead of moto: the load generator
	// puts a proxy there that counts them and injects faults. Resources
	// are still created, and stack.json still points, at moto itself.
	StackEndpoint string
	// Streams reads the membership table's stream; default the DynamoDB
	// Streams client for moto. Tests inject faults with it.
	Streams ddbstream.API
	Logger  *slog.Logger
	// Out receives the human-readable status lines.
	Out io.Writer
	// SessionDuration is the template's SessionDurationSeconds: what the
	// endpoint issues and the revoker keeps its entries for (default 15
	// minutes).
	SessionDuration time.Duration
}

// ExitCode maps a Start or Run error to the process's exit status
// (docs/development.md "Exit status"): a taken port, a missing moto_server or another
// stack running from the same directory is the machine's (Environment),
// anything else a Failure.
func ExitCode(err error) int {
	if errors.Is(err, motoserver.ErrPortInUse) || errors.Is(err, motoserver.ErrNotInstalled) || errors.Is(err, ErrAlreadyRunning) {
		return exitcode.Environment
	}
	if err != nil {
		return exitcode.Failure
	}
	return exitcode.OK
}

// Stack is a running local stack.
type Stack struct {
	Info Info
	Demo *Demo // set when seeded
	// streamARN is the membership table's stream, which the poller reads.
	streamARN string
	moto      *motoserver.Server
	motoLog   string
	server    *http.Server
	web       *http.Server // the demo page's, when served
	lambda    *http.Server // Lambda's Invoke API for the local functions
	webFiles  *webHandler
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	infoPath  string
	// unlock releases the directory's lock (lock.go).
	unlock func()
	// stopped receives why the poller, the API server, the Lambda API or the demo page's
	// server ended on its own; each sends at most once, so it never blocks.
	stopped chan error
}

// Start brings everything up and writes stack.json. Stop undoes it.
func Start(ctx context.Context, o Options) (*Stack, error) {
	o = o.withDefaults()
	log := o.Logger
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	// One stack per directory: the lock is taken before anything else, so
	// a second stack neither touches the first's stack.json nor blames
	// the ports the first one holds.
	unlock, err := lockDir(o.Dir)
	if err != nil {
		return nil, err
	}
	st := &Stack{infoPath: filepath.Join(o.Dir, "stack.json"), stopped: make(chan error, 4), unlock: unlock}
	ok := false
	defer func() {
		if !ok {
			st.Stop()
		}
	}()
	// The ports are checked before anything starts, so a clash is
	// reported at once and nothing is left behind.
	if err := motoserver.CheckFree(o.Port); err != nil {
		if errors.Is(err, motoserver.ErrPortInUse) {
			return nil, fmt.Errorf("API port: %w (is another program or a local stack from another checkout using it? set PORT to another port)", err)
		}
		return nil, fmt.Errorf("API port: %w", err)
	}
	if o.LambdaPort != 0 {
		if o.LambdaPort == o.Port || (o.WebDir != "" && o.LambdaPort == o.WebPort) {
			return nil, fmt.Errorf("the Lambda API needs a port of its own, not %d: set LAMBDA_PORT to another port", o.LambdaPort)
		}
		if err := motoserver.CheckFree(o.LambdaPort); err != nil {
			if errors.Is(err, motoserver.ErrPortInUse) {
				return nil, fmt.Errorf("lambda API port: %w (is another program or a local stack from another checkout using it? set LAMBDA_PORT to another port)", err)
			}
			return nil, fmt.Errorf("lambda API port: %w", err)
		}
	}
	if o.WebDir != "" {
		if o.WebPort == o.Port {
			return nil, fmt.Errorf("the API and the demo page cannot share port %d: set WEB_PORT to another port", o.Port)
		}
		if err := motoserver.CheckFree(o.WebPort); err != nil {
			if errors.Is(err, motoserver.ErrPortInUse) {
				return nil, fmt.Errorf("demo page port: %w (is another program or a local stack from another checkout using it? set WEB_PORT to another port)", err)
			}
			return nil, fmt.Errorf("demo page port: %w", err)
		}
		if st.webFiles, err = openWeb(o.WebDir); err != nil {
			return nil, err
		}
	}
	endpoint := o.Moto
	if endpoint == "" {
		logf, err := os.Create(filepath.Join(o.Dir, "moto.log"))
		if err != nil {
			return nil, err
		}
		if st.moto, err = motoserver.Start(ctx, o.MotoPort, logf); err != nil {
			if errors.Is(err, motoserver.ErrPortInUse) {
				return nil, fmt.Errorf("moto port: %w (is another moto or local stack running? set MOTO_PORT to another port)", err)
			}
			return nil, fmt.Errorf("moto: %w", err)
		}
		endpoint = st.moto.URL
		st.motoLog = logf.Name()
		fmt.Fprintf(o.Out, "moto_server running at %s (log %s)\n", endpoint, logf.Name())
	}

	// The same retries and HTTP timeouts as in Lambda, so that a slow or
	// stuck moto call fails inside a request's deadline as it would there.
	awsCfg := awsconfig.Local(o.Region, endpoint)
	tpl, err := samtemplate.LoadDefault()
	if err != nil {
		return nil, err
	}
	st.Info = Info{Region: o.Region, AWSEndpoint: endpoint, APIURL: fmt.Sprintf("http://127.0.0.1:%d", o.Port)}
	var cors samtemplate.Cors
	if o.WebDir != "" {
		// webUrl is an origin, without a path: the page's address and
		// what CORS compares with.
		st.Info.WebURL = fmt.Sprintf("http://127.0.0.1:%d", o.WebPort)
		if cors, err = tpl.LocalCors(st.Info.WebURL); err != nil {
			return nil, fmt.Errorf("CORS for the demo page: %w", err)
		}
	}
	if err := provision(ctx, names{o.Name}, tpl, awsCfg, provisionOptions{tail: o.AuditTail, archive: o.Archive}, &st.Info, &st.streamARN); err != nil {
		return nil, fmt.Errorf("create resources in moto: %w", err)
	}
	stackEndpoint := cmp.Or(o.StackEndpoint, endpoint)
	stackCfg := awsconfig.Local(o.Region, stackEndpoint)

	env := map[string]string{
		"CREDBROKER_MEMBERSHIP_TABLE": st.Info.MembershipTable, "CREDBROKER_POLICY_TABLE": st.Info.PolicyTable,
		"CREDBROKER_EVENT_BUS": st.Info.EventBusName, "CREDBROKER_ARN_PARTITION": "aws",
		"CREDBROKER_BASE_ROLE_ARN": st.Info.BaseRoleARN, "CREDBROKER_USER_POOL_ID": st.Info.UserPoolID,
		"CREDBROKER_ALLOWED_CLIENT_IDS": st.Info.UserPoolClientID, "AWS_REGION": o.Region,
		"CREDBROKER_JWKS_URL": stackEndpoint + "/" + st.Info.UserPoolID + "/.well-known/jwks.json",
	}
	if o.SessionDuration > 0 {
		env["CREDBROKER_SESSION_DURATION_SECONDS"] = strconv.Itoa(int(o.SessionDuration / time.Second))
	}
	getenv := func(k string) string { return env[k] }
	pcfg, err := projector.ConfigFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	ccfg, err := credsvc.ConfigFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	proj := wire.Projector(pcfg, stackCfg, log.With("function", "projector"), io.Discard)
	ep, err := wire.Credentials(ccfg, stackCfg, log.With("function", "credentials"), io.Discard)
	if err != nil {
		return nil, err
	}
	svc := ep.Service
	// The revoker, fed as the audit bus's rule feeds it on AWS.
	revoker, err := wire.Revoker(revoker.Config{PolicyTable: st.Info.PolicyTable, AuditBusName: st.Info.EventBusName,
		BaseRoleARN: st.Info.BaseRoleARN, MaxSession: ccfg.SessionDuration}, stackCfg, log.With("function", "revoker"), io.Discard)
	if err != nil {
		return nil, err
	}
	rule := newBusRule(proj.Projector.Auditor, revoker, log.With("function", "revoker"))
	proj.Projector.Auditor = rule
	// Fan-outs of more than a page go to the workers, as FanoutQueue's
	// event source feeds them on AWS.
	pages := newPageQueue(proj, log.With("function", "projector"))
	proj.Projector.Pages = pages

	runCtx, cancel := context.WithCancel(context.Background())
	st.cancel = cancel
	// Membership expiries, on this machine's clock as the scheduler's on AWS.
	timers := newExpiryTimers(runCtx, proj, log.With("function", "projector"))
	proj.Projector.Expiries = timers
	st.wg.Go(func() { <-runCtx.Done(); timers.stop() })
	streams := o.Streams
	if streams == nil {
		streams = dynamodbstreams.NewFromConfig(stackCfg)
	}
	// Lambda's event source mapping never stops polling a stream over
	// failed reads; the poller stops the stack only when reads keep
	// failing for about a minute (30 backoffs of up to 5 s), so that moto
	// being slow or unreachable for some seconds (the load generator's
	// fault window) delays the projection but does not end it.
	reader := &ddbstream.Reader{Client: streams, StreamARN: st.streamARN, Logger: log, MaxFailures: 30}
	st.wg.Go(func() {
		err := reader.Poll(runCtx, 50*time.Millisecond, 2*time.Second, feed(proj))
		// Poll ends on its own only with an error.
		if runCtx.Err() == nil {
			log.Error("stream poller stopped", "err", err)
			st.stopped <- fmt.Errorf("stream poller stopped: %w", err)
		}
	})

	// A long-lived server flushes the audit queue as events arrive.
	st.wg.Go(func() { ep.Queue.Run(runCtx, 5*time.Second) })
	st.wg.Go(func() { rule.run(runCtx, 5*time.Minute) })
	st.wg.Go(func() { pages.run(runCtx) })

	var api http.Handler = credsvc.NewHTTPHandler(svc.Handle)
	if o.WebDir != "" {
		api = withCORS(cors, api)
	}
	mux := http.NewServeMux()
	mux.Handle(credsvc.Path, api)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("/", notFound)
	if st.server, _, err = st.serve("API", o.Port, mux, log); err != nil {
		return nil, err
	}
	// The operator's `admin revoke` invokes the revoker through Lambda's
	// API, as on AWS, so that its cutoff comes from the revoker's clock.
	lambdaAPI := &lambdaAPI{functions: map[string]function{
		RevokerFunction: func(ctx context.Context, p json.RawMessage) (any, error) { return revoker.Invoke(ctx, p) },
	}, log: log.With("function", "lambda-api")}
	var lambdaAddr string
	if st.lambda, lambdaAddr, err = st.serve("Lambda API", o.LambdaPort, lambdaAPI, log); err != nil {
		return nil, err
	}
	st.Info.RevokerFunction, st.Info.LambdaEndpoint = RevokerFunction, "http://"+lambdaAddr
	if o.WebDir != "" {
		if err := st.webFiles.configure(st.Info); err != nil {
			return nil, err
		}
		if st.web, _, err = st.serve("demo page", o.WebPort, st.webFiles, log); err != nil {
			return nil, err
		}
	}

	if o.Seed {
		if st.Demo, err = seed(ctx, awsCfg, st.Info); err != nil {
			return nil, fmt.Errorf("demo seed: %w", err)
		}
		store := &ddbstore.Store{Client: dynamodb.NewFromConfig(awsCfg), PolicyTable: st.Info.PolicyTable}
		if err := st.Demo.projected(ctx, store, 30*time.Second); err != nil {
			return nil, fmt.Errorf("demo seed: %w", err)
		}
	}
	if err := stackfile.Write(st.infoPath, st.Info); err != nil {
		return nil, err
	}
	ok = true
	return st, nil
}

// serve listens on 127.0.0.1:port (any free port for 0) and serves h
// until Stop; a server that ends on its own stops the stack (Wait). It
// returns the address it listens on.
func (s *Stack) serve(what string, port int, h http.Handler, log *slog.Logger) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			err = fmt.Errorf("%w: %w", motoserver.ErrPortInUse, err)
		}
		return nil, "", fmt.Errorf("%s port %d: %w", what, port, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 64 << 10}
	s.wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(what+" server stopped", "err", err)
			s.stopped <- fmt.Errorf("%s server stopped: %w", what, err)
		}
	})
	return srv, ln.Addr().String(), nil
}

// notFound answers every path but the endpoint's (and /healthz) in the
// endpoint's error shape and with its headers: an answer of this server
// is never to be cached.
func notFound(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusNotFound)
	_, _ = io.WriteString(w, `{"error":"not_found","message":"the only route is GET `+credsvc.Path+`"}`)
}

// feed hands each stream page to the projector in Lambda's batches and,
// like Lambda, asks for redelivery from the first failed record.
func feed(h *projector.Handler) func(context.Context, string, []events.DynamoDBEventRecord) (string, error) {
	return func(ctx context.Context, _ string, recs []events.DynamoDBEventRecord) (string, error) {
		for start := 0; start < len(recs); start += projector.StreamBatchSize {
			batch := recs[start:min(start+projector.StreamBatchSize, len(recs))]
			accepted, err := projector.Deliver(ctx, h, batch)
			if err != nil || accepted < len(batch) {
				return batch[accepted].Change.SequenceNumber, err
			}
		}
		return "", nil
	}
}

// InfoPath is where stack.json is.
func (s *Stack) InfoPath() string { return s.infoPath }

// Stop shuts the server and poller down, stops moto if it started it,
// removes stack.json and releases the directory for the next stack.
func (s *Stack) Stop() {
	for _, srv := range []*http.Server{s.server, s.web, s.lambda} {
		if srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = srv.Shutdown(ctx)
			cancel()
		}
	}
	if s.webFiles != nil {
		_ = s.webFiles.Close()
	}
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	if s.moto != nil {
		s.moto.Stop()
	}
	_ = os.Remove(s.infoPath)
	if s.unlock != nil {
		s.unlock()
		s.unlock = nil
	}
}

// Wait returns nil when ctx ends, or an error saying what stopped when the
// stream poller, the API server, the demo page's server or the moto it
// started ends on its own: the stack would go on answering from a policy
// table nothing updates.
func (s *Stack) Wait(ctx context.Context) error {
	var motoDone <-chan struct{} // nil, never ready, when moto is not ours
	if s.moto != nil {
		motoDone = s.moto.Done()
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-s.stopped:
		return err
	case <-motoDone:
		return fmt.Errorf("moto_server exited (%v); its log is %s", s.moto.Err(), s.motoLog)
	}
}

// Run starts the stack, reports it on o.Out and runs until ctx ends or a
// part of the stack stops (see Wait), then stops it.
func Run(ctx context.Context, o Options) error {
	o = o.withDefaults()
	st, err := Start(ctx, o)
	if err != nil {
		return err
	}
	defer st.Stop()
	fmt.Fprintf(o.Out, "\nLocal stack ready (stack file %s)\n", st.infoPath)
	fmt.Fprintf(o.Out, "  credential endpoint  %s%s\n", st.Info.APIURL, credsvc.Path)
	fmt.Fprintf(o.Out, "  AWS endpoint (moto)  %s   region %s\n", st.Info.AWSEndpoint, st.Info.Region)
	fmt.Fprintf(o.Out, "  Lambda API           %s   revoker %s\n", st.Info.LambdaEndpoint, st.Info.RevokerFunction)
	fmt.Fprintf(o.Out, "  user pool %s   app client %s\n", st.Info.UserPoolID, st.Info.UserPoolClientID)
	if st.Info.WebURL != "" {
		fmt.Fprintf(o.Out, "  demo page            %s\n", st.Info.WebURL)
	} else {
		fmt.Fprintln(o.Out, "  demo page            not served: web/dist/demo is not built (`make web` builds it, with Node.js 20+ and npm)")
	}
	if d := st.Demo; d != nil {
		fmt.Fprintf(o.Out, "  demo user %q password %q: project %q (write: %s), project %q (read: %s)\n",
			d.Username, d.Password, d.Project, strings.Join(d.Places, ", "), d.ReadOnlyProject, strings.Join(d.ReadOnlyPlaces, ", "))
		fmt.Fprintf(o.Out, "  user %q (same password) in no project yet; project %q owns %s\n",
			d.Contractor, d.Genomics, strings.Join(d.GenomicsPlaces, ", "))
		fmt.Fprintf(o.Out, "  buckets              %s\n", strings.Join(d.Buckets, ", "))
	}
	if st.Info.AuditQueueURL != "" {
		fmt.Fprintf(o.Out, "  audit events copied to %s\n", st.Info.AuditQueueURL)
	}
	fmt.Fprintln(o.Out, "Press Ctrl-C to stop.")
	err = st.Wait(ctx)
	if err != nil {
		fmt.Fprintf(o.Out, "\nStopping the local stack: %v\n", err)
	} else {
		fmt.Fprintln(o.Out, "\nStopping the local stack...")
	}
	return err
}

func (o Options) withDefaults() Options {
	if o.MotoPort == 0 {
		o.MotoPort = DefaultMotoPort
	}
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	if o.WebPort == 0 {
		o.WebPort = DefaultWebPort
	}
	if o.Name == "" {
		o.Name = "credbroker-local"
	}
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.Dir == "" {
		o.Dir = ".local"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	return o
}
