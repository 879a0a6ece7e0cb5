// Package wire builds the functions' handlers from their configuration and
// an AWS SDK configuration. The Lambda mains and the local stack share it,
// so what runs locally is wired exactly like what runs in Lambda.
package wire

import (
	"io"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/credbroker/credbroker/internal/auditqueue"
	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/credentials"
	"github.com/credbroker/credbroker/internal/ddbstore"
	"github.com/credbroker/credbroker/internal/ddbstream"
	"github.com/credbroker/credbroker/internal/ebaudit"
	"github.com/credbroker/credbroker/internal/ebscheduler"
	"github.com/credbroker/credbroker/internal/emf"
	"github.com/credbroker/credbroker/internal/envconf"
	"github.com/credbroker/credbroker/internal/iamrole"
	"github.com/credbroker/credbroker/internal/jwtauth"
	"github.com/credbroker/credbroker/internal/policy"
	"github.com/credbroker/credbroker/internal/projector"
	"github.com/credbroker/credbroker/internal/replay"
	"github.com/credbroker/credbroker/internal/revoker"
	"github.com/credbroker/credbroker/internal/sqsqueue"
	"github.com/credbroker/credbroker/internal/stsissuer"
)

// Projector builds the stream handler.
func Projector(cfg projector.Config, awsCfg aws.Config, log *slog.Logger, metrics io.Writer) *projector.Handler {
	store := &ddbstore.Store{Client: dynamodb.NewFromConfig(awsCfg), MembershipTable: cfg.MembershipTable, PolicyTable: cfg.PolicyTable}
	p := newProjector(store, auditor(awsCfg, cfg.AuditBusName, log), cfg.Partition, expiryTimer(cfg.Expiry, awsCfg), log)
	p.Concurrency = cfg.Concurrency
	if cfg.FanoutQueueURL != "" {
		p.Pages = &sqsqueue.Queue{Client: sqs.NewFromConfig(awsCfg), URL: cfg.FanoutQueueURL}
	}
	return &projector.Handler{Projector: p, Metrics: &emf.Writer{W: metrics}}
}

// newProjector is the one place a projector is built: the function's,
// the one rebuild and replay recompute with, and the operators' (which
// only computes).
func newProjector(store *ddbstore.Store, auditor broker.Auditor, partition string, expiries broker.ExpiryTimer, log *slog.Logger) *projector.Projector {
	return &projector.Projector{
		Source: store, Store: store, Index: store, Checkpoints: store,
		Auditor:  auditor,
		Compiler: policy.Compiler{Partition: partition},
		Expiries: expiries,
		Logger:   log,
	}
}

// auditor is the audit emitter on the bus named busName.
func auditor(awsCfg aws.Config, busName string, log *slog.Logger) *ebaudit.Emitter {
	return ebaudit.New(ebaudit.Config{Client: eventbridge.NewFromConfig(awsCfg), BusName: busName, Logger: log})
}

// expiryTimer is the EventBridge Scheduler timer of e, or nil when e
// names no schedule group (the local stack arms its own timers).
func expiryTimer(e envconf.Expiry, awsCfg aws.Config) broker.ExpiryTimer {
	if e.Group == "" {
		return nil
	}
	return &ebscheduler.Timer{Client: scheduler.NewFromConfig(awsCfg), Group: e.Group, RoleARN: e.RoleARN,
		TargetARN: e.TargetARN, DeadLetterARN: e.DeadLetterARN}
}

// Endpoint is the credential endpoint's service and the queue of audit
// events that no answer waits for. Whoever runs the service flushes the
// queue: a server with Queue.Run, the Lambda function after each
// invocation (internal/lambdaext).
type Endpoint struct {
	Service *credentials.Service
	Queue   *auditqueue.Queue
}

// Credentials builds the credential endpoint's service.
func Credentials(cfg credentials.Config, awsCfg aws.Config, log *slog.Logger, metrics io.Writer) (Endpoint, error) {
	// Every line logged during a request, the verifier's and the audit
	// emitter's included, carries the request id.
	log = slog.New(credentials.LogHandler(log.Handler()))
	verifier, err := jwtauth.New(jwtauth.Config{Issuer: cfg.Issuer, JWKSURL: cfg.JWKSURL, ClientIDs: cfg.ClientIDs, Logger: log})
	if err != nil {
		return Endpoint{}, err
	}
	issuer, err := stsissuer.New(stsissuer.Config{Client: sts.NewFromConfig(awsCfg), RoleARN: cfg.BaseRoleARN})
	if err != nil {
		return Endpoint{}, err
	}
	audit := auditor(awsCfg, cfg.AuditBusName, log)
	queue := &auditqueue.Queue{Next: audit, Logger: log}
	store := &ddbstore.Store{Client: dynamodb.NewFromConfig(awsCfg), PolicyTable: cfg.PolicyTable}
	svc := &credentials.Service{
		Verifier:        verifier,
		Policies:        store,
		Fallback:        &credentials.Fallback{Read: store.FallbackCutoff, Logger: log},
		Issuer:          issuer,
		Auditor:         audit,
		Background:      queue,
		Compiler:        policy.Compiler{Partition: cfg.Partition},
		Cache:           credentials.NewCache(cfg.CacheSize, nil),
		AuditMode:       cfg.AuditMode,
		SessionDuration: cfg.SessionDuration,
		RequestTimeout:  cfg.RequestTimeout,
		Logger:          log,
		Metrics:         &emf.Writer{W: metrics},
	}
	if err := svc.Validate(); err != nil {
		return Endpoint{}, err
	}
	return Endpoint{Service: svc, Queue: queue}, nil
}

// Rebuild builds the rebuild, verify and replay service on the real
// adapters, with a projector wired like functions/projector's.
func Rebuild(cfg replay.Config, awsCfg aws.Config, log *slog.Logger) *replay.Service {
	ddb := dynamodb.NewFromConfig(awsCfg)
	store := &ddbstore.Store{Client: ddb, MembershipTable: cfg.MembershipTable, PolicyTable: cfg.PolicyTable}
	audit := auditor(awsCfg, cfg.AuditBusName, log)
	proj := newProjector(store, audit, cfg.Partition, expiryTimer(cfg.Expiry, awsCfg), log)
	return &replay.Service{
		Memberships: store, Policies: store, Store: store, Projector: proj,
		Stream:  &ddbstream.Reader{Client: dynamodbstreams.NewFromConfig(awsCfg), StreamARN: cfg.StreamARN, Logger: log},
		Handler: &projector.Handler{Projector: proj},
		Auditor: audit,
		Sizes:   ddbstore.Tables{Client: ddb, MembershipTable: cfg.MembershipTable, PolicyTable: cfg.PolicyTable},
		Logger:  log,
	}
}

// Revoker builds the revoker's handler; its alarming events go to metrics
// as EMF lines (template.yaml's revoker alarms).
func Revoker(cfg revoker.Config, awsCfg aws.Config, log *slog.Logger, metrics io.Writer) (*revoker.Handler, error) {
	if _, err := iamrole.NameFromARN(cfg.BaseRoleARN); err != nil {
		return nil, err
	}
	emfw := &emf.Writer{W: metrics}
	count := func(metric string) {
		if err := emfw.Write(map[string]string{"Function": "revoker"}, nil, emf.Metric{Name: metric, Unit: emf.Count, Value: 1}); err != nil {
			log.Warn("write metric", "metric", metric, "err", err)
		}
	}
	store := &ddbstore.Store{Client: dynamodb.NewFromConfig(awsCfg), PolicyTable: cfg.PolicyTable}
	return &revoker.Handler{Logger: log, Metric: count, Partition: broker.Partition(cfg.BaseRoleARN, ""), Service: &revoker.Service{
		Store: revoker.RecordStore{Records: store}, Cutoffs: store,
		Role:       &iamrole.Role{Client: iam.NewFromConfig(awsCfg), ARN: cfg.BaseRoleARN, Pages: cfg.Pages, Quota: cfg.ManagedPolicyQuota},
		Auditor:    auditor(awsCfg, cfg.AuditBusName, log),
		Logger:     log,
		Metric:     count,
		MaxSession: cfg.MaxSession,
		Lease:      store,
	}}, nil
}

// Replay builds the replay function's handler: the rebuild, verify and
// replay service, its progress logged every 30 s.
func Replay(cfg replay.Config, awsCfg aws.Config, log *slog.Logger) *replay.Function {
	svc := Rebuild(cfg, awsCfg, log)
	svc.Progress, svc.ProgressEvery = replay.LogProgress(log), 30*time.Second
	return &replay.Function{Service: svc, StreamARN: cfg.StreamARN, Logger: log}
}
