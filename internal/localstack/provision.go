package localstack

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	ciptypes "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/credbroker/credbroker/internal/samtemplate"
)

// auditPattern matches every event of the broker's sources.
const auditPattern = `{"source":[{"prefix":"credbroker."}]}`

// names are the local resources' names, all derived from one prefix. One
// local stack runs per moto, so fixed names are fine and make the AWS CLI
// examples copyable; tests pick their own prefix.
type names struct{ prefix string }

func (n names) membership() string { return n.prefix + "-membership" }
func (n names) policy() string     { return n.prefix + "-policy" }
func (n names) bus() string        { return n.prefix + "-audit" }
func (n names) archive() string    { return n.prefix + "-audit-archive" }
func (n names) tail() string       { return n.prefix + "-audit-tail" }
func (n names) role() string       { return n.prefix + "-base-role" }
func (n names) pool() string       { return n.prefix + "-users" }
func (n names) client() string     { return n.prefix + "-web" }

// provisionOptions are the local stack's departures from template.yaml.
type provisionOptions struct {
	tail    bool // a queue with a copy of every audit event
	archive bool // the audit bus's archive
}

// provision creates the resources of template.yaml in moto, from the
// template's own definitions where moto needs them (table schemas, the base
// role's ceiling and boundary, the app client's auth flows).
func provision(ctx context.Context, n names, tpl *samtemplate.Template, cfg aws.Config, o provisionOptions, info *Info, streamARN *string) error {
	ddb := dynamodb.NewFromConfig(cfg)
	for _, t := range []struct{ logical, name string }{{"MembershipTable", n.membership()}, {"PolicyTable", n.policy()}} {
		def, err := tpl.Table(t.logical)
		if err != nil {
			return err
		}
		desc, err := def.Create(ctx, ddb, t.name)
		if err != nil {
			return fmt.Errorf("create %s: %w", t.logical, err)
		}
		if t.logical == "MembershipTable" {
			*streamARN = aws.ToString(desc.LatestStreamArn)
		}
	}
	info.MembershipTable, info.PolicyTable = n.membership(), n.policy()

	eb := eventbridge.NewFromConfig(cfg)
	bus, err := eb.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(n.bus())})
	if err != nil {
		return fmt.Errorf("create audit bus: %w", err)
	}
	info.EventBusName = n.bus()
	// moto stores an archive as a rule whose target re-renders every
	// event through an input template, building eight JSONPath parsers
	// each time: about 140 ms of its single Python process per PutEvents,
	// which then serves nothing else. The local stack has no use for a
	// replayable trail, so the archive is opt-in here; the template keeps
	// it.
	if o.archive {
		if _, err := eb.CreateArchive(ctx, &eventbridge.CreateArchiveInput{
			ArchiveName: aws.String(n.archive()), EventSourceArn: bus.EventBusArn,
			EventPattern: aws.String(auditPattern), RetentionDays: aws.Int32(7),
		}); err != nil {
			return fmt.Errorf("create audit archive: %w", err)
		}
	}
	if o.tail {
		url, err := auditTail(ctx, n, cfg)
		if err != nil {
			return err
		}
		info.AuditQueueURL = url
	}

	role, err := tpl.CreateBaseRole(ctx, iam.NewFromConfig(cfg), n.role())
	if err != nil {
		return fmt.Errorf("create base role: %w", err)
	}
	info.BaseRoleARN = role.ARN

	flows, err := tpl.UserPoolClientAuthFlows()
	if err != nil {
		return err
	}
	idp := cip.NewFromConfig(cfg)
	pool, err := idp.CreateUserPool(ctx, &cip.CreateUserPoolInput{PoolName: aws.String(n.pool())})
	if err != nil {
		return fmt.Errorf("create user pool: %w", err)
	}
	var explicit []ciptypes.ExplicitAuthFlowsType
	for _, f := range flows {
		explicit = append(explicit, ciptypes.ExplicitAuthFlowsType(f))
	}
	client, err := idp.CreateUserPoolClient(ctx, &cip.CreateUserPoolClientInput{
		UserPoolId: pool.UserPool.Id, ClientName: aws.String(n.client()), ExplicitAuthFlows: explicit,
	})
	if err != nil {
		return fmt.Errorf("create user pool client: %w", err)
	}
	info.UserPoolID = aws.ToString(pool.UserPool.Id)
	info.UserPoolClientID = aws.ToString(client.UserPoolClient.ClientId)
	return nil
}

// auditTail adds a queue that receives every audit event, so that a tester
// can read the trail with `aws sqs receive-message`. It is opt-in for the
// archive's reason: moto renders every event for every rule target, about
// 140 ms of its CPU per PutEvents.
func auditTail(ctx context.Context, n names, cfg aws.Config) (string, error) {
	eb := eventbridge.NewFromConfig(cfg)
	q := sqs.NewFromConfig(cfg)
	queue, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(n.tail())})
	if err != nil {
		return "", fmt.Errorf("create audit queue: %w", err)
	}
	attrs, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: queue.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		return "", fmt.Errorf("read audit queue: %w", err)
	}
	if _, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String(n.tail()), EventBusName: aws.String(n.bus()), EventPattern: aws.String(auditPattern)}); err != nil {
		return "", fmt.Errorf("create audit rule: %w", err)
	}
	if _, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String(n.tail()), EventBusName: aws.String(n.bus()),
		Targets: []ebtypes.Target{{Id: aws.String("tail"), Arn: aws.String(attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)])}}}); err != nil {
		return "", fmt.Errorf("target audit queue: %w", err)
	}
	return aws.ToString(queue.QueueUrl), nil
}
