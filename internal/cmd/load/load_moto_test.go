//go:build integration

package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/awsconfig"
	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/iamrole"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
)

// The proxy in front of moto, driven by the real SDK: it counts calls per
// operation, spots a second AssumeRole for the same (user, policy) and a
// CredentialsIssued event for keys already audited, and injects faults.
func TestTheProxyCountsAndFaultsCallsToMoto(t *testing.T) {
	ctx := context.Background()
	p, err := newProxy(mototest.Endpoint(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	cfg := awsconfig.Local(mototest.Region, p.URL)

	role, err := iam.NewFromConfig(cfg).CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String(mototest.Name(t, "load-role")),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	pol := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}`
	var keys []string
	assume := func(tag string) {
		out, err := sts.NewFromConfig(cfg).AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: role.Role.Arn, RoleSessionName: aws.String("s"),
			SourceIdentity: aws.String("user-1"), Policy: aws.String(pol),
			Tags: []ststypes.Tag{{Key: aws.String(broker.UserTagKey), Value: aws.String(broker.UserTag("user-1"))}, {Key: aws.String(broker.CutoffTagKey), Value: aws.String(tag)}}})
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, aws.ToString(out.Credentials.AccessKeyId))
	}
	assume("aaaa")
	assume("aaaa") // a duplicate
	// After a revocation the endpoint mints under the new cutoff's tag:
	// the first such mint of the same policy is no duplicate.
	assume("bbbb")
	assume("bbbb") // a duplicate
	if m, ok := p.mintOf(keys[1]); !ok || m != (mint{User: "user-1", Policy: pol, UserTag: broker.UserTag("user-1"), Tag: "aaaa"}) {
		t.Errorf("mintOf(%s) = %+v, %v; want user-1 with the policy and tag aaaa", keys[1], m, ok)
	}
	// The revocation policy spares the new tag only: an answer with the
	// old tag's key is denied on arrival, one with the new tag's is not.
	deny := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*","Condition":` +
		`{"StringEquals":{"aws:PrincipalTag/` + broker.UserTagKey + `":["` + broker.UserTag("user-1") + `"]},` +
		`"StringNotEquals":{"aws:PrincipalTag/` + broker.CutoffTagKey + `":["bbbb"]}}}]}`
	if _, err := iam.NewFromConfig(cfg).PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: role.Role.RoleName,
		PolicyName: aws.String(iamrole.PolicyName), PolicyDocument: aws.String(deny)}); err != nil {
		t.Fatal(err)
	}
	p.arrived(keys[2:3])
	p.arrived(keys[0:1])

	eb := eventbridge.NewFromConfig(cfg)
	bus := mototest.Name(t, "load-bus")
	if _, err := eventbridge.NewFromConfig(mototest.Config(t)).CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(bus)}); err != nil {
		t.Fatal(err)
	}
	issued := func(keys ...string) ebtypes.PutEventsRequestEntry {
		d, _ := json.Marshal(map[string]any{"accessKeyIds": keys})
		return ebtypes.PutEventsRequestEntry{EventBusName: aws.String(bus), Source: aws.String("credbroker.credentials"),
			DetailType: aws.String("CredentialsIssued"), Detail: aws.String(string(d))}
	}
	// The second entry names a new key with an audited one: not a
	// re-audit. The third names an audited key only: a re-audit.
	if _, err := eb.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{issued(keys[0]), issued(keys[0], keys[1])}}); err != nil {
		t.Fatal(err)
	}
	if _, err := eb.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{issued(keys[1])}}); err != nil {
		t.Fatal(err)
	}

	got := p.snapshot()
	want := counts{
		Calls:          map[string]int{"iam.CreateRole": 1, "iam.PutRolePolicy": 1, "sts.AssumeRole": 4, "AWSEvents.PutEvents": 2},
		Events:         map[string]int{"CredentialsIssued": 3},
		Faults:         map[string]int{},
		DuplicateMints: 2, Reaudited: 1, DeniedOnArrival: 1,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}

	// Faults, in a window that is open for the rest of the test.
	ddb := dynamodb.NewFromConfig(cfg)
	list := func() error { _, err := ddb.ListTables(ctx, &dynamodb.ListTablesInput{}); return err }
	for _, tt := range []struct {
		spec    faultSpec
		kind    string
		wantErr bool
	}{
		{faultSpec{Fail: 1, Only: []string{"dynamodb"}}, "fail", true},
		{faultSpec{Reset: 1}, "reset", true},
		{faultSpec{Latency: time.Millisecond}, "delay", false},
		{faultSpec{Fail: 1, Only: []string{"sts"}}, "", false},
	} {
		before := p.snapshot()
		p.setWindow(faultWindow{start: time.Now().Add(-time.Second), end: time.Now().Add(time.Hour), spec: &tt.spec})
		err := list()
		if (err != nil) != tt.wantErr {
			t.Errorf("%+v: ListTables err = %v, want an error: %v", tt.spec, err, tt.wantErr)
		}
		d := p.snapshot().minus(before)
		// The SDK retries what failed; each attempt meets the fault.
		wantFaults := map[string]int{}
		if tt.kind != "" {
			wantFaults[tt.kind] = awsconfig.MaxAttempts
			if !tt.wantErr {
				wantFaults[tt.kind] = 1
			}
		}
		if diff := cmp.Diff(wantFaults, d.Faults); diff != "" {
			t.Errorf("%+v: faults (-want +got):\n%s", tt.spec, diff)
		}
		if reached := d.Calls["DynamoDB.ListTables"]; reached != map[bool]int{true: 0, false: 1}[tt.wantErr] {
			t.Errorf("%+v: %d ListTables reached moto", tt.spec, reached)
		}
	}
}

// A short run against a stack started in process: the whole generator,
// with every check on. It asserts what the run found, never how fast.
func TestAShortRunBreaksNoInvariant(t *testing.T) {
	o := options{Moto: mototest.Endpoint(t), Clients: 3, Users: 3, Duration: 3 * time.Second, ChangeEvery: 200 * time.Millisecond,
		Places: 4, Check: 1, RequestTimeout: 10 * time.Second, ConvergeTimeout: 30 * time.Second, Verify: true, Seed: 7}
	var progress strings.Builder
	res, err := run(context.Background(), o, &progress)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, progress.String())
	}
	if b := res.broken(); len(b) > 0 {
		t.Fatalf("broken invariants %v: %v", b, res.Examples)
	}
	if res.Answers == 0 || res.Changes == 0 || res.Checked == 0 {
		t.Errorf("answers %d, changes %d, checked %d: want some of each", res.Answers, res.Changes, res.Checked)
	}
	if res.Convergence == nil || !res.Convergence.Converged || res.Verify == nil || !res.Verify.Clean {
		t.Errorf("convergence %+v, verify %+v: want converged and clean", res.Convergence, res.Verify)
	}
	// Every answer reads the user's policy item: the stack's calls went
	// through the proxy.
	if res.Calls == nil || res.Calls.PerOperation["DynamoDB.GetItem"] == 0 {
		t.Errorf("calls %+v: want the stack's GetItems counted", res.Calls)
	}
	var text strings.Builder
	res.writeText(&text)
	for _, want := range []string{"answers", "stack -> moto", "targets"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, text.String())
		}
	}
}
