//go:build integration

package admin

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	ciptypes "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/cli"
	"github.com/credbroker/credbroker/internal/exitcode"
	"github.com/credbroker/credbroker/internal/localstack"
	"github.com/credbroker/credbroker/internal/stackfile"
	"github.com/credbroker/credbroker/internal/testkit/mototest"
	"github.com/credbroker/credbroker/internal/testkit/stacktest"
)

// adminStack is a whole local stack in this process, on the tests' moto:
// the projector on the real stream and the credential endpoint, with the
// CLI pointed at it through its stack file as an operator would.
type adminStack struct {
	st  *localstack.Stack
	cfg aws.Config
	ddb *dynamodb.Client
}

func newAdminStack(t *testing.T, o localstack.Options) *adminStack {
	t.Helper()
	o.Name = "cli"
	st := stacktest.Start(t, o)
	cfg := mototest.Config(t)
	return &adminStack{st: st, cfg: cfg, ddb: dynamodb.NewFromConfig(cfg)}
}

// cli runs credbroker with --stack pointing at the stack.
func (s *adminStack) cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return runCLI(t, nil, append(slices.Clone(args), "--stack", s.st.InfoPath())...)
}

// items returns the membership table's items as "pk / sk" -> item.
func (s *adminStack) items(t *testing.T) map[string]broker.SourceItem {
	t.Helper()
	out, err := s.ddb.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(s.st.Info.MembershipTable), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]broker.SourceItem{}
	for _, raw := range out.Items {
		it := sourceItemOf(raw)
		m[it.PK+" / "+it.SK] = it
	}
	return m
}

func sourceItemOf(raw map[string]types.AttributeValue) broker.SourceItem {
	attr := func(name string) broker.Attr {
		switch v := raw[name].(type) {
		case nil:
			return broker.Attr{}
		case *types.AttributeValueMemberS:
			return broker.StringAttr(v.Value)
		default:
			return broker.Attr{Present: true, Type: fmt.Sprintf("%T", v)}
		}
	}
	return broker.SourceItem{PK: attr("pk").S, SK: attr("sk").S, Role: attr("role"), Prefix: attr("prefix"), ExpiresAt: attr("expiresAt")}
}

// putRaw writes an item as another admin tool might, unvalidated.
func (s *adminStack) putRaw(t *testing.T, pk, sk string, attrs map[string]types.AttributeValue) {
	t.Helper()
	item := map[string]types.AttributeValue{"pk": mototest.S(pk), "sk": mototest.S(sk)}
	for k, v := range attrs {
		item[k] = v
	}
	if _, err := s.ddb.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(s.st.Info.MembershipTable), Item: item}); err != nil {
		t.Fatal(err)
	}
}

func TestAdminWritesRefuseEveryRecordThatBreaksTheRulesAndWriteNothing(t *testing.T) {
	s := newAdminStack(t, localstack.Options{})
	member := func(user, project string, more ...string) []string {
		return append([]string{"admin", "member", "put", "--user", user, "--project", project}, more...)
	}
	bucket := func(name string, more ...string) []string {
		return append([]string{"admin", "bucket", "put", "--project", "p1", "--bucket", name}, more...)
	}
	prefix := func(p string) []string { return bucket("lake-raw", "--prefix", p) }
	tests := []struct {
		name string
		args []string
		rule string // in the message
	}{
		// userId
		{"a one-character user id is refused", member("u", "p1"), "user id must be 2-64 characters"},
		{"a 65-character user id is refused", member(strings.Repeat("u", 65), "p1"), "user id must be 2-64 characters"},
		{"a user id with a slash is refused", member("team/alice", "p1"), "has a character outside [A-Za-z0-9_+=,.@-]"},
		{"a user id with a # is refused", member("alice#1", "p1"), "has a character outside [A-Za-z0-9_+=,.@-]"},
		{"a user id with a space is refused", member("alice smith", "p1"), "has a character outside [A-Za-z0-9_+=,.@-]"},
		{"a member delete with a user id no record can have is refused", []string{"admin", "member", "delete", "--user", "a*", "--project", "p1"}, "has a character outside [A-Za-z0-9_+=,.@-]"},
		// projectId
		{"a missing project is a usage error", member("alice-1", ""), "--project is required"},
		{"a 129-character project id is refused", member("alice-1", strings.Repeat("p", 129)), "project id must be 1-128 characters"},
		{"a project id with a space is refused", member("alice-1", "my project"), "has a character outside [A-Za-z0-9._:@=+-]"},
		{"a project id with a * is refused", member("alice-1", "p*"), "has a character outside [A-Za-z0-9._:@=+-]"},
		{"a project id with a slash is refused", []string{"admin", "bucket", "put", "--project", "a/b", "--bucket", "lake-raw"}, "has a character outside [A-Za-z0-9._:@=+-]"},
		// role
		{"an unknown role is refused", member("alice-1", "p1", "--role", "admin"), `role "admin" is not "read" or "write"`},
		{"a role in capitals is refused", member("alice-1", "p1", "--role", "WRITE"), `role "WRITE" is not "read" or "write"`},
		{"an empty role is refused", member("alice-1", "p1", "--role", ""), `role "" is not "read" or "write"`},
		// bucket name
		{"a two-character bucket is refused", bucket("ab"), "must be 3-63 characters"},
		{"a 64-character bucket is refused", bucket(strings.Repeat("b", 64)), "must be 3-63 characters"},
		{"a bucket with capitals and an underscore is refused", bucket("Bad_Bucket"), "may hold only lowercase letters, digits, '.' and '-'"},
		{"a bucket with a * is refused", bucket("lake-*"), "may hold only lowercase letters, digits, '.' and '-'"},
		{"a bucket starting with a hyphen is refused", bucket("-lake"), "must start and end with a letter or digit"},
		{"a bucket ending with a dot is refused", bucket("lake."), "must start and end with a letter or digit"},
		{"a bucket with two dots in a row is refused", bucket("lake..raw"), `must not contain ".."`},
		{"a bucket shaped like an IP address is refused", bucket("192.168.1.1"), "must not be shaped like an IP address"},
		{"a bucket shaped like an IP address with a leading zero is refused", bucket("10.0.0.01"), "must not be shaped like an IP address"},
		{"the reserved prefix xn-- is refused", bucket("xn--lake"), `uses the reserved prefix "xn--"`},
		{"the reserved prefix sthree- is refused", bucket("sthree-lake"), `uses the reserved prefix "sthree-"`},
		{"the reserved prefix amzn-s3-demo- is refused", bucket("amzn-s3-demo-lake"), `uses the reserved prefix "amzn-s3-demo-"`},
		{"the reserved suffix -s3alias is refused", bucket("lake-s3alias"), `uses the reserved suffix "-s3alias"`},
		{"the reserved suffix --ol-s3 is refused", bucket("lake--ol-s3"), `uses the reserved suffix "--ol-s3"`},
		{"the reserved suffix .mrap is refused", bucket("lake.mrap"), `uses the reserved suffix ".mrap"`},
		{"the reserved suffix --x-s3 is refused", bucket("lake--x-s3"), `uses the reserved suffix "--x-s3"`},
		{"the reserved suffix --table-s3 is refused", bucket("lake--table-s3"), `uses the reserved suffix "--table-s3"`},
		{"a bucket delete of a name no record can have is refused", []string{"admin", "bucket", "delete", "--project", "p1", "--bucket", "Lake"}, "may hold only lowercase letters"},
		// prefix
		{"a prefix with * is refused", prefix("raw/*"), "must not contain '*'"},
		{"a prefix with ? is refused", prefix("raw/?"), "must not contain '?'"},
		{"a prefix with $ is refused", prefix("raw/${aws:username}"), "must not contain '$'"},
		{"a prefix with a control character is refused", prefix("raw/\x01"), "must not contain control characters"},
		{"a prefix with a newline is refused", prefix("raw/\nx"), "must not contain control characters"},
		{"a prefix with DEL is refused", prefix("raw/\x7f"), "must not contain control characters"},
		{"a prefix with a leading slash is refused", prefix("/raw"), "must not start with '/'"},
		{"a prefix of invalid UTF-8 is refused", prefix("raw/\xff"), "prefix is not valid UTF-8"},
		{"a prefix over 1,024 characters is refused", prefix(strings.Repeat("r", 1025)), "prefix has 1025 characters, more than 1024"},
		{"a prefix too long for a session policy is refused", prefix(strings.Repeat("r", 900)), "prefix too long: one grant of it would not fit in a session policy"},
		{"an explicitly empty prefix is refused", prefix(""), "prefix is empty: remove the attribute to grant the whole bucket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := s.cli(t, tt.args...)
			if code != exitcode.Usage || out != "" || !strings.Contains(errOut, tt.rule) || strings.Count(errOut, "\n") != 1 {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 and one line naming %q", code, out, errOut, tt.rule)
			}
			if items := s.items(t); len(items) != 0 {
				t.Errorf("the membership table holds %v after a refusal", items)
			}
		})
	}
}

func TestAdminWritesDoWhatTheySayAndNoMore(t *testing.T) {
	s := newAdminStack(t, localstack.Options{})
	steps := []struct {
		name string
		args []string
		out  string // stdout starts with it
		want map[string]broker.SourceItem
	}{
		{"a dry run of a new membership writes nothing",
			[]string{"admin", "member", "put", "--user", "alice-1", "--project", "p1", "--role", "write", "--dry-run"}, "would create: user alice-1 in project p1, role write",
			map[string]broker.SourceItem{}},
		{"a new membership is created with its role",
			[]string{"admin", "member", "put", "--user", "alice-1", "--project", "p1", "--role", "write"}, "created: user alice-1 in project p1, role write",
			map[string]broker.SourceItem{"USER#alice-1 / PROJECT#p1": {PK: "USER#alice-1", SK: "PROJECT#p1", Role: broker.StringAttr("write")}}},
		{"the same membership again is unchanged",
			[]string{"admin", "member", "put", "--user", "alice-1", "--project", "p1", "--role", "write"}, "unchanged, nothing written",
			map[string]broker.SourceItem{"USER#alice-1 / PROJECT#p1": {PK: "USER#alice-1", SK: "PROJECT#p1", Role: broker.StringAttr("write")}}},
		{"no role means read, written out",
			[]string{"admin", "member", "put", "--user", "alice-1", "--project", "p1"}, "updated: user alice-1 in project p1: role write → read",
			map[string]broker.SourceItem{"USER#alice-1 / PROJECT#p1": {PK: "USER#alice-1", SK: "PROJECT#p1", Role: broker.StringAttr("read")}}},
		{"a folder of a bucket is written as given",
			[]string{"admin", "bucket", "put", "--project", "p1", "--bucket", "lake-raw", "--prefix", "runs/2026"}, "created: project p1 owns folder runs/2026/ of bucket lake-raw",
			map[string]broker.SourceItem{
				"USER#alice-1 / PROJECT#p1":    {PK: "USER#alice-1", SK: "PROJECT#p1", Role: broker.StringAttr("read")},
				"PROJECT#p1 / BUCKET#lake-raw": {PK: "PROJECT#p1", SK: "BUCKET#lake-raw", Prefix: broker.StringAttr("runs/2026")},
			}},
		{"the same folder with its slash grants the same and is not rewritten",
			[]string{"admin", "bucket", "put", "--project", "p1", "--bucket", "lake-raw", "--prefix", "runs/2026/"}, "unchanged, nothing written",
			map[string]broker.SourceItem{
				"USER#alice-1 / PROJECT#p1":    {PK: "USER#alice-1", SK: "PROJECT#p1", Role: broker.StringAttr("read")},
				"PROJECT#p1 / BUCKET#lake-raw": {PK: "PROJECT#p1", SK: "BUCKET#lake-raw", Prefix: broker.StringAttr("runs/2026")},
			}},
		{"no prefix widens the record to the whole bucket",
			[]string{"admin", "bucket", "put", "--project", "p1", "--bucket", "lake-raw"}, "updated: project p1: folder runs/2026/ of bucket lake-raw → bucket lake-raw (whole bucket)",
			map[string]broker.SourceItem{
				"USER#alice-1 / PROJECT#p1":    {PK: "USER#alice-1", SK: "PROJECT#p1", Role: broker.StringAttr("read")},
				"PROJECT#p1 / BUCKET#lake-raw": {PK: "PROJECT#p1", SK: "BUCKET#lake-raw"},
			}},
		{"a dry-run delete writes nothing",
			[]string{"admin", "bucket", "delete", "--project", "p1", "--bucket", "lake-raw", "--dry-run"}, "would delete: project p1 owns bucket lake-raw",
			map[string]broker.SourceItem{
				"USER#alice-1 / PROJECT#p1":    {PK: "USER#alice-1", SK: "PROJECT#p1", Role: broker.StringAttr("read")},
				"PROJECT#p1 / BUCKET#lake-raw": {PK: "PROJECT#p1", SK: "BUCKET#lake-raw"},
			}},
		{"a bucket delete removes the record",
			[]string{"admin", "bucket", "delete", "--project", "p1", "--bucket", "lake-raw"}, "deleted: project p1 owns bucket lake-raw",
			map[string]broker.SourceItem{"USER#alice-1 / PROJECT#p1": {PK: "USER#alice-1", SK: "PROJECT#p1", Role: broker.StringAttr("read")}}},
		{"a member delete removes the record",
			[]string{"admin", "member", "delete", "--user", "alice-1", "--project", "p1"}, "deleted: user alice-1 in project p1, role read",
			map[string]broker.SourceItem{}},
		{"a delete of what is not there says so and succeeds",
			[]string{"admin", "member", "delete", "--user", "alice-1", "--project", "p1"}, "not found, nothing deleted",
			map[string]broker.SourceItem{}},
	}
	for _, st := range steps {
		code, out, errOut := s.cli(t, st.args...)
		if code != exitcode.OK || !strings.HasPrefix(out, st.out) {
			t.Fatalf("%s: exit %d, stdout %q, stderr %q; want 0 and %q", st.name, code, out, errOut, st.out)
		}
		if diff := cmp.Diff(st.want, s.items(t)); diff != "" {
			t.Fatalf("%s: membership table (-want +got):\n%s", st.name, diff)
		}
	}
}

func TestAdminImport(t *testing.T) {
	s := newAdminStack(t, localstack.Options{})
	dir := t.TempDir()
	file := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := file("good.csv", "user,project,role,bucket,prefix\n"+
		"alice-1,p1,write,,\n"+
		"# a comment line\n"+
		"bob-22,p1,,,\n"+
		",p1,,lake-raw,\n"+
		",p1,,lake-cur,team/a\n")
	s.putRaw(t, "USER#bob-22", "PROJECT#p1", map[string]types.AttributeValue{"role": mototest.S("read")})
	s.putRaw(t, "USER#carol-3", "PROJECT#p1", nil)
	before := s.items(t)

	t.Run("a dry run reports each change by line and writes nothing", func(t *testing.T) {
		code, out, errOut := s.cli(t, "admin", "import", good, "--dry-run", "--json")
		if code != exitcode.OK {
			t.Fatalf("exit %d, stderr %q", code, errOut)
		}
		var got []change
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("stdout is not the JSON report: %v\n%s", err, out)
		}
		want := []change{
			{Line: 2, Action: actionCreate, PK: "USER#alice-1", SK: "PROJECT#p1", Detail: "user alice-1 in project p1, role write"},
			{Line: 4, Action: actionUnchanged, PK: "USER#bob-22", SK: "PROJECT#p1", Detail: "user bob-22 in project p1, role read"},
			{Line: 5, Action: actionCreate, PK: "PROJECT#p1", SK: "BUCKET#lake-raw", Detail: "project p1 owns bucket lake-raw (whole bucket)"},
			{Line: 6, Action: actionCreate, PK: "PROJECT#p1", SK: "BUCKET#lake-cur", Detail: "project p1 owns folder team/a/ of bucket lake-cur"},
		}
		if diff := cmp.Diff(want, got, cmp.AllowUnexported(change{})); diff != "" {
			t.Errorf("report (-want +got):\n%s", diff)
		}
		if !strings.Contains(errOut, "dry run: 3 to create, 0 to update, 0 to delete, 1 unchanged") {
			t.Errorf("summary %q", errOut)
		}
		if diff := cmp.Diff(before, s.items(t)); diff != "" {
			t.Errorf("a dry run wrote (-before +after):\n%s", diff)
		}
	})

	invalid := []struct {
		name, file string
		errors     []string // line-numbered, in order
	}{
		{"an invalid CSV line stops the whole file", file("bad.csv", "user,project,role\nalice-1,p1,write\nbob-22,p1,admin\nx,p1,\n"),
			[]string{`line 3: membership USER#bob-22/PROJECT#p1: role "admin" is not "read" or "write"`, "line 4: membership USER#x/PROJECT#p1: user id must be 2-64 characters"}},
		{"NULL and other types in JSON lines break the rules as they would in the table", file("types.jsonl", `{"user":"alice-1","project":"p1","role":"write"}
{"user":"dave-4","project":"p1","role":null}
{"user":"erin-5","project":"p1","role":1}
{"project":"p1","bucket":"lake-a","prefix":null}
{"project":"p1","bucket":"lake-b","prefix":true}
{"project":"p1","bucket":"lake-c","prefix":""}
`), []string{
			"line 2: membership USER#dave-4/PROJECT#p1: role must be a string, got type NULL",
			"line 3: membership USER#erin-5/PROJECT#p1: role must be a string, got type N",
			"line 4: bucket PROJECT#p1/BUCKET#lake-a: prefix must be a string, got type NULL",
			"line 5: bucket PROJECT#p1/BUCKET#lake-b: prefix must be a string, got type BOOL",
			"line 6: bucket PROJECT#p1/BUCKET#lake-c: prefix is empty: remove the attribute to grant the whole bucket",
		}},
		{"a line that is not a record, a duplicate and an unknown field are errors too", file("shape.jsonl", `{"user":"alice-1","project":"p1"}
not json
{"user":"alice-1","project":"p1","role":"write"}
{"user":"alice-1","project":"p2","team":"x"}
{"user":"alice-1","bucket":"lake-raw","project":"p1"}
{"project":"p1"}
{"op":"remove","user":"alice-1","project":"p3"}
`), []string{
			"line 2: not a JSON object",
			"line 3: the same record as line 1 (USER#alice-1 / PROJECT#p1)",
			`line 4: unknown field "team"`,
			"line 5: a line names a user (a membership) or a bucket (a bucket of a project), not both",
			"line 6: a line names a user (a membership) or a bucket (a bucket of a project)",
			`line 7: op "remove": "put" or "delete"`,
		}},
	}
	for _, tc := range invalid {
		for _, dry := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s (dry run %v)", tc.name, dry), func(t *testing.T) {
				args := []string{"admin", "import", tc.file}
				if dry {
					args = append(args, "--dry-run")
				}
				code, _, errOut := s.cli(t, args...)
				lines := strings.Split(strings.TrimSpace(errOut), "\n")
				if code != exitcode.Usage || len(lines) != len(tc.errors)+1 {
					t.Fatalf("exit %d, stderr:\n%s\nwant exit 2, %d line errors and a summary", code, errOut, len(tc.errors))
				}
				for i, want := range tc.errors {
					if !strings.HasPrefix(lines[i], want) {
						t.Errorf("error %d: %q, want %q", i, lines[i], want)
					}
				}
				if diff := cmp.Diff(before, s.items(t)); diff != "" {
					t.Errorf("an invalid file wrote (-before +after):\n%s", diff)
				}
			})
		}
	}

	t.Run("the file is written, then a second run finds nothing to do", func(t *testing.T) {
		code, out, errOut := s.cli(t, "admin", "import", good)
		if code != exitcode.OK || !strings.Contains(errOut, "done: 3 created, 0 updated, 0 deleted, 1 unchanged") || !strings.Contains(out, "LINE") {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		items := s.items(t)
		for _, k := range []string{"USER#alice-1 / PROJECT#p1", "PROJECT#p1 / BUCKET#lake-raw", "PROJECT#p1 / BUCKET#lake-cur"} {
			if _, ok := items[k]; !ok {
				t.Errorf("%s not written", k)
			}
		}
		if got := items["PROJECT#p1 / BUCKET#lake-cur"].Prefix; got != broker.StringAttr("team/a") {
			t.Errorf("lake-cur's prefix %+v", got)
		}
		code, _, errOut = s.cli(t, "admin", "import", good)
		if code != exitcode.OK || !strings.Contains(errOut, "done: 0 created, 0 updated, 0 deleted, 4 unchanged") {
			t.Errorf("second run: exit %d, stderr %q", code, errOut)
		}
	})

	t.Run("deletes from standard input as JSON lines", func(t *testing.T) {
		var stdout, stderr strings.Builder
		code := cli.Run(context.Background(), Commands(), []string{"admin", "import", "-", "--stack", s.st.InfoPath()}, &cli.Env{
			Stdin:  strings.NewReader(`{"op":"delete","user":"carol-3","project":"p1"}` + "\n" + `{"op":"delete","project":"p1","bucket":"lake-gone"}` + "\n"),
			Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }, ConfigDir: t.TempDir(),
		})
		if code != exitcode.OK || !strings.Contains(stderr.String(), "done: 0 created, 0 updated, 1 deleted, 0 unchanged, 1 not found to delete") {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
		}
		if _, ok := s.items(t)["USER#carol-3 / PROJECT#p1"]; ok {
			t.Error("carol-3's membership is still there")
		}
	})
}

// The reasons rejected gives are the projector's, word for word: it
// compares them with the ProjectionRejected events of the same records.
func TestAdminRejectedListsEveryRecordThatBreaksTheRulesWithTheProjectorsReason(t *testing.T) {
	s := newAdminStack(t, localstack.Options{AuditTail: true})
	str, num, null := mototest.S, func(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} },
		&types.AttributeValueMemberNULL{Value: true}
	bad := []struct {
		pk, sk string
		attrs  map[string]types.AttributeValue
	}{
		{"USER#u1-bad-role", "PROJECT#p1", map[string]types.AttributeValue{"role": str("admin")}},
		{"USER#u2-null-role", "PROJECT#p1", map[string]types.AttributeValue{"role": null}},
		{"USER#u3-number-role", "PROJECT#p1", map[string]types.AttributeValue{"role": num("1")}},
		{"USER#x", "PROJECT#p1", nil},
		{"USER#u4-bad-project", "PROJECT#my project", nil},
		{"PROJECT#p1", "BUCKET#Bad_Bucket", nil},
		{"PROJECT#p1", "BUCKET#192.168.1.1", nil},
		{"PROJECT#p1", "BUCKET#xn--lake", nil},
		{"PROJECT#p1", "BUCKET#lake-null", map[string]types.AttributeValue{"prefix": null}},
		{"PROJECT#p1", "BUCKET#lake-empty", map[string]types.AttributeValue{"prefix": str("")}},
		{"PROJECT#p1", "BUCKET#lake-star", map[string]types.AttributeValue{"prefix": str("raw/*")}},
		{"PROJECT#p1", "BUCKET#lake-slash", map[string]types.AttributeValue{"prefix": str("/raw")}},
		{"PROJECT#p1", "BUCKET#lake-long", map[string]types.AttributeValue{"prefix": str(strings.Repeat("r", 900))}},
		{"PROJECT#p1", "BUCKET#lake-bool", map[string]types.AttributeValue{"prefix": &types.AttributeValueMemberBOOL{Value: true}}},
	}
	for _, b := range bad {
		s.putRaw(t, b.pk, b.sk, b.attrs)
	}
	s.putRaw(t, "USER#u5-good", "PROJECT#p1", map[string]types.AttributeValue{"role": str("write")})
	s.putRaw(t, "PROJECT#p1", "BUCKET#lake-ok", map[string]types.AttributeValue{"prefix": str("raw/")})
	s.putRaw(t, "USER#u5-good", "PROFILE", nil) // another key shape: ignored, never rejected
	s.putRaw(t, "CONFIG", "GLOBAL", nil)

	events := projectionRejected(t, s, len(bad))
	code, out, errOut := s.cli(t, "admin", "rejected", "--json")
	if code != exitcode.Found || !strings.Contains(errOut, fmt.Sprintf("%d record(s) break the rules", len(bad))) {
		t.Fatalf("exit %d, stderr %q; want %d and a count", code, errOut, exitcode.Found)
	}
	var got []rejection
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("stdout is not [{pk,sk,reason}]: %v\n%s", err, out)
	}
	gotByKey := map[string]string{}
	for _, r := range got {
		gotByKey[r.PK+" / "+r.SK] = r.Reason
	}
	if diff := cmp.Diff(events, gotByKey); diff != "" {
		t.Errorf("reasons (-ProjectionRejected +rejected):\n%s", diff)
	}

	if want := "delete it with `credbroker admin rejected delete --pk PK --sk SK --stack " + s.st.InfoPath() + "`"; !strings.Contains(errOut, want) {
		t.Errorf("rejected does not name the delete that removes them: %q", errOut)
	}
	code, out, _ = s.cli(t, "admin", "rejected", "--quiet", "--segments", "1")
	if code != exitcode.Found || !strings.HasPrefix(out, "PK") || !strings.Contains(out, "BUCKET#192.168.1.1") {
		t.Errorf("table: exit %d\n%s", code, out)
	}

	// An operator fixes one with the CLI: it is no longer rejected.
	if code, _, errOut := s.cli(t, "admin", "member", "put", "--user", "u1-bad-role", "--project", "p1", "--role", "write"); code != exitcode.OK {
		t.Fatalf("fix: exit %d: %s", code, errOut)
	}
	code, out, _ = s.cli(t, "admin", "rejected", "--json", "--quiet")
	if code != exitcode.Found || strings.Contains(out, "u1-bad-role") || strings.Count(out, `"pk"`) != len(bad)-1 {
		t.Errorf("after the fix: exit %d\n%s", code, out)
	}

	// The others go with admin rejected delete, by the keys it printed;
	// a valid record is refused and stays.
	for _, r := range got {
		if r.PK == "USER#u1-bad-role" {
			continue
		}
		if code, out, errOut := s.cli(t, "admin", "rejected", "delete", "--pk", r.PK, "--sk", r.SK); code != exitcode.OK || !strings.HasPrefix(out, "deleted: a record that breaks the rules") {
			t.Fatalf("rejected delete %s / %s: exit %d, stdout %q, stderr %q", r.PK, r.SK, code, out, errOut)
		}
	}
	code, out, errOut = s.cli(t, "admin", "rejected", "delete", "--pk", "USER#u1-bad-role", "--sk", "PROJECT#p1")
	if code != exitcode.Usage || out != "" || !strings.Contains(errOut, "`credbroker admin member delete --user u1-bad-role --project p1 --stack "+s.st.InfoPath()+"`") {
		t.Errorf("rejected delete of a valid record: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, out, errOut := s.cli(t, "admin", "rejected", "--json"); code != exitcode.OK || out != "[]\n" {
		t.Errorf("after the deletes: exit %d, stdout %q, stderr %q; want no record left to list", code, out, errOut)
	}
	for _, k := range []string{"USER#u1-bad-role / PROJECT#p1", "USER#u5-good / PROJECT#p1", "PROJECT#p1 / BUCKET#lake-ok", "USER#u5-good / PROFILE", "CONFIG / GLOBAL"} {
		if _, ok := s.items(t)[k]; !ok {
			t.Errorf("%s was deleted", k)
		}
	}
}

// projectionRejected waits for the ProjectionRejected events of n records
// on the stack's audit tail and returns their reasons by "pk / sk".
func projectionRejected(t *testing.T, s *adminStack, n int) map[string]string {
	t.Helper()
	q := sqs.NewFromConfig(s.cfg)
	reasons := map[string]string{}
	deadline := time.Now().Add(30 * time.Second)
	for len(reasons) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d ProjectionRejected events within 30 s: %v", len(reasons), n, reasons)
		}
		out, err := q.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(s.st.Info.AuditQueueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			var ev struct {
				DetailType string `json:"detail-type"`
				Detail     struct{ PK, SK, Reason string }
			}
			if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &ev); err != nil {
				t.Fatal(err)
			}
			if ev.DetailType == broker.DetailProjectionRejected {
				reasons[ev.Detail.PK+" / "+ev.Detail.SK] = ev.Detail.Reason
			}
		}
	}
	return reasons
}

// adminUser is a user of the stack's pool, signed in.
type adminUser struct{ name, sub, token string }

func newAdminUser(t *testing.T, s *adminStack, name string) adminUser {
	t.Helper()
	ctx := context.Background()
	idp := cip.NewFromConfig(s.cfg)
	pool, password := aws.String(s.st.Info.UserPoolID), "Cli-Passw0rd!"
	if _, err := idp.AdminCreateUser(ctx, &cip.AdminCreateUserInput{UserPoolId: pool, Username: aws.String(name), MessageAction: ciptypes.MessageActionTypeSuppress}); err != nil {
		t.Fatal(err)
	}
	if _, err := idp.AdminSetUserPassword(ctx, &cip.AdminSetUserPasswordInput{UserPoolId: pool, Username: aws.String(name), Password: aws.String(password), Permanent: true}); err != nil {
		t.Fatal(err)
	}
	got, err := idp.AdminGetUser(ctx, &cip.AdminGetUserInput{UserPoolId: pool, Username: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	u := adminUser{name: name}
	for _, a := range got.UserAttributes {
		if aws.ToString(a.Name) == "sub" {
			u.sub = aws.ToString(a.Value)
		}
	}
	auth, err := idp.InitiateAuth(ctx, &cip.InitiateAuthInput{
		ClientId: aws.String(s.st.Info.UserPoolClientID), AuthFlow: ciptypes.AuthFlowTypeUserPasswordAuth,
		AuthParameters: map[string]string{"USERNAME": name, "PASSWORD": password},
	})
	if err != nil {
		t.Fatal(err)
	}
	u.token = aws.ToString(auth.AuthenticationResult.AccessToken)
	return u
}

// endpointAnswer is what the credential endpoint answers a user: the
// grants of all sets, sorted as the policy item sorts them.
type endpointAnswer struct {
	status  int
	version string
	grants  []broker.Grant
}

func askEndpoint(t *testing.T, s *adminStack, u adminUser) endpointAnswer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.st.Info.APIURL+"/auths/resources", nil)
	req.Header.Set("Authorization", "Bearer "+u.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		PolicyVersion  string `json:"policyVersion"`
		CredentialSets []struct {
			Grants []broker.Grant `json:"grants"`
		} `json:"credentialSets"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	a := endpointAnswer{status: resp.StatusCode, version: body.PolicyVersion, grants: []broker.Grant{}}
	for _, set := range body.CredentialSets {
		a.grants = append(a.grants, set.Grants...)
	}
	sortGrants(a.grants)
	return a
}

func sortGrants(gs []broker.Grant) {
	slices.SortFunc(gs, func(a, b broker.Grant) int {
		return strings.Compare(a.Bucket+"\x00"+a.Prefix+"\x00"+string(a.Access), b.Bucket+"\x00"+b.Prefix+"\x00"+string(b.Access))
	})
}

func places(gs []broker.Grant) []string {
	out := []string{}
	for _, g := range gs {
		out = append(out, g.Bucket+"/"+g.Prefix+":"+string(g.Access))
	}
	return out
}

// The questions answer what the endpoint serves: explain, who-can and
// report are compared with the endpoint's own answers to the same users.
func TestAdminQuestionsAgreeWithTheEndpoint(t *testing.T) {
	s := newAdminStack(t, localstack.Options{})
	users := map[string]adminUser{}
	for _, name := range []string{"ana", "ben", "cleo", "dan", "eve"} {
		users[name] = newAdminUser(t, s, name)
	}
	// Written with the CLI, members by username as an operator knows them.
	for _, args := range [][]string{
		{"admin", "member", "put", "--username", "ana", "--project", "genomics", "--role", "write"},
		{"admin", "member", "put", "--username", "ana", "--project", "imaging"},
		{"admin", "member", "put", "--username", "ben", "--project", "genomics"},
		// A contractor's week: imaging's whole lake-cur for ben, until then.
		{"admin", "member", "put", "--username", "ben", "--project", "imaging", "--expires-in", "168h"},
		{"admin", "member", "put", "--username", "cleo", "--project", "imaging", "--role", "write"},
		{"admin", "member", "put", "--username", "eve", "--project", "empty"},
		{"admin", "bucket", "put", "--project", "genomics", "--bucket", "lake-raw"},
		{"admin", "bucket", "put", "--project", "genomics", "--bucket", "lake-cur", "--prefix", "team/a"},
		{"admin", "bucket", "put", "--project", "imaging", "--bucket", "lake-raw", "--prefix", "exports"},
		{"admin", "bucket", "put", "--project", "imaging", "--bucket", "lake-cur"},
	} {
		if code, _, errOut := s.cli(t, args...); code != exitcode.OK {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
	}
	// And one record another tool wrote, which grants dan nothing.
	s.putRaw(t, "USER#"+users["dan"].sub, "PROJECT#genomics", map[string]types.AttributeValue{"role": mototest.S("owner")})

	want := map[string][]string{
		"ana":  {"lake-cur/:read", "lake-cur/team/a/:write", "lake-raw/:write"},
		"ben":  {"lake-cur/:read", "lake-cur/team/a/:read", "lake-raw/:read"},
		"cleo": {"lake-cur/:write", "lake-raw/exports/:write"},
	}
	answers := map[string]endpointAnswer{}
	deadline := time.Now().Add(20 * time.Second)
	for name, u := range users {
		for {
			a := askEndpoint(t, s, u)
			if (want[name] == nil && a.status == http.StatusForbidden) || (a.status == http.StatusOK && slices.Equal(places(a.grants), want[name])) {
				answers[name] = a
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the endpoint answers %d %v, want %v", name, a.status, places(a.grants), want[name])
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	t.Run("the endpoint serves the bounded grant with its expiry, the union rule the others", func(t *testing.T) {
		for _, g := range answers["ben"].grants {
			bounded := g.Bucket == "lake-cur" && g.Prefix == ""
			if soon := time.Now().Add(168 * time.Hour); bounded != !g.ExpiresAt.IsZero() || bounded && (g.ExpiresAt.After(soon) || g.ExpiresAt.Before(soon.Add(-time.Minute))) {
				t.Errorf("ben's grant %+v: want an expiry a week from now on lake-cur only", g)
			}
		}
	})

	t.Run("explain gives each user the endpoint's version and grants", func(t *testing.T) {
		for name, u := range users {
			for _, by := range [][]string{{"--user", u.sub}, {"--username", name}} {
				code, out, errOut := s.cli(t, append([]string{"admin", "explain", "--json"}, by...)...)
				if code != exitcode.OK {
					t.Fatalf("%s: exit %d: %s", name, code, errOut)
				}
				var x explanation
				if err := json.Unmarshal([]byte(out), &x); err != nil {
					t.Fatalf("%s: %v\n%s", name, err, out)
				}
				sortGrants(x.Grants)
				a := answers[name]
				if a.status == http.StatusForbidden {
					a.version = x.PolicyVersion // a 403 names no version: the grants say it all
				}
				if x.UserID != u.sub || x.PolicyVersion != a.version || !x.InSync {
					t.Errorf("%s: userId %q version %q inSync %v; want %q %q true", name, x.UserID, x.PolicyVersion, x.InSync, u.sub, a.version)
				}
				if diff := cmp.Diff(a.grants, x.Grants); diff != "" {
					t.Errorf("%s: grants (-endpoint +explain):\n%s", name, diff)
				}
			}
		}
		_, out, _ := s.cli(t, "admin", "explain", "--username", "dan")
		if !strings.Contains(out, `nothing: the record breaks the rules: membership USER#`+users["dan"].sub+`/PROJECT#genomics: role "owner" is not "read" or "write"`) {
			t.Errorf("explain does not say why dan gets nothing:\n%s", out)
		}
		_, out, _ = s.cli(t, "admin", "explain", "--username", "eve")
		if !strings.Contains(out, "empty") || !strings.Contains(out, "nothing: the project has no bucket") {
			t.Errorf("explain does not say why eve gets nothing:\n%s", out)
		}
	})

	whoCan := []struct {
		name, bucket, prefix string
		want                 []string // user:folder:access, besides agreeing with the endpoint
	}{
		{"a whole bucket: every grant on it, whole or folder", "lake-raw", "",
			[]string{"ana::write", "ben::read", "cleo:exports/:write"}},
		{"a folder: the whole-bucket grants and the folder's", "lake-raw", "exports",
			[]string{"ana::write", "ben::read", "cleo:exports/:write"}},
		{"a folder below a granted folder", "lake-cur", "team/a/runs/",
			[]string{"ana::read", "ana:team/a/:write", "ben::read", "ben:team/a/:read", "cleo::write"}},
		{"a folder above a granted folder", "lake-cur", "team/",
			[]string{"ana::read", "ana:team/a/:write", "ben::read", "ben:team/a/:read", "cleo::write"}},
		{"a sibling folder: only whole-bucket grants", "lake-cur", "team/b",
			[]string{"ana::read", "ben::read", "cleo::write"}},
		{"a bucket nobody has", "lake-none", "", []string{}},
	}
	nameOf := map[string]string{}
	for name, u := range users {
		nameOf[u.sub] = name
	}
	for _, tc := range whoCan {
		t.Run("who-can: "+tc.name, func(t *testing.T) {
			norm, _ := broker.NormalizePrefix(tc.prefix)
			want := []reach{}
			for name, a := range answers {
				for _, g := range a.grants {
					if g.Bucket == tc.bucket && overlaps(g.Prefix, norm) {
						want = append(want, reach{UserID: users[name].sub, Username: name, Access: g.Access, Prefix: g.Prefix, Projects: g.Projects, ExpiresAt: g.ExpiresAt})
					}
				}
			}
			args := []string{"admin", "who-can", "--bucket", tc.bucket, "--json"}
			if tc.prefix != "" {
				args = append(args, "--prefix", tc.prefix)
			}
			code, out, errOut := s.cli(t, args...)
			if code != exitcode.OK {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			var got []reach
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			byUser := func(rs []reach) {
				slices.SortFunc(rs, func(a, b reach) int { return strings.Compare(a.UserID+a.Prefix, b.UserID+b.Prefix) })
			}
			byUser(want)
			byUser(got)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("who-can (-endpoint +cli):\n%s", diff)
			}
			named := []string{}
			for _, r := range got {
				named = append(named, nameOf[r.UserID]+":"+r.Prefix+":"+string(r.Access))
			}
			slices.Sort(named)
			if diff := cmp.Diff(tc.want, named); diff != "" {
				t.Errorf("who-can (-want +cli):\n%s", diff)
			}
		})
	}

	t.Run("policy items the endpoint refuses are left out, with a warning", func(t *testing.T) {
		doc := `{"grants":[{"bucket":"lake-raw","prefix":"","access":"write","projects":["forged"]}],"sets":[],"byProject":{}}`
		for _, item := range []map[string]types.AttributeValue{
			// names another user than its key
			{"pk": mototest.S("USER#mallory"), "sk": mototest.S("POLICY"), "userId": mototest.S(users["ana"].sub),
				"claim": &types.AttributeValueMemberN{Value: "1"}, "version": mototest.S("v1.x"), "doc": mototest.S(doc)},
			// a document that does not decode
			{"pk": mototest.S("USER#trent"), "sk": mototest.S("POLICY"), "userId": mototest.S("trent"),
				"claim": &types.AttributeValueMemberN{Value: "1"}, "version": mototest.S("v1.x"), "doc": mototest.S(`{"grants":[`)},
		} {
			if _, err := s.ddb.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(s.st.Info.PolicyTable), Item: item}); err != nil {
				t.Fatal(err)
			}
		}
		code, out, errOut := s.cli(t, "admin", "who-can", "--bucket", "lake-raw", "--json")
		if code != exitcode.OK || strings.Contains(out, "mallory") || strings.Contains(out, "trent") || strings.Contains(out, "forged") ||
			!strings.Contains(errOut, "warning: 2 policy item(s) do not decode or name another user") {
			t.Errorf("exit %d, stdout %s, stderr %q", code, out, errOut)
		}
		for _, user := range []string{"mallory", "trent"} {
			if _, err := s.ddb.DeleteItem(context.Background(), &dynamodb.DeleteItemInput{TableName: aws.String(s.st.Info.PolicyTable),
				Key: mototest.Key("USER#"+user, "POLICY")}); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("report lists every grant the endpoint serves, as JSON and as CSV", func(t *testing.T) {
		want := []reportRow{}
		for name, a := range answers {
			for _, g := range a.grants {
				want = append(want, reportRow{UserID: users[name].sub, Username: name, Bucket: g.Bucket, Prefix: g.Prefix, Access: g.Access, Projects: g.Projects, ExpiresAt: g.ExpiresAt})
			}
		}
		key := func(r reportRow) string { return r.UserID + r.Bucket + r.Prefix + string(r.Access) }
		sortRows := func(rs []reportRow) {
			slices.SortFunc(rs, func(a, b reportRow) int { return strings.Compare(key(a), key(b)) })
		}
		sortRows(want)

		code, out, errOut := s.cli(t, "admin", "report", "--format", "json", "--segments", "3")
		if code != exitcode.OK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var got []reportRow
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		sortRows(got)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("JSON report (-endpoint +report):\n%s", diff)
		}

		code, out, errOut = s.cli(t, "admin", "report")
		if code != exitcode.OK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if !strings.Contains(errOut, "0 membership(s) expire within a day") {
			t.Errorf("report counts ben's week as expiring within a day: %q", errOut)
		}
		recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
		if err != nil || len(recs) == 0 || !slices.Equal(recs[0], []string{"userId", "username", "email", "bucket", "prefix", "access", "projects", "expiresAt"}) {
			t.Fatalf("CSV %v:\n%s", err, out)
		}
		got = nil
		for _, r := range recs[1:] {
			var until time.Time
			if r[7] != "" {
				if until, err = time.Parse(time.RFC3339, r[7]); err != nil {
					t.Fatal(err)
				}
			}
			got = append(got, reportRow{UserID: r[0], Username: r[1], Email: r[2], Bucket: r[3], Prefix: r[4], Access: broker.Access(r[5]), Projects: strings.Fields(r[6]), ExpiresAt: until})
		}
		sortRows(got)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("CSV report (-endpoint +report):\n%s", diff)
		}
	})
}

func TestAdminQuestionsRefuseWhatNoGrantCanName(t *testing.T) {
	s := newAdminStack(t, localstack.Options{})
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"who-can of an invalid bucket name", []string{"admin", "who-can", "--bucket", "Lake"}, "may hold only lowercase letters"},
		{"who-can of a prefix with a wildcard", []string{"admin", "who-can", "--bucket", "lake", "--prefix", "a*"}, "must not contain '*'"},
		{"who-can without a bucket", []string{"admin", "who-can"}, "--bucket is required"},
		{"explain of an invalid user id", []string{"admin", "explain", "--user", "a b"}, "has a character outside"},
		{"explain of an unknown username", []string{"admin", "explain", "--username", "nobody"}, `no user "nobody" in user pool`},
		{"explain with both --user and --username", []string{"admin", "explain", "--user", "abc", "--username", "abc"}, "not both"},
		{"report in an unknown format", []string{"admin", "report", "--format", "xml"}, `--format must be "csv" or "json"`},
		{"a scan with no segment", []string{"admin", "rejected", "--segments", "0"}, "--segments must be 1-1000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := s.cli(t, tt.args...)
			if code != exitcode.Usage || out != "" || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want 2 and %q", code, out, errOut, tt.want)
			}
		})
	}
}

// A stack file whose tables moto lacks (another run's, or an old one's):
// the command names them and says where the running stack's file is, with
// exit status 2, as for a flag that names nothing.
func TestAdminNamesTheTablesMotoLacks(t *testing.T) {
	missing := mototest.Name(t, "missing")
	path := filepath.Join(t.TempDir(), "stack.json")
	if err := stackfile.Write(path, stackfile.Stack{Region: mototest.Region, AWSEndpoint: mototest.Endpoint(t), APIURL: "http://127.0.0.1:1",
		MembershipTable: missing + "-membership", PolicyTable: missing + "-policy", EventBusName: "b", UserPoolID: "us-east-1_x",
		UserPoolClientID: "c", BaseRoleARN: "arn:aws:iam::123456789012:role/r"}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, nil, "admin", "explain", "--user", "alice-1", "--stack", path)
	want := fmt.Sprintf("credbroker admin explain: DynamoDB has no membershipTable %q or policyTable %q (ResourceNotFoundException: Requested resource not found); "+
		"is the stack file the running local stack's? `make run` writes it to .local/stack.json\n", missing+"-membership", missing+"-policy")
	if code != exitcode.Usage || out != "" || errOut != want {
		t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant exit 2 and\n%s", code, out, errOut, want)
	}
}
