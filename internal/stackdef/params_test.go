package stackdef_test

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
	"pgregory.net/rapid"

	"github.com/credbroker/credbroker/internal/endpoint"
	"github.com/credbroker/credbroker/internal/stackdef"
)

// functionEnv is a valid environment of the credential function with one
// variable replaced.
func functionEnv(name, value string) func(string) string {
	env := map[string]string{
		"POLICY_TABLE": "p", "BASE_ROLE_ARN": "arn:aws:iam::123456789012:role/base", "USER_POOL_ID": "us-east-1_AbC",
		"ALLOWED_CLIENT_IDS": "abc", "AUDIT_BUS_NAME": "bus", "AWS_REGION": "us-east-1",
	}
	env[name] = value
	return func(k string) string { return env[k] }
}

// functionRefuses reports whether the credential function refuses to start
// because of the named variable.
func functionRefuses(name, value string) bool {
	_, err := endpoint.ConfigFromEnv(functionEnv(name, value))
	return err != nil && strings.Contains(err.Error(), name)
}

// A deploy must not succeed only for the function to refuse to start: every
// value the function refuses, CloudFormation refuses first.
func TestTemplateRefusesThePoolIdsTheFunctionRefuses(t *testing.T) {
	tpl := mustLoad(t)
	pieces := []string{"us", "eu", "ap", "cn", "u", "-", "east", "west", "gov", "south", "1", "2", "12", "_", "AbC", "9x", "Z", ".", " ", "é"}
	rapid.Check(t, func(rt *rapid.T) {
		id := strings.Join(rapid.SliceOfN(rapid.SampledFrom(pieces), 1, 8).Draw(rt, "pieces"), "")
		_, err := tpl.Stack(stackdef.Env{Params: map[string]string{"ExistingUserPoolId": id, "ExistingUserPoolClientIds": "abc"}})
		templateAccepts := err == nil
		functionAccepts := !functionRefuses("USER_POOL_ID", id)
		if templateAccepts && !functionAccepts {
			rt.Fatalf("CloudFormation accepts ExistingUserPoolId %q, the function refuses it", id)
		}
		// The function trims the variable; the template takes no blanks.
		if strings.TrimSpace(id) == id && functionAccepts && !templateAccepts {
			rt.Fatalf("the template refuses ExistingUserPoolId %q that the function accepts: %v", id, err)
		}
	})
}

func TestTemplateRefusesTheNumbersTheFunctionRefuses(t *testing.T) {
	tpl := mustLoad(t)
	for _, tc := range []struct{ param, variable string }{
		{"CredentialCacheSize", "CREDENTIAL_CACHE_SIZE"},
		{"SessionDurationSeconds", "SESSION_DURATION_SECONDS"},
	} {
		def := mapOf(tpl.Section("Parameters")[tc.param])
		lo, _ := def["MinValue"].(int)
		hi, ok := def["MaxValue"].(int)
		if !ok {
			t.Errorf("%s has no MaxValue", tc.param)
			continue
		}
		for _, n := range []int{lo - 1, lo, lo + 1, hi - 1, hi, hi + 1, 1 << 30} {
			v := strconv.Itoa(n)
			_, err := tpl.Stack(stackdef.Env{Params: map[string]string{tc.param: v}})
			if templateAccepts, functionAccepts := err == nil, !functionRefuses(tc.variable, v); templateAccepts != functionAccepts {
				t.Errorf("%s=%s: CloudFormation accepts: %v, the function (%s) accepts: %v", tc.param, v, templateAccepts, tc.variable, functionAccepts)
			}
		}
	}
}

func TestParametersAcceptWhatDeployersNeedAndNothingElse(t *testing.T) {
	tpl := mustLoad(t)
	for _, tc := range []struct {
		param    string
		accepted []string
		refused  []string
	}{
		{
			param:    "VerifySchedule",
			accepted: []string{"cron(17 3 * * ? *)", "cron(0 */6 ? * MON-FRI *)", "rate(1 day)", "rate(12 hours)"},
			refused:  []string{"", "daily", "cron(17 3 * * ?)", "cron(17 3 * * ? * *)", "rate(0 days)", "rate(1 week)", "at(2026-01-01T00:00:00)"},
		},
		{
			param:    "AllowedOrigins",
			accepted: []string{"", "https://app.example.com", "https://a.example.com,https://b.example.com:8443", "http://localhost:3000", "http://127.0.0.1:5173"},
			refused:  []string{"*", "http://app.example.com", "https://*.example.com", "https://app.example.com/", "https://a.example.com, https://b.example.com", "https://a.example.com,"},
		},
		{
			param:    "AllowedBuckets",
			accepted: []string{"", "*", "acme-lake-*", "acme-lake-*,shared-exports", "team-??-raw"},
			refused:  []string{"acme/*", "acme-*/raw", "a,,b", "acme,", "Acme", "acme lake", "${aws:username}"},
		},
		{
			param:    "ExistingUserPoolClientIds",
			accepted: []string{"", "4p0i2m5tq8o3lfkoa7n1abcde", "abc,def"},
			refused:  []string{"abc def", "abc,de-f"},
		},
		{
			param:    "AlarmEmail",
			accepted: []string{"", "ops@example.com"},
			refused:  []string{"ops", "ops@example", "a@b.co,c@d.co"},
		},
		{
			param:    "CredentialsReservedConcurrency",
			accepted: []string{"0", "50"},
			refused:  []string{"-1", "many"},
		},
		{
			param:    "AuditRetentionDays",
			accepted: []string{"90", "365", "3653"},
			refused:  []string{"30", "0", "366"},
		},
	} {
		t.Run(tc.param, func(t *testing.T) {
			for _, v := range tc.accepted {
				if _, err := tpl.Stack(stackdef.Env{Params: map[string]string{tc.param: v}}); err != nil {
					t.Errorf("%s=%q refused: %v", tc.param, v, err)
				}
			}
			for _, v := range tc.refused {
				if _, err := tpl.Stack(stackdef.Env{Params: map[string]string{tc.param: v}}); err == nil {
					t.Errorf("%s=%q accepted", tc.param, v)
				}
			}
		})
	}
}

func TestRulesRefuseContradictoryParameters(t *testing.T) {
	tpl := mustLoad(t)
	for _, tc := range []struct {
		name   string
		params map[string]string
	}{
		{"an existing pool without client ids is refused", map[string]string{"ExistingUserPoolId": "eu-west-1_AbC"}},
		{"an existing pool with an empty client id is refused", map[string]string{"ExistingUserPoolId": "eu-west-1_AbC", "ExistingUserPoolClientIds": "abc,"}},
		{"an alarm email with an existing topic is refused", map[string]string{"AlarmTopicArn": "arn:aws:sns:us-east-1:123456789012:ops", "AlarmEmail": "ops@example.com"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tpl.Stack(stackdef.Env{Params: tc.params}); err == nil {
				t.Errorf("parameters %v accepted", tc.params)
			}
		})
	}
}

// Optional settings are absent unless asked for.
func TestOptionalSettingsFollowTheirParameters(t *testing.T) {
	tpl := mustLoad(t)
	for _, tc := range []struct {
		name     string
		params   map[string]string
		resource string
		path     []string
		want     any
	}{
		{"no CORS by default", nil, "HttpApi", []string{"CorsConfiguration"}, nil},
		{
			"CORS for the given origins", map[string]string{"AllowedOrigins": "https://a.example.com,https://b.example.com"},
			"HttpApi", []string{"CorsConfiguration", "AllowOrigins"}, []any{"https://a.example.com", "https://b.example.com"},
		},
		{"no concurrency cap by default", nil, "CredentialsFunction", []string{"ReservedConcurrentExecutions"}, nil},
		{"a concurrency cap when asked", map[string]string{"CredentialsReservedConcurrency": "50"}, "CredentialsFunction", []string{"ReservedConcurrentExecutions"}, "50"},
		{"no password sign-in by default", nil, "UserPoolClient", []string{"ExplicitAuthFlows"},
			[]any{"ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := tpl.Stack(stackdef.Env{Params: tc.params})
			if err != nil {
				t.Fatal(err)
			}
			r, _, err := s.Resource(tc.resource)
			if err != nil {
				t.Fatal(err)
			}
			var got any = r.Properties
			for _, k := range tc.path {
				got = mapOf(got)[k]
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s.%s (-want +got):\n%s", tc.resource, strings.Join(tc.path, "."), diff)
			}
		})
	}
}

var subVar = regexp.MustCompile(`\$\{([A-Za-z0-9:.]+)\}`)

// A parameter nothing reads misleads whoever sets it; every parameter is
// also offered in one group of `sam deploy --guided`'s console form.
func TestEveryParameterIsUsedAndGrouped(t *testing.T) {
	tpl := mustLoad(t)
	used := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if s, ok := e.(string); ok && k == "Ref" {
					used[s] = true
				}
				if s, ok := e.(string); ok && k == "Fn::Sub" {
					for _, m := range subVar.FindAllStringSubmatch(s, -1) {
						used[m[1]] = true
					}
				}
				if l, ok := e.([]any); ok && k == "Fn::Sub" && len(l) > 0 {
					if s, ok := l[0].(string); ok {
						for _, m := range subVar.FindAllStringSubmatch(s, -1) {
							used[m[1]] = true
						}
					}
				}
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	for _, section := range []string{"Conditions", "Resources", "Globals", "Outputs"} {
		walk(tpl.Section(section))
	}
	grouped := map[string]int{}
	groups := mapOf(tpl.Section("Metadata")["AWS::CloudFormation::Interface"])["ParameterGroups"]
	for _, g := range list(groups) {
		for _, p := range strs(mapOf(g)["Parameters"]) {
			grouped[p]++
		}
	}
	for _, name := range slices.Sorted(maps.Keys(tpl.Section("Parameters"))) {
		if !used[name] {
			t.Errorf("parameter %s is never used", name)
		}
		if grouped[name] != 1 {
			t.Errorf("parameter %s is in %d parameter groups, want 1", name, grouped[name])
		}
	}
}

// The parameter sets cfn-lint checks besides the defaults: SAM translates
// the template with the parameters' defaults, so each set is linted as a
// copy of the template with those defaults.
var lintParameterSets = map[string]map[string]string{
	"existing pool, clients, topic, buckets, origins, cap": {
		"ExistingUserPoolId":             "eu-west-1_AbC123",
		"ExistingUserPoolClientIds":      "4p0i2m5tq8o3lfkoa7n1abcde,7f3kq2m1n0b9v8c7x6z5lkjhg",
		"AlarmTopicArn":                  "arn:aws:sns:us-east-1:123456789012:ops",
		"AllowedBuckets":                 "acme-lake-*,shared-exports",
		"AllowedOrigins":                 "https://app.example.com,http://localhost:3000",
		"CredentialsReservedConcurrency": "50",
	},
	"created pool with more clients, email, password sign-in": {
		"ExistingUserPoolClientIds": "4p0i2m5tq8o3lfkoa7n1abcde",
		"AlarmEmail":                "ops@example.com",
		"AllowPasswordAuth":         "true",
		"AllowedBuckets":            "*",
		"DeletionProtection":        "false",
		"LogLevel":                  "DEBUG",
		"VerifySchedule":            "rate(12 hours)",
		"AuditRetentionDays":        "731",
	},
}

func TestTemplatePassesCfnLintWithOtherParameters(t *testing.T) {
	bin, err := exec.LookPath("cfn-lint")
	if err != nil {
		t.Fatal("cfn-lint is not on PATH (pip install cfn-lint); template.yaml must lint clean")
	}
	tpl := mustLoad(t)
	orig, err := os.ReadFile(tpl.Path())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range slices.Sorted(maps.Keys(lintParameterSets)) {
		params := lintParameterSets[name]
		t.Run(name, func(t *testing.T) {
			if _, err := tpl.Stack(stackdef.Env{Params: params}); err != nil {
				t.Fatalf("not a valid parameter set: %v", err)
			}
			variant, err := withDefaults(orig, params)
			if err != nil {
				t.Fatal(err)
			}
			// The copy is the template with these defaults and nothing else.
			copied := mustParse(t, string(variant))
			for _, section := range []string{"Conditions", "Rules", "Globals", "Resources", "Outputs"} {
				if diff := cmp.Diff(tpl.Section(section), copied.Section(section)); diff != "" {
					t.Fatalf("the copy's %s differ (-template +copy):\n%s", section, diff)
				}
			}
			vs, err := copied.Stack(stackdef.Env{})
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range params {
				if got, _ := vs.Param(k); scalar(got) != want {
					t.Errorf("the copy's %s defaults to %v, want %s", k, got, want)
				}
			}
			path := filepath.Join(t.TempDir(), "template.yaml")
			if err := os.WriteFile(path, variant, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.CommandContext(t.Context(), bin, path).CombinedOutput()
			if err != nil {
				t.Fatalf("cfn-lint with %v: %v\n%s", params, err, out)
			}
		})
	}
}

func scalar(v any) string {
	if l, ok := v.([]any); ok {
		return strings.Join(strs(l), ",")
	}
	return fmt.Sprint(v)
}

// withDefaults returns the template with the given parameters' defaults,
// everything else (tags included) as it is.
func withDefaults(text []byte, params map[string]string) ([]byte, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(text, &root); err != nil {
		return nil, err
	}
	doc := root.Content[0]
	var defs *yaml.Node
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value == "Parameters" {
			defs = doc.Content[i+1]
		}
	}
	if defs == nil {
		return nil, fmt.Errorf("no Parameters")
	}
	set := map[string]bool{}
	for i := 0; i+1 < len(defs.Content); i += 2 {
		name, def := defs.Content[i].Value, defs.Content[i+1]
		v, ok := params[name]
		if !ok {
			continue
		}
		set[name] = true
		value := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v, Style: yaml.DoubleQuotedStyle}
		replaced := false
		for j := 0; j+1 < len(def.Content); j += 2 {
			if def.Content[j].Value == "Type" && def.Content[j+1].Value == "Number" {
				value.Tag, value.Style = "!!int", 0 // as AllowedValues are written
			}
		}
		for j := 0; j+1 < len(def.Content); j += 2 {
			if def.Content[j].Value == "Default" {
				def.Content[j+1], replaced = value, true
			}
		}
		if !replaced {
			def.Content = append(def.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "Default"}, value)
		}
	}
	for name := range params {
		if !set[name] {
			return nil, fmt.Errorf("no parameter %s", name)
		}
	}
	return yaml.Marshal(&root)
}
