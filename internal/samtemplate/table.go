package samtemplate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/credbroker/credbroker/internal/broker"
)

// TableDef is the schema of an AWS::DynamoDB::Table of the template: what a
// table created elsewhere (moto, tests) must share with the deployed one.
// PITR, SSE and deletion protection are left out: moto need not enforce them.
type TableDef struct {
	LogicalID            string
	KeySchema            []types.KeySchemaElement
	AttributeDefinitions []types.AttributeDefinition
	BillingMode          types.BillingMode
	// StreamViewType is "" when the table has no stream.
	StreamViewType types.StreamViewType
	// TTLAttribute is "" when time to live is off.
	TTLAttribute string
}

// Table returns the schema of the AWS::DynamoDB::Table with the given
// logical id.
func (t *Template) Table(logicalID string) (TableDef, error) {
	const op = "samtemplate.Table"
	r, err := t.Resource(logicalID)
	if err != nil {
		return TableDef{}, err
	}
	if r.Type != "AWS::DynamoDB::Table" {
		return TableDef{}, broker.Errorf(broker.Invalid, op, "%s is a %s, not an AWS::DynamoDB::Table", logicalID, r.Type)
	}
	p := r.Properties
	// Indexes change the schema; translating them silently wrong would be
	// worse than refusing.
	for _, unsupported := range []string{"GlobalSecondaryIndexes", "LocalSecondaryIndexes"} {
		if _, ok := p[unsupported]; ok {
			return TableDef{}, broker.Errorf(broker.Internal, op, "%s has %s, which samtemplate does not translate yet", logicalID, unsupported)
		}
	}
	def := TableDef{LogicalID: logicalID, BillingMode: types.BillingModeProvisioned}
	if s, ok := p["BillingMode"].(string); ok {
		def.BillingMode = types.BillingMode(s)
	}
	keys, _ := p["KeySchema"].([]any)
	for i, k := range keys {
		name, typ, err := pair(k, "AttributeName", "KeyType")
		if err != nil {
			return TableDef{}, broker.Wrap(broker.Internal, op, fmt.Errorf("%s.KeySchema[%d]: %w", logicalID, i, err))
		}
		def.KeySchema = append(def.KeySchema, types.KeySchemaElement{AttributeName: aws.String(name), KeyType: types.KeyType(typ)})
	}
	attrs, _ := p["AttributeDefinitions"].([]any)
	for i, a := range attrs {
		name, typ, err := pair(a, "AttributeName", "AttributeType")
		if err != nil {
			return TableDef{}, broker.Wrap(broker.Internal, op, fmt.Errorf("%s.AttributeDefinitions[%d]: %w", logicalID, i, err))
		}
		def.AttributeDefinitions = append(def.AttributeDefinitions, types.AttributeDefinition{AttributeName: aws.String(name), AttributeType: types.ScalarAttributeType(typ)})
	}
	if len(def.KeySchema) == 0 || len(def.AttributeDefinitions) == 0 {
		return TableDef{}, broker.Errorf(broker.Internal, op, "%s has no KeySchema or AttributeDefinitions", logicalID)
	}
	if s, ok := p["StreamSpecification"].(map[string]any); ok {
		v, _ := s["StreamViewType"].(string)
		if v == "" {
			return TableDef{}, broker.Errorf(broker.Internal, op, "%s.StreamSpecification has no literal StreamViewType", logicalID)
		}
		def.StreamViewType = types.StreamViewType(v)
	}
	if ttl, ok := p["TimeToLiveSpecification"].(map[string]any); ok && ttl["Enabled"] == true {
		def.TTLAttribute, _ = ttl["AttributeName"].(string)
		if def.TTLAttribute == "" {
			return TableDef{}, broker.Errorf(broker.Internal, op, "%s.TimeToLiveSpecification has no literal AttributeName", logicalID)
		}
	}
	return def, nil
}

func pair(v any, k1, k2 string) (string, string, error) {
	m, _ := v.(map[string]any)
	a, ok1 := m[k1].(string)
	b, ok2 := m[k2].(string)
	if !ok1 || !ok2 {
		return "", "", fmt.Errorf("want literal %s and %s, got %v", k1, k2, v)
	}
	return a, b, nil
}

// CreateTableInput returns the request that creates a table of this schema
// under the given name.
func (d TableDef) CreateTableInput(name string) *dynamodb.CreateTableInput {
	in := &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		KeySchema:            d.KeySchema,
		AttributeDefinitions: d.AttributeDefinitions,
		BillingMode:          d.BillingMode,
	}
	if d.BillingMode == types.BillingModeProvisioned {
		// The template only uses on-demand tables; this keeps the request
		// valid should that change.
		in.ProvisionedThroughput = &types.ProvisionedThroughput{ReadCapacityUnits: aws.Int64(5), WriteCapacityUnits: aws.Int64(5)}
	}
	if d.StreamViewType != "" {
		in.StreamSpecification = &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: d.StreamViewType}
	}
	return in
}

// CreateTableAPI is the part of the DynamoDB client that Create uses.
type CreateTableAPI interface {
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	UpdateTimeToLive(ctx context.Context, in *dynamodb.UpdateTimeToLiveInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error)
}

// Create creates the table under name, waits until it is active and enables
// time to live when the template defines it. It returns the table as
// DynamoDB describes it (with the stream ARN when there is a stream). A table
// that already exists is a broker.Conflict.
func (d TableDef) Create(ctx context.Context, api CreateTableAPI, name string) (*types.TableDescription, error) {
	const op = "samtemplate.Create"
	out, err := api.CreateTable(ctx, d.CreateTableInput(name))
	if err != nil {
		if _, ok := errors.AsType[*types.ResourceInUseException](err); ok {
			return nil, broker.Wrap(broker.Conflict, op, err)
		}
		return nil, broker.Wrap(broker.Transient, op, err)
	}
	desc := out.TableDescription
	if desc == nil || desc.TableStatus != types.TableStatusActive {
		waiter := dynamodb.NewTableExistsWaiter(api, func(o *dynamodb.TableExistsWaiterOptions) {
			o.MinDelay, o.MaxDelay = time.Second, 10*time.Second
		})
		got, err := waiter.WaitForOutput(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, 5*time.Minute)
		if err != nil {
			return nil, broker.Wrap(broker.Transient, op, err)
		}
		desc = got.Table
	}
	if d.TTLAttribute != "" {
		_, err := api.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
			TableName:               aws.String(name),
			TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String(d.TTLAttribute), Enabled: aws.Bool(true)},
		})
		if err != nil {
			return nil, broker.Wrap(broker.Transient, op, err)
		}
	}
	return desc, nil
}

func marshalJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", broker.Wrap(broker.Internal, "samtemplate", err)
	}
	return string(b), nil
}
