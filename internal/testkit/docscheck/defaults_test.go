package docscheck_test

import (
	"bufio"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/credentials"
	"github.com/credbroker/credbroker/internal/envconf"
	"github.com/credbroker/credbroker/internal/localstack"
	"github.com/credbroker/credbroker/internal/projector"
	"github.com/credbroker/credbroker/internal/replay"
	"github.com/credbroker/credbroker/internal/revoker"
	"github.com/credbroker/credbroker/internal/samtemplate"
	"github.com/credbroker/credbroker/internal/testkit/docscheck"
)

// function is a function of the template and the reader of its
// environment.
type function struct {
	logicalID string
	read      func(getenv func(string) string) (any, error)
}

// functions are the template's, by the name the docs give them.
var functions = map[string]function{
	"credentials": {"CredentialsFunction", func(g func(string) string) (any, error) { return credentials.ConfigFromEnv(g) }},
	"projector":   {"ProjectorFunction", func(g func(string) string) (any, error) { return projector.ConfigFromEnv(g) }},
	"replay":      {"ReplayFunction", func(g func(string) string) (any, error) { return replay.ConfigFromEnv(g) }},
	"revoker":     {"RevokerFunction", func(g func(string) string) (any, error) { return revoker.ConfigFromEnv(g) }},
}

// samples are valid values of the variables the docs call required.
var samples = map[string]string{
	"CREDBROKER_POLICY_TABLE":       "policy",
	"CREDBROKER_MEMBERSHIP_TABLE":   "membership",
	"CREDBROKER_EVENT_BUS":          "audit",
	"CREDBROKER_BASE_ROLE_ARN":      "arn:aws:iam::123456789012:role/base",
	"CREDBROKER_USER_POOL_ID":       "eu-west-1_AbC123",
	"CREDBROKER_ALLOWED_CLIENT_IDS": "client1",
}

// row is a row of a table of the docs: where it is, the names in its first
// cell, and its cells.
type row struct {
	where string
	names []string
	cell  []string
}

// tables returns the rows of every table of the docs whose header is
// header, with the file and line of each.
func tables(t *testing.T, header ...string) []row {
	t.Helper()
	r, files := repo(t)
	var out []row
	for _, f := range files {
		if !strings.HasSuffix(f, ".md") {
			continue
		}
		for _, tb := range docscheck.Tables(read(t, r, f)) {
			if !slices.Equal(tb.Header, header) {
				continue
			}
			for i, cells := range tb.Rows {
				if len(cells) != len(header) {
					t.Fatalf("%s:%d: a row of %d cells in a table of %d columns", f, tb.Line+2+i, len(cells), len(header))
				}
				out = append(out, row{where: fmt.Sprintf("%s:%d", f, tb.Line+2+i), names: docscheck.Names(cells[0]), cell: cells})
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("no table with the header %q in the docs", header)
	}
	return out
}

// getenv reads env and records every name asked for.
func getenv(env map[string]string, asked map[string]bool) func(string) string {
	return func(name string) string {
		if asked != nil {
			asked[name] = true
		}
		return env[name]
	}
}

func TestDocsQuoteTheDefaults(t *testing.T) {
	t.Parallel()
	t.Run("template parameters", testTemplateParameters)
	t.Run("environment of the functions", testFunctionEnvironment)
	t.Run("environment of make run", testLocalStackEnvironment)
	t.Run("make load's variables", testMakeVariables)
}

func testTemplateParameters(t *testing.T) {
	tpl, err := samtemplate.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	stack, err := tpl.Stack(samtemplate.Env{})
	if err != nil {
		t.Fatalf("the template's defaults: %v", err)
	}
	documented := map[string]bool{}
	for _, r := range tables(t, "parameter", "default", "meaning") {
		for _, name := range r.names[:1] {
			documented[name] = true
			v, ok := stack.Param(name)
			if !ok {
				t.Errorf("%s: the template has no parameter %s", r.where, name)
				continue
			}
			got := fmt.Sprint(v)
			if list, ok := v.([]any); ok {
				got = strings.Trim(strings.Join(strings.Fields(fmt.Sprint(list...)), ","), "[]")
			}
			want, ok := docscheck.Literal(r.cell[1])
			if !ok {
				t.Errorf("%s: the default of %s is %q, not a value in backticks", r.where, name, r.cell[1])
				continue
			}
			if got != want {
				t.Errorf("%s: the docs say %s defaults to %q, template.yaml says %q", r.where, name, want, got)
			}
		}
	}
	for name := range tpl.Section("Parameters") {
		if !documented[name] {
			t.Errorf("template parameter %s is missing from the docs' parameter table", name)
		}
	}
}

func testFunctionEnvironment(t *testing.T) {
	// documented[function][variable] is the default cell.
	documented := map[string]map[string]row{}
	for name := range functions {
		documented[name] = map[string]row{}
	}
	for _, r := range tables(t, "variable", "function", "default", "meaning") {
		var fns []string
		if r.cell[1] == "all" {
			fns = slices.Sorted(maps.Keys(functions))
		} else {
			for _, f := range strings.FieldsFunc(r.cell[1], func(c rune) bool { return c == ',' || c == ' ' }) {
				if f == "and" {
					continue
				}
				if _, ok := functions[f]; !ok {
					t.Errorf("%s: no function %q", r.where, f)
					continue
				}
				fns = append(fns, f)
			}
		}
		for _, f := range fns {
			for _, v := range r.names {
				if _, dup := documented[f][v]; dup {
					t.Errorf("%s: %s of %s documented twice", r.where, v, f)
				}
				documented[f][v] = r
			}
		}
	}

	tpl, err := samtemplate.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	// The stack's resources get values the functions accept.
	stack, err := tpl.Stack(samtemplate.Env{
		Refs:  map[string]string{"UserPool": samples["CREDBROKER_USER_POOL_ID"], "UserPoolClient": samples["CREDBROKER_ALLOWED_CLIENT_IDS"]},
		Attrs: map[string]string{"BaseRole.Arn": samples["CREDBROKER_BASE_ROLE_ARN"]},
	})
	if err != nil {
		t.Fatal(err)
	}
	resources, err := tpl.Resources()
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range resources {
		if res.Type == "AWS::Serverless::Function" && !slices.ContainsFunc(slices.Collect(maps.Values(functions)), func(f function) bool {
			return f.logicalID == res.LogicalID
		}) {
			t.Errorf("template function %s is not in this test's functions: add it, and its environment to the docs", res.LogicalID)
		}
	}

	for _, name := range slices.Sorted(maps.Keys(functions)) {
		fn, docs := functions[name], documented[name]
		t.Run(name, func(t *testing.T) {
			base := map[string]string{}
			for v, r := range docs {
				if r.cell[2] == "—" {
					s, ok := samples[v]
					if !ok {
						t.Fatalf("%s: %s is required: give it a sample value in this test", r.where, v)
					}
					base[v] = s
				}
			}
			asked := map[string]bool{}
			want, err := fn.read(getenv(base, asked))
			if err != nil {
				t.Fatalf("the documented required variables are not enough: %v", err)
			}
			if diff := cmp.Diff(slices.Sorted(maps.Keys(docs)), slices.Sorted(maps.Keys(asked))); diff != "" {
				t.Errorf("the variables %s reads, and those the docs list for it (-docs +code):\n%s", name, diff)
			}
			for _, v := range slices.Sorted(maps.Keys(docs)) {
				r := docs[v]
				switch lit, ok := docscheck.Literal(r.cell[2]); {
				case r.cell[2] == "—":
					env := maps.Clone(base)
					delete(env, v)
					if _, err := fn.read(getenv(env, nil)); err == nil || !strings.Contains(err.Error(), v) {
						t.Errorf("%s: the docs say %s requires %s, but it runs without it (%v)", r.where, name, v, err)
					}
				case ok:
					env := maps.Clone(base)
					env[v] = lit
					got, err := fn.read(getenv(env, nil))
					if err != nil {
						t.Errorf("%s: %s refuses %s=%q, the default the docs give: %v", r.where, name, v, lit, err)
					} else if !reflect.DeepEqual(got, want) {
						t.Errorf("%s: the docs say %s defaults %s to %q, but setting it to that changes its configuration:\nunset: %+v\nset:   %+v", r.where, name, v, lit, want, got)
					}
				}
			}

			res, ok, err := stack.Resource(fn.logicalID)
			if err != nil || !ok {
				t.Fatalf("template function %s: %v", fn.logicalID, err)
			}
			envProp, _ := res.Properties["Environment"].(map[string]any)
			vars, _ := envProp["Variables"].(map[string]any)
			fromTemplate := map[string]string{}
			for v, val := range vars {
				fromTemplate[v] = fmt.Sprint(val)
				if _, ok := docs[v]; !ok {
					t.Errorf("template.yaml sets %s on %s, which the docs do not list for it", v, fn.logicalID)
				}
			}
			if _, err := fn.read(getenv(fromTemplate, nil)); err != nil {
				t.Errorf("%s refuses the environment template.yaml gives it: %v", name, err)
			}
		})
	}
}

func testLocalStackEnvironment(t *testing.T) {
	ports := map[string]int{
		"MOTO_PORT":   localstack.DefaultMotoPort,
		"PORT":        localstack.DefaultPort,
		"WEB_PORT":    localstack.DefaultWebPort,
		"LAMBDA_PORT": localstack.DefaultLambdaPort,
	}
	seen := map[string]bool{}
	for _, r := range tables(t, "variable", "default", "meaning") {
		name := r.names[0]
		seen[name] = true
		lit, ok := docscheck.Literal(r.cell[1])
		switch port, isPort := ports[name]; {
		case isPort:
			if !ok || lit != strconv.Itoa(port) {
				t.Errorf("%s: the docs say %s defaults to %s, the local stack uses %d", r.where, name, r.cell[1], port)
			}
		case name == "CREDBROKER_LOG_LEVEL":
			var level slog.Level
			if err := level.UnmarshalText([]byte(lit)); err != nil || !ok {
				t.Errorf("%s: the default of CREDBROKER_LOG_LEVEL, %q, is not a level", r.where, r.cell[1])
			} else if got := envconf.New(func(string) string { return "" }).LogLevel(); got != level {
				t.Errorf("%s: the docs say CREDBROKER_LOG_LEVEL defaults to %s, envconf to %s", r.where, level, got)
			}
		case ok:
			t.Errorf("%s: %s quotes the default %q, which this test cannot check: add it here", r.where, name, lit)
		}
	}
	for name := range ports {
		if !seen[name] {
			t.Errorf("%s is missing from the docs' table of make run's environment", name)
		}
	}
}

func testMakeVariables(t *testing.T) {
	r, _ := repo(t)
	f, err := os.Open(filepath.Join(r.Root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	makeVars := map[string]string{}
	assign := regexp.MustCompile(`^([A-Z_]+)\s*\?=\s*(.*?)\s*$`)
	for sc := bufio.NewScanner(f); sc.Scan(); {
		if m := assign.FindStringSubmatch(sc.Text()); m != nil {
			makeVars[m[1]] = m[2]
		}
	}
	for _, row := range tables(t, "make variable", "default", "meaning") {
		name := row.names[0]
		got, ok := makeVars[name]
		if !ok {
			t.Errorf("%s: the Makefile has no variable %s", row.where, name)
			continue
		}
		if lit, isLit := docscheck.Literal(row.cell[1]); isLit && lit != got {
			t.Errorf("%s: the docs say %s defaults to %q, the Makefile to %q", row.where, name, lit, got)
		} else if !isLit && got != "" {
			t.Errorf("%s: the docs give %s no value (%q), the Makefile %q", row.where, name, row.cell[1], got)
		}
	}
}

func TestTheDocsListEveryAlarm(t *testing.T) {
	t.Parallel()
	tpl, err := samtemplate.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	resources, err := tpl.Resources()
	if err != nil {
		t.Fatal(err)
	}
	var inTemplate []string
	for _, res := range resources {
		if res.Type == "AWS::CloudWatch::Alarm" {
			inTemplate = append(inTemplate, res.LogicalID)
		}
	}
	var documented []string
	for _, r := range tables(t, "alarm", "fires when", "what to do") {
		documented = append(documented, r.names...)
	}
	slices.Sort(documented)
	if diff := cmp.Diff(inTemplate, documented); diff != "" {
		t.Errorf("the alarms of template.yaml and of docs/operations.md \"Alarms\" (-template +docs):\n%s", diff)
	}
}
