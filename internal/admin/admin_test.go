package admin

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/cli"
	"github.com/credbroker/credbroker/internal/exitcode"
)

// unreachableStack writes a stack file whose AWS endpoint nothing listens
// on: a command that got as far as calling AWS would fail with status 3.
func unreachableStack(t *testing.T) string {
	t.Helper()
	b, _ := json.Marshal(map[string]string{
		"region": "us-east-1", "awsEndpoint": "http://127.0.0.1:1", "apiUrl": "http://127.0.0.1:1",
		"membershipTable": "m", "policyTable": "p", "eventBusName": "b", "userPoolId": "us-east-1_x",
		"userPoolClientId": "c", "baseRoleArn": "arn:aws:iam::123456789012:role/r", "revokerFunction": "r",
	})
	path := filepath.Join(t.TempDir(), "stack.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestAnInvalidRecordIsRefusedBeforeAnyAWSCall(t *testing.T) {
	stack := unreachableStack(t)
	csvFile := filepath.Join(t.TempDir(), "in.csv")
	if err := os.WriteFile(csvFile, []byte("user,project,role\nalice-1,p1,write\nbob-2,p1,owner\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"member put with an unknown role", []string{"admin", "member", "put", "--user", "alice-1", "--project", "p1", "--role", "owner"}, `role "owner" is not "read" or "write"`},
		{"bucket put with a wildcard folder", []string{"admin", "bucket", "put", "--project", "p1", "--bucket", "lake", "--prefix", "*"}, "must not contain '*'"},
		{"member delete of a user id no record can have", []string{"admin", "member", "delete", "--user", "x", "--project", "p1"}, "user id must be 2-64 characters"},
		{"import with one invalid line", []string{"admin", "import", csvFile}, "1 of 2 records invalid"},
		{"member put with an expiry without offset", []string{"admin", "member", "put", "--user", "alice-1", "--project", "p1", "--expires-at", "2099-12-31T18:00:00"}, "not an RFC 3339 timestamp with an offset"},
		{"member put with a past expiry", []string{"admin", "member", "put", "--user", "alice-1", "--project", "p1", "--expires-at", "2001-01-01T00:00:00Z"}, "is not in the future"},
		{"member put expiring a negative while from now", []string{"admin", "member", "put", "--user", "alice-1", "--project", "p1", "--expires-in", "-1h"}, "is not in the future"},
		{"member put with an expiry that is no duration", []string{"admin", "member", "put", "--user", "alice-1", "--project", "p1", "--expires-in", "8 hours"}, "is not a duration"},
		{"member put with both expiry flags", []string{"admin", "member", "put", "--user", "alice-1", "--project", "p1", "--expires-in", "8h", "--expires-at", "2099-12-31T18:00:00Z"}, "exclude each other"},
		{"a stray argument", []string{"admin", "rejected", "now"}, "unexpected arguments"},
		{"bucket put of an S3 URL says to drop s3://", []string{"admin", "bucket", "put", "--project", "p1", "--bucket", "s3://demo-raw"}, "drop the s3:// and give the bucket's name, --bucket demo-raw"},
		{"bucket put of an S3 URL with a folder says where the folder goes", []string{"admin", "bucket", "put", "--project", "p1", "--bucket", "s3://demo-raw/runs/2026/"},
			"give the bucket's name and the folder apart, --bucket demo-raw --prefix runs/2026/"},
		{"bucket delete of an S3 URL says to drop s3://", []string{"admin", "bucket", "delete", "--project", "p1", "--bucket", "s3://demo-raw"}, "--bucket demo-raw"},
		{"who-can of an S3 URL says to drop s3://", []string{"admin", "who-can", "--bucket", "s3://demo-raw"}, "--bucket demo-raw"},
		{"rejected delete without keys", []string{"admin", "rejected", "delete", "--pk", "USER#x"}, "--pk and --sk are required"},
		{"replay with a since that is no time", []string{"admin", "replay", "--since", "yesterday"}, "is not an RFC 3339 time"},
		{"verify with no segment", []string{"admin", "verify", "--segments", "0"}, "--segments and --concurrency must be at least 1"},
		{"verify given a since", []string{"admin", "verify", "--since", "2025-01-01T00:00:00Z"}, "flag provided but not defined: -since"},
		{"rebuild of the local stack given expiry timers", []string{"admin", "rebuild", "--expiry-schedule-group", "g"}, "the local stack arms its own"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, nil, append(tt.args, "--stack", stack)...)
			if code != exitcode.Usage || out != "" || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want 2 and %q", code, out, errOut, tt.want)
			}
		})
	}
	t.Run("a deployed stack's rebuild with half the expiry timers' names", func(t *testing.T) {
		code, out, errOut := runCLI(t, nil, "admin", "rebuild", "--membership-table", "m", "--policy-table", "p", "--event-bus", "b",
			"--region", "us-east-1", "--expiry-schedule-group", "g")
		if code != exitcode.Usage || out != "" || !strings.Contains(errOut, "--expiry-schedule-group needs --expiry-scheduler-role-arn and --expiry-target-arn") {
			t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
	})
	t.Run("a valid record does reach AWS (and fails there with status 3)", func(t *testing.T) {
		code, _, errOut := runCLI(t, nil, "admin", "member", "put", "--user", "alice-1", "--project", "p1", "--stack", stack)
		if code != exitcode.Failure {
			t.Errorf("exit %d, stderr %q; want 3", code, errOut)
		}
	})
}

// Every admin command that calls AWS says what to do when the local stack
// is not running, and a deployed stack's failures name its own settings;
// both with exit status 3. (internal/cli's tests cover AWS's answers.)
func TestAdminCommandsSayWhatToDoWhenAWSFails(t *testing.T) {
	stack := unreachableStack(t)
	csvFile := filepath.Join(t.TempDir(), "in.csv")
	if err := os.WriteFile(csvFile, []byte("user,project,role\nalice-1,p1,read\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := map[string][]string{
		"admin member put":      {"--user", "alice-1", "--project", "p1"},
		"admin member delete":   {"--user", "alice-1", "--project", "p1"},
		"admin bucket put":      {"--project", "p1", "--bucket", "lake-raw"},
		"admin bucket delete":   {"--project", "p1", "--bucket", "lake-raw"},
		"admin import":          {csvFile},
		"admin explain":         {"--user", "alice-1"},
		"admin who-can":         {"--bucket", "lake-raw", "--names=false"},
		"admin rejected":        nil,
		"admin rejected delete": {"--pk", "USER#alice-1", "--sk", "PROJECT#p1"},
		"admin report":          {"--names=false"},
		"admin verify":          nil,
		"admin rebuild":         nil,
		"admin replay":          nil,
		"admin preflight":       nil,
		"admin revoke":          {"--user", "alice-1"},
		"admin teardown":        {"--yes"},
	}
	for _, c := range Commands() {
		t.Run(c.Path+" on a local stack that is not running", func(t *testing.T) {
			a, ok := args[c.Path]
			if !ok {
				t.Fatalf("no arguments for %s: add them here", c.Path)
			}
			code, _, errOut := runCLI(t, nil, append(append(strings.Fields(c.Path), a...), "--stack", stack)...)
			lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
			last := lines[len(lines)-1]
			if code != exitcode.Failure || !strings.HasPrefix(last, "credbroker "+c.Path+": cannot reach ") ||
				!strings.HasSuffix(last, ": connect: connection refused; is the local stack running? Start it with `make run`") {
				t.Errorf("exit %d, stderr %q; want exit 3 and a last line saying to start the local stack", code, errOut)
			}
			// A scan that failed reports no count of what it found.
			if strings.Contains(errOut, " read in ") && !strings.Contains(errOut, "the scan failed (below)") {
				t.Errorf("stderr %q: a failed scan summarized as if it had finished", errOut)
			}
		})
	}

	deployed := []string{"admin", "explain", "--user", "alice-1", "--region", "us-east-1", "--membership-table", "m", "--policy-table", "p"}
	tests := []struct {
		name string
		env  map[string]string // the process's: the SDK reads it
		code int
		want string
	}{
		{"a profile the config files lack names the command that lists them", map[string]string{"AWS_PROFILE": "nope"}, exitcode.Usage,
			"credbroker admin explain: load AWS configuration: failed to get shared config profile, nope; " +
				"check AWS_PROFILE and the AWS config files (`aws configure list-profiles` lists the profiles)\n"},
		{"a deployed stack out of reach names the region and the network",
			map[string]string{"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "not-a-secret"}, exitcode.Failure,
			"credbroker admin explain: cannot reach DynamoDB at http://127.0.0.1:1/: connect: connection refused; check --region (or CREDBROKER_REGION) and the network\n"},
		{"a deployed stack without AWS credentials says how to provide them", nil, exitcode.Failure,
			"credbroker admin explain: found no AWS credentials to call DynamoDB with (no EC2 IMDS role found, operation error ec2imds: GetMetadata, " +
				`access disabled to EC2 IMDS via client option, or "AWS_EC2_METADATA_DISABLED" environment variable); ` +
				"provide them as the AWS CLI finds them (AWS_PROFILE, `aws sso login`, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) " +
				"and check them with `aws sts get-caller-identity`, or use the local stack (--stack .local/stack.json)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Nothing of the machine's AWS setup, and no instance role
			// asked for: the calls go to 127.0.0.1 or nowhere.
			none := filepath.Join(t.TempDir(), "none")
			for _, k := range []string{"AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
				"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"} {
				t.Setenv(k, tt.env[k])
			}
			t.Setenv("AWS_CONFIG_FILE", none)
			t.Setenv("AWS_SHARED_CREDENTIALS_FILE", none)
			t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
			code, out, errOut := runCLI(t, nil, deployed...)
			if code != tt.code || out != "" || errOut != tt.want {
				t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant exit %d and\n%s", code, out, errOut, tt.code, tt.want)
			}
		})
	}
}

// A write AWS refuses is listed by its line with what to do about it, not
// the SDK's words alone; the lines read before it are not lost.
func TestImportSaysWhatToDoAboutEachWriteAWSRefused(t *testing.T) {
	// A hand-written DynamoDB: moto cannot be told to deny one action.
	// Reads find nothing; every write is denied, as to a role that may
	// read the table but not write it.
	ddb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		if strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".GetItem") {
			_, _ = io.WriteString(w, "{}")
			return
		}
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"__type":"com.amazonaws.dynamodb.v20120810#AccessDeniedException",`+
			`"message":"User: arn:aws:sts::123456789012:assumed-role/ops/x is not authorized to perform: dynamodb:PutItem"}`)
	}))
	t.Cleanup(ddb.Close)
	stack := unreachableStack(t)
	b, err := os.ReadFile(stack)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stack, bytes.ReplaceAll(b, []byte("http://127.0.0.1:1"), []byte(ddb.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	csvFile := filepath.Join(t.TempDir(), "in.csv")
	if err := os.WriteFile(csvFile, []byte("user,project,role\nalice-1,p1,read\nbob-2,p1,write\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, nil, "admin", "import", csvFile, "--stack", stack)
	if code != exitcode.Failure {
		t.Errorf("exit %d, want 3", code)
	}
	for _, line := range []string{"2", "3"} {
		want := "line " + line + ": not written: DynamoDB denied the call (AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/ops/x " +
			"is not authorized to perform: dynamodb:PutItem); the command needs the permissions docs/operations.md \"Which stack\" lists"
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr does not say what to do about line %s:\n%s", line, errOut)
		}
	}
	if !strings.Contains(errOut, "2 of 2 writes failed (listed above), the others are done; run the same import again") {
		t.Errorf("stderr lacks the summary:\n%s", errOut)
	}
}

func TestImportLinesAreNumberedAsInTheFile(t *testing.T) {
	read := broker.StringAttr("read")
	tests := []struct {
		name, format, data string
		want               []string // line: pk / sk, or line: error
	}{
		{"CSV counts the header, comments and quoted line breaks", "csv",
			"project,user,role\n# comment\np1,alice-1,read\n\"p\n2\",bob-2,\np3,carol-3\n",
			[]string{"3: USER#alice-1 / PROJECT#p1 put", "4: USER#bob-2 / PROJECT#p\n2 put", "6: 2 fields, the header has 3"}},
		{"JSON lines skip blank lines and keep counting", "jsonl",
			"\n{\"user\":\"alice-1\",\"project\":\"p1\",\"role\":\"read\"}\n\n{\"op\":\"delete\",\"project\":\"p1\",\"bucket\":\"lake\"}\n",
			[]string{"2: USER#alice-1 / PROJECT#p1 put", "4: PROJECT#p1 / BUCKET#lake delete"}},
		{"a field that must be a string is refused", "jsonl", `{"user":7,"project":"p1"}`,
			[]string{`1: field "user" must be a string`}},
		{"CSV carries a membership's expiry, the column in any case", "csv", "user,project,ExpiresAt\nalice-1,p1,2026-12-31T18:00:00Z\nbob-2,p1,\n",
			[]string{"2: USER#alice-1 / PROJECT#p1 put until 2026-12-31T18:00:00Z", "3: USER#bob-2 / PROJECT#p1 put"}},
		{"JSON lines carry a membership's expiry", "jsonl", `{"user":"alice-1","project":"p1","expiresAt":"2026-12-31T18:00:00Z"}`,
			[]string{"1: USER#alice-1 / PROJECT#p1 put until 2026-12-31T18:00:00Z"}},
		{"a bucket record with an expiry is refused", "jsonl", `{"project":"p1","bucket":"lake","expiresAt":"2026-12-31T18:00:00Z"}`,
			[]string{"1: a bucket record has no expiresAt (memberships end, buckets do not)"}},
		{"a delete with an expiry is refused", "jsonl", `{"op":"delete","user":"alice-1","project":"p1","expiresAt":"2026-12-31T18:00:00Z"}`,
			[]string{`1: op "delete" takes the keys only: user and project, or project and bucket`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines, err := decodeImport([]byte(tt.data), tt.format)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range lines {
				switch {
				case l.err != nil:
					got = append(got, strconv.Itoa(l.op.line)+": "+l.err.Error())
				case l.op.put != nil:
					put := strconv.Itoa(l.op.line) + ": " + l.op.pk + " / " + l.op.sk + " put"
					if l.op.put.ExpiresAt.Present {
						put += " until " + l.op.put.ExpiresAt.S
					}
					got = append(got, put)
					if l.op.put.Role.Present && l.op.put.Role != read {
						t.Errorf("role %+v", l.op.put.Role)
					}
				default:
					got = append(got, strconv.Itoa(l.op.line)+": "+l.op.pk+" / "+l.op.sk+" delete")
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
		})
	}
}

func TestJSONValuesBecomeTheAttributesDynamoDBWouldHold(t *testing.T) {
	for raw, want := range map[string]broker.Attr{
		`"write"`: broker.StringAttr("write"),
		`""`:      broker.StringAttr(""),
		`null`:    {Present: true, Type: "NULL"},
		`1`:       {Present: true, Type: "N"},
		`false`:   {Present: true, Type: "BOOL"},
		`["a"]`:   {Present: true, Type: "L"},
		`{"a":1}`: {Present: true, Type: "M"},
	} {
		if got := jsonAttr(json.RawMessage(raw)); got != want {
			t.Errorf("%s: %+v, want %+v", raw, got, want)
		}
	}
}

func TestListingsAreValidInEveryFormatWhateverTheRowCount(t *testing.T) {
	type row struct {
		A string `json:"a"`
	}
	tests := []struct {
		name, format string
		n            int
		want         string
	}{
		{"no JSON row is an empty array", cli.FormatJSON, 0, "[]\n"},
		{"JSON rows are one array, a row per line", cli.FormatJSON, 2, "[\n{\"a\":\"x0\"},\n{\"a\":\"x1\"}\n]\n"},
		{"no CSV row still has its header", cli.FormatCSV, 0, "A\n"},
		{"CSV rows follow the header", cli.FormatCSV, 2, "A\nx0\nx1\n"},
		{"a table has its header", cli.FormatTable, 1, "A\nx0\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			r := cli.NewRows(&b, tt.format, "A")
			for i := range tt.n {
				v := "x" + strconv.Itoa(i)
				if err := r.Add(row{v}, v); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("got %q, want %q", b.String(), tt.want)
			}
		})
	}
}

func TestWhoCanReachesAFolderFromAboveAndBelow(t *testing.T) {
	tests := []struct {
		grant, asked string
		want         bool
	}{
		{"", "", true},
		{"", "raw/", true},
		{"raw/", "", true},
		{"raw/", "raw/2024/", true},
		{"raw/2024/", "raw/", true},
		{"raw/", "raw/", true},
		{"raw/", "rawdata/", false},
		{"raw/a/", "raw/b/", false},
	}
	for _, tt := range tests {
		if got := overlaps(tt.grant, tt.asked); got != tt.want {
			t.Errorf("overlaps(%q, %q) = %v, want %v", tt.grant, tt.asked, got, tt.want)
		}
	}
}
