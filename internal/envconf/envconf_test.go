package envconf_test

import (
	"strings"
	"testing"

	"github.com/credbroker/credbroker/internal/envconf"
)

func TestExpiryNeedsTheSchedulersRoleWithAGroup(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want envconf.Expiry
		bad  string
	}{
		{"no group arms nothing, and is fine", map[string]string{}, envconf.Expiry{}, ""},
		{"a group with its role", map[string]string{"CREDBROKER_EXPIRY_SCHEDULE_GROUP": "g", "CREDBROKER_EXPIRY_SCHEDULER_ROLE_ARN": "arn:r", "CREDBROKER_EXPIRY_TARGET_ARN": "arn:f"},
			envconf.Expiry{Group: "g", RoleARN: "arn:r", TargetARN: "arn:f"}, ""},
		{"a group without its role is refused", map[string]string{"CREDBROKER_EXPIRY_SCHEDULE_GROUP": "g"}, envconf.Expiry{Group: "g"}, "CREDBROKER_EXPIRY_SCHEDULER_ROLE_ARN is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := envconf.New(func(k string) string { return tc.env[k] })
			got := r.Expiry()
			err := r.Err("test")
			if got != tc.want {
				t.Errorf("Expiry = %+v, want %+v", got, tc.want)
			}
			if (err == nil) != (tc.bad == "") || err != nil && !strings.Contains(err.Error(), tc.bad) {
				t.Errorf("err %v, want %q", err, tc.bad)
			}
		})
	}
}

func TestBoolTakesTheUsualSwitchesAndRefusesTheRest(t *testing.T) {
	env := map[string]string{"ON": "yes", "OFF": "0", "UPPER": "TRUE", "ODD": "2"}
	r := envconf.New(func(k string) string { return env[k] })
	if !r.Bool("ON", false) || r.Bool("OFF", true) || !r.Bool("UPPER", false) || !r.Bool("UNSET", true) {
		t.Error("a switch read wrong")
	}
	if r.Err("test") != nil {
		t.Fatalf("problems before the odd value: %v", r.Err("test"))
	}
	if r.Bool("ODD", false) || r.Err("test") == nil {
		t.Error(`ODD="2" accepted`)
	}
}
