package samtemplate

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/credbroker/credbroker/internal/broker"
)

// Env is what CloudFormation knows when it evaluates the template for one
// stack: the parameter values, the pseudo parameters and the physical ids of
// the resources.
type Env struct {
	// Params overrides parameter defaults; list parameters are comma
	// separated, as CloudFormation takes them.
	Params map[string]string
	// Pseudo sets pseudo parameters (AWS::Region, AWS::AccountId,
	// AWS::Partition, AWS::StackName, AWS::StackId, AWS::URLSuffix). Unset
	// ones are those of a stack "credbroker" in moto's account in us-east-1.
	Pseudo map[string]string
	// Refs gives the value of Ref for resources ("UserPool" ->
	// "eu-west-1_AbC"); an unset one evaluates to "<LogicalId>".
	Refs map[string]string
	// Attrs gives the value of Fn::GetAtt ("BaseRole.Arn" -> "arn:...");
	// an unset one evaluates to "<LogicalId.Attribute>".
	Attrs map[string]string
}

// LocalEnv is the environment the local stack and the tests create their
// resources in: moto's account, the password flows the local stack's
// testers sign in with, and a bucket ceiling of every bucket of the account
// (testers create buckets of any name; moto does not enforce IAM anyway).
func LocalEnv() Env {
	return Env{
		Params: map[string]string{"AllowPasswordAuth": "true", "AllowedBuckets": "*"},
		Pseudo: map[string]string{"AWS::StackName": "credbroker-local"},
	}
}

// Stack is the template evaluated for one Env, as CloudFormation would
// evaluate it when creating the stack: parameters checked against their
// constraints and the Rules, conditions decided, intrinsics resolved.
type Stack struct {
	t       *Template
	env     Env
	params  map[string]any // string, or []any of strings for lists
	pseudo  map[string]string
	conds   map[string]bool
	pending map[string]bool
}

// noValue is what Ref AWS::NoValue evaluates to: the property or list
// element that holds it disappears.
type noValue struct{}

// Stack evaluates the template for env. Parameter values that break a
// constraint (AllowedPattern, AllowedValues, MinValue, ...) or a rule are a
// broker.Invalid error, as CloudFormation refuses them.
func (t *Template) Stack(env Env) (*Stack, error) {
	const op = "samtemplate.Stack"
	s := &Stack{t: t, env: env, params: map[string]any{}, conds: map[string]bool{}, pending: map[string]bool{}}
	s.pseudo = map[string]string{
		"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": LocalAccountID,
		"AWS::StackName": "credbroker", "AWS::URLSuffix": "amazonaws.com",
	}
	maps.Copy(s.pseudo, env.Pseudo)
	if _, ok := s.pseudo["AWS::StackId"]; !ok {
		s.pseudo["AWS::StackId"] = fmt.Sprintf("arn:%s:cloudformation:%s:%s:stack/%s/00000000-0000-4000-8000-000000000000",
			s.pseudo["AWS::Partition"], s.pseudo["AWS::Region"], s.pseudo["AWS::AccountId"], s.pseudo["AWS::StackName"])
	}
	defs := t.Section("Parameters")
	for _, name := range slices.Sorted(maps.Keys(env.Params)) {
		if _, ok := defs[name]; !ok {
			return nil, broker.Errorf(broker.Invalid, op, "template has no parameter %q", name)
		}
	}
	var problems []string
	for _, name := range slices.Sorted(maps.Keys(defs)) {
		def, _ := defs[name].(map[string]any)
		raw, given := env.Params[name]
		if !given {
			d, ok := def["Default"]
			if !ok {
				problems = append(problems, fmt.Sprintf("parameter %s needs a value", name))
				continue
			}
			raw = scalarString(d)
		}
		v, err := checkParameter(name, def, raw)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		s.params[name] = v
	}
	if len(problems) == 0 {
		problems = s.checkRules()
	}
	if len(problems) > 0 {
		return nil, broker.Errorf(broker.Invalid, op, "%s", strings.Join(problems, "; "))
	}
	return s, nil
}

// Param returns a parameter's value: a string, or a []any of strings for a
// list parameter.
func (s *Stack) Param(name string) (any, bool) {
	v, ok := s.params[name]
	return v, ok
}

// Condition reports whether the named condition holds.
func (s *Stack) Condition(name string) (bool, error) {
	if v, ok := s.conds[name]; ok {
		return v, nil
	}
	if s.pending[name] {
		return false, fmt.Errorf("condition %s depends on itself", name)
	}
	def, ok := s.t.Section("Conditions")[name]
	if !ok {
		return false, fmt.Errorf("template has no condition %q", name)
	}
	s.pending[name] = true
	defer delete(s.pending, name)
	v, err := s.boolean(def)
	if err != nil {
		return false, fmt.Errorf("condition %s: %w", name, err)
	}
	s.conds[name] = v
	return v, nil
}

// Resource returns a resource with its properties evaluated (a function's
// with the Globals merged in first), and false when its condition does not
// hold, so that the stack does not create it.
func (s *Stack) Resource(logicalID string) (Resource, bool, error) {
	const op = "samtemplate.Stack.Resource"
	r, err := s.t.Resource(logicalID)
	if err != nil {
		return Resource{}, false, err
	}
	if r.Type == "AWS::Serverless::Function" {
		if r, err = s.t.Function(logicalID); err != nil {
			return Resource{}, false, err
		}
	}
	if r.Condition != "" {
		ok, err := s.Condition(r.Condition)
		if err != nil {
			return Resource{}, false, broker.Wrap(broker.Internal, op, err)
		}
		if !ok {
			return r, false, nil
		}
	}
	props, err := s.Value(r.Properties)
	if err != nil {
		return Resource{}, false, broker.Wrap(broker.Internal, op, fmt.Errorf("%s: %w", logicalID, err))
	}
	r.Properties, _ = props.(map[string]any)
	return r, true, nil
}

// Value evaluates v (a part of the template in long form): Ref, Fn::Sub,
// Fn::Join, Fn::Split, Fn::Select, Fn::If, Fn::GetAtt and the condition
// functions. Properties and list elements that evaluate to AWS::NoValue are
// dropped; a v that is AWS::NoValue itself evaluates to nil.
func (s *Stack) Value(v any) (any, error) {
	out, err := s.eval(v)
	if _, ok := out.(noValue); ok {
		return nil, err
	}
	return out, err
}

func (s *Stack) eval(v any) (any, error) {
	if name, arg, ok := IsIntrinsic(v); ok {
		return s.intrinsic(name, arg)
	}
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for _, k := range slices.Sorted(maps.Keys(x)) {
			e, err := s.eval(x[k])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			if _, drop := e.(noValue); !drop {
				out[k] = e
			}
		}
		return out, nil
	case []any:
		out := make([]any, 0, len(x))
		for i, e := range x {
			r, err := s.eval(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			if _, drop := r.(noValue); !drop {
				out = append(out, r)
			}
		}
		return out, nil
	}
	return v, nil
}

func (s *Stack) intrinsic(name string, arg any) (any, error) {
	args, _ := arg.([]any)
	switch name {
	case "Ref":
		id, ok := arg.(string)
		if !ok {
			return nil, fmt.Errorf("intrinsic Ref %v: want a name", arg)
		}
		return s.ref(id)
	case "Fn::GetAtt":
		if len(args) != 2 {
			return nil, fmt.Errorf("Fn::GetAtt %v: want [resource, attribute]", arg)
		}
		id, _ := args[0].(string)
		attr, _ := args[1].(string)
		return s.getAtt(id, attr)
	case "Fn::Sub":
		return s.sub(arg)
	case "Fn::Join":
		if len(args) != 2 {
			return nil, fmt.Errorf("Fn::Join %v: want [delimiter, list]", arg)
		}
		delim, ok := args[0].(string)
		if !ok {
			return nil, fmt.Errorf("Fn::Join: the delimiter must be a literal string, not %v", args[0])
		}
		parts, err := s.stringList(args[1])
		if err != nil {
			return nil, fmt.Errorf("Fn::Join: %w", err)
		}
		return strings.Join(parts, delim), nil
	case "Fn::Split":
		if len(args) != 2 {
			return nil, fmt.Errorf("Fn::Split %v: want [delimiter, string]", arg)
		}
		delim, ok := args[0].(string)
		if !ok || delim == "" {
			return nil, fmt.Errorf("Fn::Split: the delimiter must be a literal string, not %v", args[0])
		}
		str, err := s.str(args[1])
		if err != nil {
			return nil, fmt.Errorf("Fn::Split: %w", err)
		}
		var out []any
		for p := range strings.SplitSeq(str, delim) {
			out = append(out, p)
		}
		return out, nil
	case "Fn::Select":
		if len(args) != 2 {
			return nil, fmt.Errorf("Fn::Select %v: want [index, list]", arg)
		}
		idx, err := s.eval(args[0])
		if err != nil {
			return nil, err
		}
		i, err := strconv.Atoi(scalarString(idx))
		if err != nil {
			return nil, fmt.Errorf("Fn::Select: index %v is not a number", idx)
		}
		l, err := s.eval(args[1])
		if err != nil {
			return nil, err
		}
		list, ok := l.([]any)
		if !ok || i < 0 || i >= len(list) {
			return nil, fmt.Errorf("Fn::Select: index %d out of %v", i, l)
		}
		return list[i], nil
	case "Fn::If":
		if len(args) != 3 {
			return nil, fmt.Errorf("Fn::If %v: want [condition, then, else]", arg)
		}
		cond, _ := args[0].(string)
		ok, err := s.Condition(cond)
		if err != nil {
			return nil, err
		}
		if ok {
			return s.eval(args[1])
		}
		return s.eval(args[2])
	case "Condition", "Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or":
		return s.boolean(map[string]any{name: arg})
	}
	return nil, fmt.Errorf("%s is not supported by samtemplate", name)
}

// boolean evaluates a condition function.
func (s *Stack) boolean(v any) (bool, error) {
	name, arg, ok := IsIntrinsic(v)
	if !ok {
		return false, fmt.Errorf("%v is not a condition function", v)
	}
	args, _ := arg.([]any)
	if b, ok, err := logic(name, args, s.boolean); ok {
		return b, err
	}
	switch name {
	case "Condition":
		c, _ := arg.(string)
		return s.Condition(c)
	case "Fn::Equals":
		if len(args) != 2 {
			return false, fmt.Errorf("Fn::Equals %v: want two values", arg)
		}
		a, err := s.eval(args[0])
		if err != nil {
			return false, err
		}
		b, err := s.eval(args[1])
		if err != nil {
			return false, err
		}
		return scalarString(a) == scalarString(b), nil
	}
	return false, fmt.Errorf("%s is not a condition function", name)
}

// logic evaluates Fn::Not, Fn::And and Fn::Or over operands that eval
// decides; ok is false for any other function.
func logic(name string, args []any, eval func(any) (bool, error)) (result, ok bool, err error) {
	switch name {
	case "Fn::Not":
		if len(args) != 1 {
			return false, true, fmt.Errorf("Fn::Not %v: want one operand", args)
		}
		b, err := eval(args[0])
		return !b, true, err
	case "Fn::And", "Fn::Or":
		if len(args) < 2 {
			return false, true, fmt.Errorf("%s %v: want at least two operands", name, args)
		}
		for _, a := range args {
			b, err := eval(a)
			if err != nil {
				return false, true, err
			}
			if b == (name == "Fn::Or") {
				return b, true, nil
			}
		}
		return name == "Fn::And", true, nil
	}
	return false, false, nil
}

func (s *Stack) ref(id string) (any, error) {
	if id == "AWS::NoValue" {
		return noValue{}, nil
	}
	if v, ok := s.pseudo[id]; ok {
		return v, nil
	}
	if v, ok := s.params[id]; ok {
		return v, nil
	}
	if _, ok := s.t.Section("Resources")[id]; ok {
		if v, ok := s.env.Refs[id]; ok {
			return v, nil
		}
		return "<" + id + ">", nil
	}
	return nil, fmt.Errorf("intrinsic Ref %s: no such parameter or resource", id)
}

func (s *Stack) getAtt(id, attr string) (any, error) {
	if _, ok := s.t.Section("Resources")[id]; !ok || attr == "" {
		return nil, fmt.Errorf("Fn::GetAtt %s.%s: no such resource", id, attr)
	}
	if v, ok := s.env.Attrs[id+"."+attr]; ok {
		return v, nil
	}
	return "<" + id + "." + attr + ">", nil
}

func (s *Stack) sub(arg any) (any, error) {
	tmpl, isString := arg.(string)
	vars := map[string]string{}
	if !isString {
		args, _ := arg.([]any)
		if len(args) != 2 {
			return nil, fmt.Errorf("Fn::Sub %v: want a string or [string, variables]", arg)
		}
		if tmpl, isString = args[0].(string); !isString {
			return nil, fmt.Errorf("Fn::Sub: the template must be a literal string, not %v", args[0])
		}
		m, ok := args[1].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("Fn::Sub: variables %v are not a mapping", args[1])
		}
		for k, e := range m {
			v, err := s.str(e)
			if err != nil {
				return nil, fmt.Errorf("Fn::Sub variable %s: %w", k, err)
			}
			vars[k] = v
		}
	}
	return substitute(tmpl, func(name string) (string, error) {
		if v, ok := vars[name]; ok {
			return v, nil
		}
		var v any
		var err error
		if res, attr, ok := strings.Cut(name, "."); ok && !strings.HasPrefix(name, "AWS::") {
			v, err = s.getAtt(res, attr)
		} else {
			v, err = s.ref(name)
		}
		if err != nil {
			return "", err
		}
		str, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("${%s} is not a string", name)
		}
		return str, nil
	})
}

func (s *Stack) str(v any) (string, error) {
	e, err := s.eval(v)
	if err != nil {
		return "", err
	}
	switch x := e.(type) {
	case string:
		return x, nil
	case int, float64, bool:
		return scalarString(x), nil
	}
	return "", fmt.Errorf("%v is not a string", e)
}

func (s *Stack) stringList(v any) ([]string, error) {
	e, err := s.eval(v)
	if err != nil {
		return nil, err
	}
	list, ok := e.([]any)
	if !ok {
		return nil, fmt.Errorf("%v is not a list", e)
	}
	out := make([]string, len(list))
	for i, x := range list {
		if out[i], err = s.str(x); err != nil {
			return nil, err
		}
	}
	return out, nil
}
