package samtemplate_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/samtemplate"
)

func mustLoad(t *testing.T) *samtemplate.Template {
	t.Helper()
	tpl, err := samtemplate.LoadDefault()
	if err != nil {
		t.Fatalf("load template.yaml: %v", err)
	}
	return tpl
}

func mustParse(t *testing.T, text string) *samtemplate.Template {
	t.Helper()
	tpl, err := samtemplate.Parse([]byte(text))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return tpl
}

func TestShortTagsBecomeLongFormIntrinsics(t *testing.T) {
	tpl := mustParse(t, `
Conditions:
  C: !Equals [!Ref P, ""]
Resources:
  R:
    Type: Custom::Thing
    Condition: C
    Properties:
      Ref: !Ref Other
      Att: !GetAtt Table.StreamArn
      AttList: !GetAtt [Table, Arn]
      Sub: !Sub arn:${AWS::Partition}:s3:::*
      SubList: !Sub ["${A}-x", {A: !Ref P}]
      If: !If [C, true, !Ref AWS::NoValue]
      Join: !Join [",", !Ref List]
      Cond: !Condition C
      Plain: {n: 3, b: true, s: "true"}
`)
	r, err := tpl.Resource("R")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"Ref":     map[string]any{"Ref": "Other"},
		"Att":     map[string]any{"Fn::GetAtt": []any{"Table", "StreamArn"}},
		"AttList": map[string]any{"Fn::GetAtt": []any{"Table", "Arn"}},
		"Sub":     map[string]any{"Fn::Sub": "arn:${AWS::Partition}:s3:::*"},
		"SubList": map[string]any{"Fn::Sub": []any{"${A}-x", map[string]any{"A": map[string]any{"Ref": "P"}}}},
		"If":      map[string]any{"Fn::If": []any{"C", true, map[string]any{"Ref": "AWS::NoValue"}}},
		"Join":    map[string]any{"Fn::Join": []any{",", map[string]any{"Ref": "List"}}},
		"Cond":    map[string]any{"Condition": "C"},
		"Plain":   map[string]any{"n": 3, "b": true, "s": "true"},
	}
	if diff := cmp.Diff(want, r.Properties); diff != "" {
		t.Errorf("properties (-want +got):\n%s", diff)
	}
	if r.Type != "Custom::Thing" || r.Condition != "C" {
		t.Errorf("Type, Condition = %q, %q; want Custom::Thing, C", r.Type, r.Condition)
	}
	wantCond := map[string]any{"C": map[string]any{"Fn::Equals": []any{map[string]any{"Ref": "P"}, ""}}}
	if diff := cmp.Diff(wantCond, tpl.Section("Conditions")); diff != "" {
		t.Errorf("conditions (-want +got):\n%s", diff)
	}
}

func TestParseRejectsBrokenTemplates(t *testing.T) {
	for _, tc := range []struct{ name, text string }{
		{"template without resources is rejected", "Parameters: {}\n"},
		{"non-mapping template is rejected", "- a\n- b\n"},
		{"GetAtt without attribute is rejected", "Resources:\n  R:\n    Type: X\n    Properties: {A: !GetAtt Table}\n"},
		{"invalid YAML is rejected", "Resources: [\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := samtemplate.Parse([]byte(tc.text))
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			if k := broker.KindOf(err); k != broker.Internal {
				t.Errorf("kind = %v, want internal", k)
			}
		})
	}
}

func TestFunctionMergesGlobalsLikeSAM(t *testing.T) {
	tpl := mustParse(t, `
Globals:
  Function:
    Runtime: provided.al2023
    Timeout: 30
    Layers: [a]
    Environment: {Variables: {CREDBROKER_LOG_LEVEL: INFO, SHARED: g}}
    LoggingConfig: {LogFormat: JSON, ApplicationLogLevel: !Ref LogLevel}
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Timeout: 900
      Layers: [b]
      Environment: {Variables: {SHARED: local, OWN: x}}
      LoggingConfig: {ApplicationLogLevel: !Ref Other, LogGroup: !Ref G}
  NotFn:
    Type: AWS::SQS::Queue
`)
	fn, err := tpl.Function("Fn")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"Runtime":     "provided.al2023",
		"Timeout":     900,
		"Layers":      []any{"a", "b"},
		"Environment": map[string]any{"Variables": map[string]any{"CREDBROKER_LOG_LEVEL": "INFO", "SHARED": "local", "OWN": "x"}},
		"LoggingConfig": map[string]any{
			"LogFormat":           "JSON",
			"ApplicationLogLevel": map[string]any{"Ref": "Other"},
			"LogGroup":            map[string]any{"Ref": "G"},
		},
	}
	if diff := cmp.Diff(want, fn.Properties); diff != "" {
		t.Errorf("merged properties (-want +got):\n%s", diff)
	}
	if _, err := tpl.Function("NotFn"); broker.KindOf(err) != broker.Invalid {
		t.Errorf("Function(NotFn) error = %v, want an invalid error", err)
	}
}

func TestResourceLookupErrors(t *testing.T) {
	tpl := mustParse(t, `
Resources:
  Queue: {Type: AWS::SQS::Queue}
  Indexed:
    Type: AWS::DynamoDB::Table
    Properties:
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      GlobalSecondaryIndexes: []
  NoKeys:
    Type: AWS::DynamoDB::Table
    Properties: {BillingMode: PAY_PER_REQUEST}
`)
	for _, tc := range []struct {
		name string
		call func() error
		want broker.Kind
	}{
		{"missing resource is not found", func() error { _, err := tpl.Resource("Nope"); return err }, broker.NotFound},
		{"a queue is not a table", func() error { _, err := tpl.Table("Queue"); return err }, broker.Invalid},
		{"a table with indexes is refused rather than half-translated", func() error { _, err := tpl.Table("Indexed"); return err }, broker.Internal},
		{"a table without keys is refused", func() error { _, err := tpl.Table("NoKeys"); return err }, broker.Internal},
		{"a template without a base role has no base role policy", func() error { _, err := tpl.BaseRolePolicy(); return err }, broker.NotFound},
		{"a template without a client has no auth flows", func() error { _, err := tpl.UserPoolClientAuthFlows(); return err }, broker.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if got := broker.KindOf(err); err == nil || got != tc.want {
				t.Errorf("error = %v (kind %v), want kind %v", err, got, tc.want)
			}
		})
	}
}

func TestLoadDefaultWalksUpToTheModuleRoot(t *testing.T) {
	root := t.TempDir()
	deep := filepath.Join(root, "a", "b")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{
		"go.mod":        "module example.com/x\n",
		"template.yaml": "Resources:\n  Only: {Type: AWS::SQS::Queue}\n",
	} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(deep)
	tpl, err := samtemplate.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tpl.Path(), filepath.Join(root, "template.yaml"); got != want {
		t.Errorf("Path = %q, want %q", got, want)
	}
	if _, err := tpl.Resource("Only"); err != nil {
		t.Errorf("Resource(Only): %v", err)
	}
}

func TestLoadDefaultFailsOutsideAModule(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if _, err := os.Stat("/go.mod"); err == nil {
		t.Fatal("the file system root holds a go.mod; this test cannot run here")
	}
	if _, err := samtemplate.LoadDefault(); err == nil {
		t.Fatal("LoadDefault succeeded outside a module")
	}
}

func TestRealTemplateTables(t *testing.T) {
	tpl := mustLoad(t)
	type table struct {
		Keys, Attrs     []string
		Billing, Stream string
		TTL             string
	}
	// pk/sk and the stream view type of MembershipTable are the contract.
	want := map[string]table{
		"MembershipTable": {Keys: []string{"pk HASH", "sk RANGE"}, Attrs: []string{"pk S", "sk S"}, Billing: "PAY_PER_REQUEST", Stream: "NEW_AND_OLD_IMAGES"},
		"PolicyTable":     {Keys: []string{"pk HASH", "sk RANGE"}, Attrs: []string{"pk S", "sk S"}, Billing: "PAY_PER_REQUEST", TTL: "expiresAt"},
	}
	for id, w := range want {
		t.Run(id, func(t *testing.T) {
			def, err := tpl.Table(id)
			if err != nil {
				t.Fatal(err)
			}
			got := table{Billing: string(def.BillingMode), Stream: string(def.StreamViewType), TTL: def.TTLAttribute}
			for _, k := range def.KeySchema {
				got.Keys = append(got.Keys, *k.AttributeName+" "+string(k.KeyType))
			}
			for _, a := range def.AttributeDefinitions {
				got.Attrs = append(got.Attrs, *a.AttributeName+" "+string(a.AttributeType))
			}
			if diff := cmp.Diff(w, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			in := def.CreateTableInput("t1")
			if *in.TableName != "t1" || in.BillingMode != def.BillingMode || in.ProvisionedThroughput != nil {
				t.Errorf("CreateTableInput = %+v", in)
			}
			if hasStream := in.StreamSpecification != nil; hasStream != (w.Stream != "") {
				t.Errorf("CreateTableInput stream spec = %+v, want stream %q", in.StreamSpecification, w.Stream)
			}
		})
	}
}

func TestLocalBaseRolePolicyIsTheFiveContractActionsOverHTTPS(t *testing.T) {
	doc, err := mustLoad(t).BaseRolePolicy()
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Version   string
		Statement []struct {
			Sid       string
			Effect    string
			Action    any
			Resource  []string
			Condition map[string]map[string]string
		}
	}
	if err := json.Unmarshal([]byte(doc), &got); err != nil {
		t.Fatalf("policy is not the expected JSON shape: %v\n%s", err, doc)
	}
	if strings.Contains(doc, "${") || strings.Contains(doc, "<") {
		t.Errorf("policy has unresolved values: %s", doc)
	}
	if got.Version != "2012-10-17" || len(got.Statement) != 2 {
		t.Fatalf("policy = %s, want version 2012-10-17 and two statements", doc)
	}
	// The local stack reaches every bucket of moto's account: listing on
	// buckets, object actions on objects.
	want := map[string][]string{
		"s3:ListBucket": {"arn:*:s3:::*"},
		"s3:AbortMultipartUpload,s3:DeleteObject,s3:GetObject,s3:PutObject": {"arn:*:s3:::*/*"},
	}
	wantCondition := map[string]map[string]string{
		"Bool":         {"aws:SecureTransport": "true"},
		"StringEquals": {"s3:ResourceAccount": samtemplate.LocalAccountID},
	}
	have := map[string][]string{}
	for _, st := range got.Statement {
		acts := strs(st.Action)
		slices.Sort(acts)
		have[strings.Join(acts, ",")] = st.Resource
		if st.Effect != "Allow" {
			t.Errorf("statement %s: Effect %s", st.Sid, st.Effect)
		}
		if diff := cmp.Diff(wantCondition, st.Condition); diff != "" {
			t.Errorf("statement %s condition (-want +got):\n%s", st.Sid, diff)
		}
	}
	if diff := cmp.Diff(want, have); diff != "" {
		t.Errorf("actions and resources (-want +got):\n%s", diff)
	}
}

func TestLocalUserPoolClientAllowsThePasswordFlowsOfTheContract(t *testing.T) {
	flows, err := mustLoad(t).UserPoolClientAuthFlows()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ALLOW_USER_PASSWORD_AUTH", "ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"} {
		if !slices.Contains(flows, f) {
			t.Errorf("ExplicitAuthFlows %v lacks %s", flows, f)
		}
	}
}

// The makefile build of every function calls build-<LogicalId> in the
// Makefile next to the template (ContextPath ".").
func TestMakefileHasABuildTargetForEveryFunction(t *testing.T) {
	tpl := mustLoad(t)
	mk, err := os.ReadFile(filepath.Join(filepath.Dir(tpl.Path()), "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := tpl.Resources()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range rs {
		if r.Type != "AWS::Serverless::Function" {
			continue
		}
		n++
		if !strings.Contains(string(mk), "\nbuild-"+r.LogicalID+":") {
			t.Errorf("Makefile has no build-%s target", r.LogicalID)
		}
		// SAM's artifacts directory is a path under the project, which may
		// hold spaces.
		for l := range strings.Lines(string(mk)) {
			if strings.HasPrefix(l, "build-"+r.LogicalID+":") && !strings.Contains(l, `-o "$(ARTIFACTS_DIR)/bootstrap"`) {
				t.Errorf("Makefile target build-%s does not write to the quoted \"$(ARTIFACTS_DIR)/bootstrap\": %s", r.LogicalID, l)
			}
		}
		if r.Metadata["ContextPath"] != "." || r.Metadata["ProjectRootDirectory"] != "." {
			t.Errorf("%s: Metadata %v: the Makefile at the root builds from the module root; want ContextPath and ProjectRootDirectory \".\"", r.LogicalID, r.Metadata)
		}
	}
	if n == 0 {
		t.Fatal("template has no functions")
	}
	// Without build_in_source, sam build copies the whole project (build/
	// and .local/ included) once per function before running make.
	samconfig, err := os.ReadFile(filepath.Join(filepath.Dir(tpl.Path()), "samconfig.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^\[default\.build\.parameters\]\n(?:[^\[].*\n|\n)*?build_in_source = true$`).Match(samconfig) {
		t.Errorf("samconfig.toml does not set build_in_source = true in [default.build.parameters]:\n%s", samconfig)
	}
}

func ExampleTemplate_Table() {
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
	for _, k := range def.KeySchema {
		fmt.Println(*k.AttributeName, k.KeyType)
	}
	fmt.Println("stream:", def.StreamViewType)
	// Output:
	// pk HASH
	// sk RANGE
	// stream: NEW_AND_OLD_IMAGES
}
