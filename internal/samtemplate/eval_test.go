package samtemplate_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/samtemplate"
)

const evalTemplate = `
Parameters:
  Name: {Type: String, Default: ""}
  Ids: {Type: CommaDelimitedList, Default: ""}
  Count: {Type: Number, Default: 0, MinValue: 0, MaxValue: 10}
Conditions:
  HasName: !Not [!Equals [!Ref Name, ""]]
  HasIds: !Not [!Equals [!Join ["", !Ref Ids], ""]]
  Both: !And [!Condition HasName, !Condition HasIds]
  Either: !Or [!Condition HasName, !Condition HasIds]
  Counted: !Not [!Equals [!Ref Count, 0]]
Resources:
  Pool: {Type: AWS::Cognito::UserPool, Condition: HasName}
  Thing:
    Type: Custom::Thing
    Properties:
      Sub: !Sub arn:${AWS::Partition}:s3:::${AWS::StackName}-*
      SubVars: !Sub ["${A}.${Pool.Arn}/${!Literal}", {A: !Select [0, !Split ["_", !Ref Pool]]}]
      Join: !Join [",", [!Ref Pool, !Join [",", !Ref Ids]]]
      Split: !Split [",", !Join ["", ["x:", !Join [",x:", !Ref Ids]]]]
      If: !If [HasName, !Ref Name, !Ref AWS::NoValue]
      List: [a, !If [HasIds, b, !Ref AWS::NoValue], c]
      Both: !If [Both, yes, no]
      Either: !If [Either, yes, no]
      Count: !If [Counted, !Ref Count, none]
`

func TestStackEvaluatesIntrinsicsLikeCloudFormation(t *testing.T) {
	tpl := mustParse(t, evalTemplate)
	for _, tc := range []struct {
		name string
		env  samtemplate.Env
		want map[string]any
	}{
		{
			name: "defaults drop what their conditions leave out",
			env:  samtemplate.Env{},
			want: map[string]any{
				"Sub": "arn:aws:s3:::credbroker-*", "SubVars": "<Pool>.<Pool.Arn>/${Literal}",
				"Join": "<Pool>,", "Split": []any{"x:"}, "List": []any{"a", "c"},
				"Both": "no", "Either": "no", "Count": "none",
			},
		},
		{
			name: "parameters, pseudo parameters and resource ids are substituted",
			env: samtemplate.Env{
				Params: map[string]string{"Name": "n", "Ids": "i1,i2", "Count": "3"},
				Pseudo: map[string]string{"AWS::Partition": "aws-cn", "AWS::StackName": "s"},
				Refs:   map[string]string{"Pool": "eu-west-1_P"},
				Attrs:  map[string]string{"Pool.Arn": "arn:pool"},
			},
			want: map[string]any{
				"Sub": "arn:aws-cn:s3:::s-*", "SubVars": "eu-west-1.arn:pool/${Literal}",
				"Join": "eu-west-1_P,i1,i2", "Split": []any{"x:i1", "x:i2"}, "If": "n", "List": []any{"a", "b", "c"},
				"Both": "yes", "Either": "yes", "Count": "3",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := tpl.Stack(tc.env)
			if err != nil {
				t.Fatal(err)
			}
			r, created, err := s.Resource("Thing")
			if err != nil || !created {
				t.Fatalf("Resource(Thing) = %v, %v", created, err)
			}
			if diff := cmp.Diff(tc.want, r.Properties); diff != "" {
				t.Errorf("properties (-want +got):\n%s", diff)
			}
			_, poolCreated, err := s.Resource("Pool")
			if err != nil {
				t.Fatal(err)
			}
			if want := tc.env.Params["Name"] != ""; poolCreated != want {
				t.Errorf("Pool created = %v, want %v (its condition)", poolCreated, want)
			}
		})
	}
}

// Templates CloudFormation would refuse are refused, not evaluated to
// something plausible.
func TestStackRefusesWhatCloudFormationRefuses(t *testing.T) {
	for _, tc := range []struct{ name, property string }{
		{"a Join delimiter that is a function is refused", `!Join [!Ref Name, [a, b]]`},
		{"a Split delimiter that is a function is refused", `!Split [!Ref Name, "a,b"]`},
		{"a Sub template that is a function is refused", `!Sub [!Ref Name, {}]`},
		{"a list parameter in Sub is refused", `!Sub "${Ids}"`},
		{"a Ref to nothing is refused", `!Ref Nothing`},
		{"a Select out of range is refused", `!Select [2, [a, b]]`},
		{"an unknown condition is refused", `!If [Nope, a, b]`},
		{"an unsupported function is refused", `!FindInMap [M, a, b]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tpl := mustParse(t, evalTemplate+"  Bad:\n    Type: Custom::Bad\n    Properties:\n      P: "+tc.property+"\n")
			s, err := tpl.Stack(samtemplate.Env{})
			if err != nil {
				t.Fatal(err)
			}
			if r, _, err := s.Resource("Bad"); err == nil {
				t.Errorf("evaluated to %v, want an error", r.Properties)
			}
		})
	}
}

func TestStackChecksParametersAndRules(t *testing.T) {
	tpl := mustParse(t, `
Parameters:
  Pattern: {Type: String, Default: "", AllowedPattern: "^$|^[a-z]+$", ConstraintDescription: lowercase letters}
  Choice: {Type: String, Default: a, AllowedValues: [a, b]}
  Short: {Type: String, Default: "", MaxLength: 3}
  Num: {Type: Number, Default: 5, MinValue: 1, MaxValue: 9}
  Days: {Type: Number, Default: 90, AllowedValues: [90, 365]}
  Ids: {Type: CommaDelimitedList, Default: "", AllowedPattern: "^$|^[a-z]+$"}
  Required: {Type: String}
Rules:
  PatternNeedsIds:
    RuleCondition: !Not [!Equals [!Ref Pattern, ""]]
    Assertions:
      - Assert: !Not [!Contains [!Ref Ids, ""]]
        AssertDescription: Pattern needs Ids
Resources:
  R: {Type: Custom::R}
`)
	ok := map[string]string{"Required": "x"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{"Required": "x"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name    string
		params  map[string]string
		wantErr string
	}{
		{name: "defaults and a required value are accepted", params: ok},
		{name: "a pattern matches the whole value", params: with("Pattern", "abc1"), wantErr: "lowercase letters"},
		{name: "an allowed value is accepted", params: with("Choice", "b")},
		{name: "a value outside AllowedValues is refused", params: with("Choice", "c"), wantErr: "Choice"},
		{name: "a value over MaxLength is refused", params: with("Short", "abcd"), wantErr: "Short"},
		{name: "a number over MaxValue is refused", params: with("Num", "10"), wantErr: "Num"},
		{name: "a number under MinValue is refused", params: with("Num", "0"), wantErr: "Num"},
		{name: "a non-number is refused", params: with("Num", "five"), wantErr: "Num"},
		{name: "a number outside AllowedValues is refused", params: with("Days", "91"), wantErr: "Days"},
		{name: "each list element must match the pattern", params: with("Ids", "ab,c1"), wantErr: "Ids"},
		{name: "a missing required value is refused", params: map[string]string{}, wantErr: "Required"},
		{name: "an unknown parameter is refused", params: with("Nope", "x"), wantErr: "Nope"},
		{name: "a rule whose condition holds is asserted", params: with("Pattern", "abc"), wantErr: "Pattern needs Ids"},
		{name: "a rule's assertion can hold", params: with("Pattern", "abc", "Ids", "d,e")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tpl.Stack(samtemplate.Env{Params: tc.params})
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Stack: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("Stack accepted %v, want an error about %s", tc.params, tc.wantErr)
			case tc.wantErr != "" && (!strings.Contains(err.Error(), tc.wantErr) || broker.KindOf(err) != broker.Invalid):
				t.Errorf("error = %v (kind %v), want an invalid error about %s", err, broker.KindOf(err), tc.wantErr)
			}
		})
	}
}
