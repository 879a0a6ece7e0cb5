package samtemplate_test

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/credentials"
	"github.com/credbroker/credbroker/internal/samtemplate"
)

// functionEnv is a valid environment of the credential function with one
// variable replaced.
func functionEnv(name, value string) func(string) string {
	env := map[string]string{
		"CREDBROKER_POLICY_TABLE": "p", "CREDBROKER_BASE_ROLE_ARN": "arn:aws:iam::123456789012:role/base", "CREDBROKER_USER_POOL_ID": "us-east-1_AbC",
		"CREDBROKER_ALLOWED_CLIENT_IDS": "abc", "CREDBROKER_EVENT_BUS": "bus", "AWS_REGION": "us-east-1",
	}
	env[name] = value
	return func(k string) string { return env[k] }
}

// functionRefuses reports whether the credential function refuses to start
// because of the named variable.
func functionRefuses(name, value string) bool {
	_, err := credentials.ConfigFromEnv(functionEnv(name, value))
	return err != nil && strings.Contains(err.Error(), name)
}

// A deploy must not succeed only for the function to refuse to start: every
// value the function refuses, CloudFormation refuses first.
func TestTemplateRefusesThePoolIdsTheFunctionRefuses(t *testing.T) {
	tpl := mustLoad(t)
	pieces := []string{"us", "eu", "ap", "cn", "u", "-", "east", "west", "gov", "south", "1", "2", "12", "_", "AbC", "9x", "Z", ".", " ", "é"}
	rapid.Check(t, func(rt *rapid.T) {
		id := strings.Join(rapid.SliceOfN(rapid.SampledFrom(pieces), 1, 8).Draw(rt, "pieces"), "")
		_, err := tpl.Stack(samtemplate.Env{Params: map[string]string{"ExistingUserPoolId": id, "ExistingUserPoolClientIds": "abc"}})
		templateAccepts := err == nil
		functionAccepts := !functionRefuses("CREDBROKER_USER_POOL_ID", id)
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
		{"CredentialCacheSize", "CREDBROKER_CREDENTIAL_CACHE_SIZE"},
		{"SessionDurationSeconds", "CREDBROKER_SESSION_DURATION_SECONDS"},
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
			_, err := tpl.Stack(samtemplate.Env{Params: map[string]string{tc.param: v}})
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
			accepted: []string{"", "*", "acme-lake-*", "acme-lake-*,shared-exports", "team-??-raw", bucketList(50, 39), bucketList(32, 63)},
			refused:  []string{"acme/*", "acme-*/raw", "a,,b", "acme,", "Acme", "acme lake", "${aws:username}", bucketList(51, 3), bucketList(33, 63)},
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
				if _, err := tpl.Stack(samtemplate.Env{Params: map[string]string{tc.param: v}}); err != nil {
					t.Errorf("%s=%q refused: %v", tc.param, v, err)
				}
			}
			for _, v := range tc.refused {
				if _, err := tpl.Stack(samtemplate.Env{Params: map[string]string{tc.param: v}}); err == nil {
					t.Errorf("%s=%q accepted", tc.param, v)
				}
			}
		})
	}
}

// bucketList is n distinct bucket names of length size, comma separated.
func bucketList(n, size int) string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("b%0*d", size-1, i)
	}
	return strings.Join(names, ",")
}

// IAM refuses a managed policy over 6,144 characters (white space not
// counted), and the stack with it. Whatever AllowedBuckets the template
// accepts, the ceiling fits; the longest ones come close.
func TestEveryAcceptedBucketListFitsTheCeilingPolicy(t *testing.T) {
	const limit = 6144
	tpl := mustLoad(t)
	size := func(env samtemplate.Env) (int, error) {
		s, err := tpl.Stack(env)
		if err != nil {
			return 0, err
		}
		doc, err := s.BaseRolePolicy()
		if err != nil {
			t.Fatal(err)
		}
		return broker.PolicySize(doc), nil
	}
	// The ceiling grows with the list's length and its number of entries
	// alone: the most of both is the largest ceiling.
	longest := strings.Repeat("a", 2048-49*2) + strings.Repeat(",a", 49)
	for _, tc := range []struct {
		name string
		env  samtemplate.Env
	}{
		{"the longest list of the most entries", samtemplate.Env{Params: map[string]string{"AllowedBuckets": longest}}},
		{"50 names of 39 characters", samtemplate.Env{Params: map[string]string{"AllowedBuckets": bucketList(50, 39)}}},
		{"32 names of 63 characters", samtemplate.Env{Params: map[string]string{"AllowedBuckets": bucketList(32, 63)}}},
		{"the default for the longest stack name", samtemplate.Env{Pseudo: map[string]string{"AWS::StackName": "s" + strings.Repeat("-", 127)}}},
	} {
		n, err := size(tc.env)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		t.Logf("%s: %d characters", tc.name, n)
		if n > limit {
			t.Errorf("%s: the ceiling takes %d characters, over IAM's %d", tc.name, n, limit)
		}
	}
	// Lists that fill most of the 2,048 characters with up to 80 entries.
	rapid.Check(t, func(rt *rapid.T) {
		k := rapid.IntRange(1, 80).Draw(rt, "entries")
		full := max((2048-(k-1))/k, 1)
		entries := make([]string, k)
		for i := range entries {
			n := max(full-rapid.IntRange(0, 2).Draw(rt, "shorter"), 1)
			entries[i] = string(rapid.SliceOfN(rapid.SampledFrom([]byte("abz09.?*-")), n, n).Draw(rt, "entry"))
		}
		n, err := size(samtemplate.Env{Params: map[string]string{"AllowedBuckets": strings.Join(entries, ",")}})
		if err == nil && n > limit {
			rt.Fatalf("AllowedBuckets of %d entries, %d characters, accepted: the ceiling takes %d characters, over IAM's %d", len(entries), len(strings.Join(entries, ",")), n, limit)
		}
	})
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
			if _, err := tpl.Stack(samtemplate.Env{Params: tc.params}); err == nil {
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
		// Today's limits, which API Gateway answers with 429 above.
		{"the stage throttles at 100 requests per second, bursts of 200, by default", nil, "HttpApi", []string{"DefaultRouteSettings"},
			map[string]any{"ThrottlingBurstLimit": "200", "ThrottlingRateLimit": "100"}},
		{"the stage throttles at the parameters", map[string]string{"ApiThrottlingRateLimit": "250", "ApiThrottlingBurstLimit": "500"},
			"HttpApi", []string{"DefaultRouteSettings"}, map[string]any{"ThrottlingBurstLimit": "500", "ThrottlingRateLimit": "250"}},
		{"no password sign-in by default", nil, "UserPoolClient", []string{"ExplicitAuthFlows"},
			[]any{"ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := tpl.Stack(samtemplate.Env{Params: tc.params})
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
