//go:build integration

package samtemplate_test

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/credbroker/credbroker/internal/samtemplate"
)

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
			if _, err := tpl.Stack(samtemplate.Env{Params: params}); err != nil {
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
			vs, err := copied.Stack(samtemplate.Env{})
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

// cfn-lint (with the SAM translator) is part of the toolchain: a missing
// linter fails the test instead of skipping it.
func TestTemplatePassesCfnLint(t *testing.T) {
	bin, err := exec.LookPath("cfn-lint")
	if err != nil {
		t.Fatal("cfn-lint is not on PATH (pip install cfn-lint); template.yaml must lint clean")
	}
	path, err := samtemplate.DefaultPath()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), bin, path).CombinedOutput()
	if err != nil {
		t.Fatalf("cfn-lint %s: %v\n%s", path, err, out)
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
