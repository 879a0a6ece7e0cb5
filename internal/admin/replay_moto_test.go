//go:build integration

package admin

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/credbroker/credbroker/internal/exitcode"
	"github.com/credbroker/credbroker/internal/replay"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
)

// verify, rebuild and replay against a stack.json naming tables in moto,
// as `make verify` runs them against the local stack: the report on
// stdout, progress on stderr, exit status 1 on drift.
func TestVerifyRebuildAndReplayAgainstAStackFile(t *testing.T) {
	tables := mototest.NewTables(t)
	bus := mototest.NewAuditBus(t)
	stack, err := json.Marshal(map[string]string{
		"region": mototest.Region, "awsEndpoint": mototest.Endpoint(t), "apiUrl": "http://127.0.0.1:8080",
		"membershipTable": tables.Membership, "policyTable": tables.Policy, "eventBusName": bus.Name,
		"userPoolId": "us-east-1_Unused", "userPoolClientId": "unused", "baseRoleArn": "arn:aws:iam::123456789012:role/unused",
	})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "stack.json")
	if err := os.WriteFile(path, stack, 0o600); err != nil {
		t.Fatal(err)
	}
	put := func(pk, sk string, extra map[string]types.AttributeValue, table string) {
		item := map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: pk}, "sk": &types.AttributeValueMemberS{Value: sk}}
		for k, v := range extra {
			item[k] = v
		}
		if _, err := tables.DDB.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
			t.Fatal(err)
		}
	}
	put("USER#alice", "PROJECT#p1", map[string]types.AttributeValue{"role": &types.AttributeValueMemberS{Value: "write"}}, tables.Membership)
	put("PROJECT#p1", "BUCKET#lake-raw", nil, tables.Membership)

	run := func(args ...string) (int, replay.Report, string) {
		code, stdout, stderr := runCLI(t, nil, append([]string{"admin"}, args...)...)
		var rep replay.Report
		if stdout != "" {
			if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
				t.Fatalf("stdout is not a report: %v\n%s", err, stdout)
			}
		}
		return code, rep, stderr
	}

	steps := []struct {
		name     string
		before   func()
		args     []string
		wantCode int
		check    func(replay.Report, string) bool
	}{
		{"verify of a table the projector never wrote finds alice missing and exits 1",
			nil,
			[]string{"verify", "--stack", path}, exitcode.Found,
			func(r replay.Report, _ string) bool { return r.Missing == 1 && r.MissingIndex == 1 }},
		{"rebuild repairs it and exits 0",
			nil,
			[]string{"rebuild", "--stack", path, "--segments", "2"}, exitcode.OK,
			func(r replay.Report, stderr string) bool {
				return r.Users == 1 && r.Changed == 1 && strings.Contains(stderr, "rebuild memberships:")
			}},
		{"verify then exits 0",
			nil,
			[]string{"verify", "--stack", path}, exitcode.OK,
			func(r replay.Report, _ string) bool { return r.Users == 1 && r.Drift() == 0 }},
		{"replay finds the stream from the table and exits 0",
			nil,
			[]string{"replay", "--stack", path, "--since", "2000-01-01T00:00:00Z"}, exitcode.OK,
			func(r replay.Report, _ string) bool { return r.Records == 2 && r.Delivered == 2 }},
		{"verify reports a record that breaks the rules, points at the tool that lists them, and exits 0 (it is not drift)",
			func() {
				put("USER#bob", "PROJECT#p1", map[string]types.AttributeValue{"role": &types.AttributeValueMemberS{Value: "admin"}}, tables.Membership)
			},
			[]string{"verify", "--stack", path}, exitcode.OK,
			func(r replay.Report, stderr string) bool {
				return r.Rejected == 1 && r.Drift() == 0 && strings.Contains(stderr, "`credbroker admin rejected --stack "+path+"`")
			}},
		{"a missing stack file exits 2 and says how to start the stack",
			nil,
			[]string{"verify", "--stack", filepath.Join(t.TempDir(), "none.json")}, exitcode.Usage,
			func(_ replay.Report, stderr string) bool { return strings.Contains(stderr, "make run") }},
	}
	for _, st := range steps {
		if st.before != nil {
			st.before()
		}
		code, rep, stderr := run(st.args...)
		if code != st.wantCode || !st.check(rep, stderr) {
			t.Fatalf("%s: exit code %d (want %d), report %+v\nstderr:\n%s", st.name, code, st.wantCode, rep, stderr)
		}
	}
}
