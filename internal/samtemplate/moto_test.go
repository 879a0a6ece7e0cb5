//go:build integration

package samtemplate_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/iamrole"
	"github.com/credbroker/credbroker/internal/samtemplate"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
)

func ExampleTableDef_Create() {
	ctx := context.Background()
	tpl, err := samtemplate.LoadDefault()
	if err != nil {
		fmt.Println(err)
		return
	}
	def, err := tpl.Table("MembershipTable")
	if err != nil {
		fmt.Println(err)
		return
	}
	client := dynamodb.NewFromConfig(mototest.ConfigFor("http://127.0.0.1:4566"))
	table, err := def.Create(ctx, client, "credbroker-membership")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("projector reads", aws.ToString(table.LatestStreamArn))
}

func TestTablesCreatedFromTheTemplateMatchItInMoto(t *testing.T) {
	tpl := mustLoad(t)
	client := dynamodb.NewFromConfig(mototest.Config(t))
	for _, id := range []string{"MembershipTable", "PolicyTable"} {
		t.Run(id, func(t *testing.T) {
			ctx := t.Context()
			def, err := tpl.Table(id)
			if err != nil {
				t.Fatal(err)
			}
			name := mototest.Name(t, strings.ToLower(id))
			created, err := def.Create(ctx, client, name)
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			t.Cleanup(func() {
				_, _ = client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
			})

			out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
			if err != nil {
				t.Fatal(err)
			}
			got := describe(out.Table)
			want := tableShape{Keys: keys(def.KeySchema), Attrs: attrs(def.AttributeDefinitions), Billing: string(def.BillingMode), Stream: string(def.StreamViewType)}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("moto's table differs from the template (-template +moto):\n%s", diff)
			}
			if (def.StreamViewType != "") != (aws.ToString(created.LatestStreamArn) != "") {
				t.Errorf("Create returned stream ARN %q for stream view type %q", aws.ToString(created.LatestStreamArn), def.StreamViewType)
			}

			ttl, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(name)})
			if err != nil {
				t.Fatal(err)
			}
			gotTTL := ""
			if d := ttl.TimeToLiveDescription; d != nil && (d.TimeToLiveStatus == types.TimeToLiveStatusEnabled || d.TimeToLiveStatus == types.TimeToLiveStatusEnabling) {
				gotTTL = aws.ToString(d.AttributeName)
			}
			if gotTTL != def.TTLAttribute {
				t.Errorf("TTL attribute in moto = %q, template = %q", gotTTL, def.TTLAttribute)
			}
		})
	}
}

func TestCreatingAnExistingTableIsAConflict(t *testing.T) {
	ctx := t.Context()
	def, err := mustLoad(t).Table("PolicyTable")
	if err != nil {
		t.Fatal(err)
	}
	client := dynamodb.NewFromConfig(mototest.Config(t))
	name := mototest.Name(t, "policy")
	if _, err := def.Create(ctx, client, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
	})
	_, err = def.Create(ctx, client, name)
	if k := broker.KindOf(err); k != broker.Conflict {
		t.Errorf("second Create error = %v (kind %v), want conflict", err, k)
	}
}

// The base role as the local stack creates it: the template's ceiling
// stored unchanged as a managed policy that is the role's one policy and
// its boundary, and no inline policy.
func TestTheBaseRoleIsCreatedWithItsCeilingAsPolicyAndBoundary(t *testing.T) {
	ctx := t.Context()
	tpl := mustLoad(t)
	doc, err := tpl.BaseRolePolicy()
	if err != nil {
		t.Fatal(err)
	}
	client := iam.NewFromConfig(mototest.Config(t))
	role, err := tpl.CreateBaseRole(ctx, client, mototest.Name(t, "base"))
	if err != nil {
		t.Fatal(err)
	}
	got := mototest.Role(t, role.Name)
	if got.BoundaryARN != role.CeilingARN {
		t.Errorf("boundary %q, want the ceiling %q", got.BoundaryARN, role.CeilingARN)
	}
	if len(got.Managed) != 1 || got.Managed[role.CeilingARN] == "" || len(got.Inline) != 0 {
		t.Errorf("attached %v and inline %v, want only the ceiling attached", slices.Collect(maps.Keys(got.Managed)), slices.Collect(maps.Keys(got.Inline)))
	}
	var want, have any
	if err := errors.Join(json.Unmarshal([]byte(doc), &want), json.Unmarshal([]byte(got.Boundary), &have)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, have); diff != "" {
		t.Errorf("IAM stored a different ceiling (-sent +stored):\n%s", diff)
	}
	// As when the SDK retries a create that landed.
	if again, err := tpl.CreateBaseRole(ctx, client, role.Name); err != nil || again != role {
		t.Errorf("creating the same role again: %+v, %v; want %+v", again, err, role)
	}
}

// A role of that name that is not the base role as the template defines it
// is never taken for it.
func TestCreatingTheBaseRoleOverAnotherRoleIsAConflict(t *testing.T) {
	ctx := t.Context()
	client := iam.NewFromConfig(mototest.Config(t))
	name := mototest.Name(t, "base")
	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}`
	var exists *iamtypes.EntityAlreadyExistsException // a retried create that landed
	if _, err := client.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String(name), AssumeRolePolicyDocument: aws.String(trust)}); err != nil && !errors.As(err, &exists) {
		t.Fatal(err)
	}
	_, err := mustLoad(t).CreateBaseRole(ctx, client, name)
	if k := broker.KindOf(err); k != broker.Conflict {
		t.Errorf("creating the base role over a role without boundary: %v (kind %v), want conflict", err, k)
	}
}

// What the revoker's IAM permissions allow it to write, IAM holds next to
// the ceiling; the boundary keeps it from reaching anything more.
func TestAnAllowWrittenOnTheBaseRoleInMotoReachesNothingBeyondTheCeiling(t *testing.T) {
	ctx := t.Context()
	client := iam.NewFromConfig(mototest.Config(t))
	role, err := mustLoad(t).CreateBaseRole(ctx, client, mototest.Name(t, "base"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(role.Name), PolicyName: aws.String(iamrole.PolicyName), PolicyDocument: aws.String(allowAll)}); err != nil {
		t.Fatal(err)
	}
	checkBounded(t, mototest.Role(t, role.Name).Eval(t), beyondCeiling("any-bucket"), withinCeiling("any-bucket"))
}

type tableShape struct {
	Keys, Attrs     []string
	Billing, Stream string
}

func describe(d *types.TableDescription) tableShape {
	s := tableShape{Keys: keys(d.KeySchema), Attrs: attrs(d.AttributeDefinitions)}
	if d.BillingModeSummary != nil {
		s.Billing = string(d.BillingModeSummary.BillingMode)
	}
	if d.StreamSpecification != nil && aws.ToBool(d.StreamSpecification.StreamEnabled) {
		s.Stream = string(d.StreamSpecification.StreamViewType)
	}
	return s
}

func keys(ks []types.KeySchemaElement) []string {
	var out []string
	for _, k := range ks {
		out = append(out, aws.ToString(k.AttributeName)+" "+string(k.KeyType))
	}
	return out
}

func attrs(as []types.AttributeDefinition) []string {
	var out []string
	for _, a := range as {
		out = append(out, aws.ToString(a.AttributeName)+" "+string(a.AttributeType))
	}
	slices.Sort(out)
	return out
}

// The audit copy as the template defines it (pattern, target ARN, log
// group name) delivers the broker's events, and only those, in moto.
func TestAuditLogRuleCopiesAuditEventsInMoto(t *testing.T) {
	ctx := t.Context()
	cfg := mototest.Config(t)
	tpl := mustLoad(t)
	stackName := mototest.Name(t, "stack")
	bus := stackName + "-audit"
	pseudo := map[string]string{"AWS::StackName": stackName, "AWS::Region": cfg.Region}
	s, err := tpl.Stack(samtemplate.Env{Pseudo: pseudo})
	if err != nil {
		t.Fatal(err)
	}
	lg, _, err := s.Resource("AuditLogGroup")
	if err != nil {
		t.Fatal(err)
	}
	group, _ := lg.Properties["LogGroupName"].(string)
	if s, err = tpl.Stack(samtemplate.Env{Pseudo: pseudo, Refs: map[string]string{"AuditLogGroup": group, "AuditBus": bus}}); err != nil {
		t.Fatal(err)
	}
	rule, _, err := s.Resource("AuditLogRule")
	if err != nil {
		t.Fatal(err)
	}
	pattern, err := json.Marshal(rule.Properties["EventPattern"])
	if err != nil {
		t.Fatal(err)
	}
	targets, _ := rule.Properties["Targets"].([]any)
	if len(targets) != 1 {
		t.Fatalf("AuditLogRule targets = %v, want one", targets)
	}
	target, _ := targets[0].(map[string]any)
	arn, _ := target["Arn"].(string)

	logs := cloudwatchlogs.NewFromConfig(cfg)
	if _, err := logs.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(group)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = logs.DeleteLogGroup(context.Background(), &cloudwatchlogs.DeleteLogGroupInput{LogGroupName: aws.String(group)})
	})
	eb := eventbridge.NewFromConfig(cfg)
	if _, err := eb.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(bus)}); err != nil {
		t.Fatal(err)
	}
	ruleName := "audit-log"
	t.Cleanup(func() {
		ctx := context.Background()
		_, _ = eb.RemoveTargets(ctx, &eventbridge.RemoveTargetsInput{Rule: aws.String(ruleName), EventBusName: aws.String(bus), Ids: []string{"audit-log"}})
		_, _ = eb.DeleteRule(ctx, &eventbridge.DeleteRuleInput{Name: aws.String(ruleName), EventBusName: aws.String(bus)})
		_, _ = eb.DeleteEventBus(ctx, &eventbridge.DeleteEventBusInput{Name: aws.String(bus)})
	})
	if _, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String(ruleName), EventBusName: aws.String(bus), EventPattern: aws.String(string(pattern))}); err != nil {
		t.Fatalf("PutRule with the template's pattern %s: %v", pattern, err)
	}
	if _, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String(ruleName), EventBusName: aws.String(bus),
		Targets: []ebtypes.Target{{Id: aws.String("audit-log"), Arn: aws.String(arn)}}}); err != nil {
		t.Fatalf("PutTargets %s: %v", arn, err)
	}
	out, err := eb.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{
		{EventBusName: aws.String(bus), Source: aws.String("credbroker.credentials"), DetailType: aws.String("CredentialsIssued"),
			Detail: aws.String(`{"userId":"u-audited","accessKeyIds":["ASIAEXAMPLE"]}`)},
		{EventBusName: aws.String(bus), Source: aws.String("other.app"), DetailType: aws.String("Noise"), Detail: aws.String(`{"userId":"u-noise"}`)},
	}})
	if err != nil || out.FailedEntryCount != 0 {
		t.Fatalf("PutEvents: %v (%d failed)", err, aws.ToInt32(&out.FailedEntryCount))
	}

	// moto delivers to targets within PutEvents.
	var copied []string
	for _, msg := range logMessages(t, cfg, group) {
		var ev struct {
			Source     string `json:"source"`
			DetailType string `json:"detail-type"`
			Detail     struct {
				UserID string `json:"userId"`
			} `json:"detail"`
		}
		if err := json.Unmarshal([]byte(msg), &ev); err != nil {
			t.Fatalf("log event is not an EventBridge event: %v: %s", err, msg)
		}
		copied = append(copied, ev.Source+" "+ev.DetailType+" "+ev.Detail.UserID)
	}
	if diff := cmp.Diff([]string{"credbroker.credentials CredentialsIssued u-audited"}, copied); diff != "" {
		t.Errorf("events in the audit log group (-want +got):\n%s", diff)
	}
}

// logMessages returns the messages of a log group. moto stamps the events
// an EventBridge rule delivers with a fractional timestamp, which the SDK's
// FilterLogEvents refuses to decode, so this is the same call, signed by the
// SDK's signer and decoded leniently.
func logMessages(t *testing.T, cfg aws.Config, group string) []string {
	t.Helper()
	ctx := t.Context()
	body, _ := json.Marshal(map[string]string{"logGroupName": group})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, aws.ToString(cfg.BaseEndpoint), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "Logs_20140328.FilterLogEvents")
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "logs", cfg.Region, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Events []struct {
			Message   string  `json:"message"`
			Timestamp float64 `json:"timestamp"`
		} `json:"events"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("FilterLogEvents %s: status %d, %v", group, resp.StatusCode, err)
	}
	var msgs []string
	for _, e := range out.Events {
		msgs = append(msgs, e.Message)
	}
	return msgs
}

// The revoker's rule, as the template writes its pattern, matches exactly
// the PolicyChanged events that take something away (they carry
// revokeBefore), judged by a rule in moto: only those reach its queue.
func TestRevokerRuleMatchesNarrowingChangesOnly(t *testing.T) {
	tpl := mustLoad(t)
	rule, err := tpl.Resource("RevokerRule")
	if err != nil {
		t.Fatal(err)
	}
	pattern, err := json.Marshal(rule.Properties["EventPattern"])
	if err != nil {
		t.Fatal(err)
	}
	bus := mototest.NewBusWithRule(t, string(pattern))
	eb := eventbridge.NewFromConfig(mototest.Config(t))
	cases := []struct {
		name, source, detailType, detail string
		match                            bool
	}{
		{"narrowing", "credbroker.projector", "PolicyChanged", `{"userId":"narrowing","removedCount":1,"revokeBefore":"2026-11-30T12:00:05Z"}`, true},
		// A rebuild's recomputes send their PolicyChanged as the projector;
		// no other source's narrowing revokes.
		{"narrowing-from-replay", "credbroker.replay", "PolicyChanged", `{"userId":"narrowing-from-replay","revokeBefore":"2026-11-30T12:00:05Z"}`, false},
		{"addition", "credbroker.projector", "PolicyChanged", `{"userId":"addition","addedCount":1,"removedCount":0}`, false},
		{"issuance", "credbroker.credentials", "CredentialsIssued", `{"userId":"issuance"}`, false},
		{"elsewhere", "someone.else", "PolicyChanged", `{"userId":"elsewhere","revokeBefore":"2026-11-30T12:00:05Z"}`, false},
	}
	var want []string
	for _, c := range cases {
		_, err := eb.PutEvents(t.Context(), &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{{
			EventBusName: aws.String(bus.Name), Source: aws.String(c.source), DetailType: aws.String(c.detailType), Detail: aws.String(c.detail),
		}}})
		if err != nil {
			t.Fatal(err)
		}
		if c.match {
			want = append(want, c.name)
		}
	}
	var got []string
	for _, ev := range bus.Receive(t, len(want)) {
		var d struct{ UserID string }
		_ = json.Unmarshal(ev.Detail, &d)
		got = append(got, d.UserID)
	}
	got = append(got, func() []string {
		var rest []string
		for _, ev := range bus.ReceiveAll(t) {
			rest = append(rest, string(ev.Detail))
		}
		return rest
	}()...)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("the rule delivered %v, want %v", got, want)
	}
}
