package credentials_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/credentials"
)

func baseEnv() map[string]string {
	return map[string]string{
		"CREDBROKER_POLICY_TABLE":       "credbroker-policy",
		"CREDBROKER_BASE_ROLE_ARN":      "arn:aws:iam::123456789012:role/credbroker-BaseRole-1A2B",
		"CREDBROKER_USER_POOL_ID":       "eu-west-1_AbC123",
		"CREDBROKER_ALLOWED_CLIENT_IDS": "client-a",
		"CREDBROKER_EVENT_BUS":          "credbroker-audit",
	}
}

func TestConfigFromEnv(t *testing.T) {
	defaults := credentials.Config{
		PolicyTable:     "credbroker-policy",
		BaseRoleARN:     "arn:aws:iam::123456789012:role/credbroker-BaseRole-1A2B",
		Partition:       "aws",
		UserPoolID:      "eu-west-1_AbC123",
		ClientIDs:       []string{"client-a"},
		Issuer:          "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123",
		SessionDuration: 15 * time.Minute,
		CacheSize:       1024,
		AuditBusName:    "credbroker-audit",
		AuditMode:       credentials.FailClosed,
		LogLevel:        slog.LevelInfo,
		RequestTimeout:  8 * time.Second,
	}
	tests := []struct {
		name string
		set  map[string]string
		want func(*credentials.Config)
	}{
		{"required values alone give the defaults, issuer in the pool's region", nil, func(*credentials.Config) {}},
		{"every optional value is read", map[string]string{
			"CREDBROKER_ALLOWED_CLIENT_IDS":       " client-a , client-b ",
			"CREDBROKER_SESSION_DURATION_SECONDS": "3600",
			"CREDBROKER_CREDENTIAL_CACHE_SIZE":    "0",
			"CREDBROKER_AUDIT_MODE":               "best-effort",
			"CREDBROKER_LOG_LEVEL":                "debug",
			"CREDBROKER_REQUEST_TIMEOUT_MS":       "2500",
			"CREDBROKER_JWKS_URL":                 "http://127.0.0.1:4566/eu-west-1_AbC123/.well-known/jwks.json",
			"CREDBROKER_TOKEN_ISSUER":             "https://cognito-idp.us-east-1.amazonaws.com/eu-west-1_AbC123",
		}, func(c *credentials.Config) {
			c.ClientIDs = []string{"client-a", "client-b"}
			c.SessionDuration = time.Hour
			c.CacheSize = 0
			c.AuditMode = credentials.BestEffort
			c.LogLevel = slog.LevelDebug
			c.RequestTimeout = 2500 * time.Millisecond
			c.JWKSURL = "http://127.0.0.1:4566/eu-west-1_AbC123/.well-known/jwks.json"
			c.Issuer = "https://cognito-idp.us-east-1.amazonaws.com/eu-west-1_AbC123"
		}},
		{"China partition comes from the role ARN", map[string]string{"CREDBROKER_BASE_ROLE_ARN": "arn:aws-cn:iam::123456789012:role/base"},
			func(c *credentials.Config) {
				c.BaseRoleARN, c.Partition = "arn:aws-cn:iam::123456789012:role/base", "aws-cn"
			}},
		{"explicit fail-closed is read", map[string]string{"CREDBROKER_AUDIT_MODE": "fail-closed", "CREDBROKER_LOG_LEVEL": "WARN"},
			func(c *credentials.Config) { c.LogLevel = slog.LevelWarn }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := baseEnv()
			for k, v := range tt.set {
				env[k] = v
			}
			got, err := credentials.ConfigFromEnv(func(k string) string { return env[k] })
			if err != nil {
				t.Fatal(err)
			}
			want := defaults
			want.ClientIDs = []string{"client-a"}
			tt.want(&want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConfigFromEnvListsEveryProblem(t *testing.T) {
	tests := []struct {
		name string
		set  map[string]string
		want []string
	}{
		{"empty environment names every required variable", map[string]string{
			"CREDBROKER_POLICY_TABLE": "", "CREDBROKER_BASE_ROLE_ARN": "", "CREDBROKER_USER_POOL_ID": "", "CREDBROKER_ALLOWED_CLIENT_IDS": "", "CREDBROKER_EVENT_BUS": "",
		}, []string{"CREDBROKER_POLICY_TABLE is required", "CREDBROKER_BASE_ROLE_ARN is required", "CREDBROKER_USER_POOL_ID is required",
			"CREDBROKER_EVENT_BUS is required", "CREDBROKER_ALLOWED_CLIENT_IDS is required"}},
		{"session duration beyond role chaining's hour is refused", map[string]string{"CREDBROKER_SESSION_DURATION_SECONDS": "3601"},
			[]string{`CREDBROKER_SESSION_DURATION_SECONDS "3601" must be an integer in 900..3600`}},
		{"session duration under 15 minutes is refused", map[string]string{"CREDBROKER_SESSION_DURATION_SECONDS": "899"},
			[]string{`CREDBROKER_SESSION_DURATION_SECONDS "899" must be an integer in 900..3600`}},
		{"several bad values are all reported", map[string]string{
			"CREDBROKER_CREDENTIAL_CACHE_SIZE": "-1", "CREDBROKER_AUDIT_MODE": "maybe", "CREDBROKER_LOG_LEVEL": "LOUD", "CREDBROKER_REQUEST_TIMEOUT_MS": "soon",
			"CREDBROKER_BASE_ROLE_ARN": "arn:aws:iam::123456789012:user/bob", "CREDBROKER_USER_POOL_ID": "pool", "CREDBROKER_ALLOWED_CLIENT_IDS": "a,,b",
		}, []string{`CREDBROKER_CREDENTIAL_CACHE_SIZE "-1" must be an integer`, `CREDBROKER_AUDIT_MODE "maybe"`, `CREDBROKER_LOG_LEVEL "LOUD"`,
			`CREDBROKER_REQUEST_TIMEOUT_MS "soon"`, "CREDBROKER_BASE_ROLE_ARN: ", `CREDBROKER_USER_POOL_ID "pool" is not a user pool id`, "has an empty entry"}},
		{"plain-http issuer is refused", map[string]string{"CREDBROKER_TOKEN_ISSUER": "http://issuer.example"}, []string{`CREDBROKER_TOKEN_ISSUER "http://issuer.example" must be an https URL`}},
		{"JWKS URL that is not http is refused", map[string]string{"CREDBROKER_JWKS_URL": "file:///etc/jwks.json"}, []string{`CREDBROKER_JWKS_URL "file:///etc/jwks.json"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := baseEnv()
			for k, v := range tt.set {
				env[k] = v
			}
			_, err := credentials.ConfigFromEnv(func(k string) string { return env[k] })
			if err == nil {
				t.Fatal("ConfigFromEnv() accepted a broken environment")
			}
			if k := broker.KindOf(err); k != broker.Invalid {
				t.Errorf("kind %v, want invalid (a configuration error: exit status 2)", k)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestServiceValidate(t *testing.T) {
	tests := []struct {
		name string
		svc  *credentials.Service
		want []string
	}{
		{"empty service names every dependency", &credentials.Service{}, []string{"Verifier", "Policies", "Issuer", "Auditor"}},
		{"session over an hour is refused", &credentials.Service{SessionDuration: 2 * time.Hour}, []string{"SessionDuration 2h0m0s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.svc.Validate()
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want a mention of %q", err, w)
				}
			}
		})
	}
}
