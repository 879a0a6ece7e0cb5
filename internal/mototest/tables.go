package mototest

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/credbroker/credbroker/internal/stackdef"
)

// Tables are a membership table and a policy table created in moto from
// template.yaml's own definitions.
type Tables struct {
	DDB        *dynamodb.Client
	Membership string
	Policy     string
	StreamARN  string
}

// NewTables creates both tables with unique names; they are deleted when
// the test ends.
func NewTables(tb testing.TB) Tables {
	tb.Helper()
	ctx := context.Background()
	tpl, err := stackdef.LoadDefault()
	if err != nil {
		tb.Fatalf("load template: %v", err)
	}
	ddb := dynamodb.NewFromConfig(Config(tb))
	t := Tables{DDB: ddb, Membership: Name(tb, "membership"), Policy: Name(tb, "policy")}
	for _, spec := range []struct{ logical, name string }{{"MembershipTable", t.Membership}, {"PolicyTable", t.Policy}} {
		def, err := tpl.Table(spec.logical)
		if err != nil {
			tb.Fatalf("table %s: %v", spec.logical, err)
		}
		desc, err := def.Create(ctx, ddb, spec.name)
		if err != nil {
			tb.Fatalf("create %s: %v", spec.logical, err)
		}
		if spec.logical == "MembershipTable" {
			t.StreamARN = aws.ToString(desc.LatestStreamArn)
		}
		name := spec.name
		tb.Cleanup(func() {
			_, _ = ddb.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
		})
	}
	if t.StreamARN == "" {
		tb.Fatal("membership table has no stream: template.yaml must enable it")
	}
	return t
}
