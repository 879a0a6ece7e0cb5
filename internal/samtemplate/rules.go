package samtemplate

import (
	"fmt"
	"maps"
	"slices"
)

// Rules: the template's own assertions on parameter values, checked as
// CloudFormation checks them before it creates anything.

// checkRules evaluates the template's Rules: an assertion that fails (when
// its rule's condition holds) is a problem described by AssertDescription.
func (s *Stack) checkRules() []string {
	var problems []string
	rules := s.t.Section("Rules")
	for _, name := range slices.Sorted(maps.Keys(rules)) {
		rule, _ := rules[name].(map[string]any)
		if c, ok := rule["RuleCondition"]; ok {
			applies, err := s.ruleBool(c)
			if err != nil {
				problems = append(problems, fmt.Sprintf("rule %s: %v", name, err))
				continue
			}
			if !applies {
				continue
			}
		}
		for _, a := range list(rule["Assertions"]) {
			am, _ := a.(map[string]any)
			ok, err := s.ruleBool(am["Assert"])
			switch {
			case err != nil:
				problems = append(problems, fmt.Sprintf("rule %s: %v", name, err))
			case !ok:
				problems = append(problems, fmt.Sprintf("rule %s: %v", name, am["AssertDescription"]))
			}
		}
	}
	return problems
}

// ruleBool evaluates the functions that Rules allow.
func (s *Stack) ruleBool(v any) (bool, error) {
	name, arg, ok := IsIntrinsic(v)
	if !ok {
		return false, fmt.Errorf("%v is not a rule function", v)
	}
	args, _ := arg.([]any)
	if b, ok, err := logic(name, args, s.ruleBool); ok {
		return b, err
	}
	switch name {
	case "Fn::Equals", "Fn::Contains":
		if len(args) != 2 {
			return false, fmt.Errorf("%s %v: want two values", name, arg)
		}
		a, err := s.ruleValue(args[0])
		if err != nil {
			return false, err
		}
		b, err := s.ruleValue(args[1])
		if err != nil {
			return false, err
		}
		if name == "Fn::Equals" {
			return scalarString(a) == scalarString(b), nil
		}
		l, ok := a.([]any)
		if !ok {
			return false, fmt.Errorf("Fn::Contains: %v is not a list", a)
		}
		return slices.ContainsFunc(l, func(e any) bool { return scalarString(e) == scalarString(b) }), nil
	}
	return false, fmt.Errorf("%s is not supported in rules by samtemplate", name)
}

func (s *Stack) ruleValue(v any) (any, error) {
	if name, arg, ok := IsIntrinsic(v); ok {
		if name != "Ref" {
			return nil, fmt.Errorf("%s is not supported in rules by samtemplate", name)
		}
		id, _ := arg.(string)
		p, ok := s.params[id]
		if !ok {
			return nil, fmt.Errorf("rule Ref %s: no such parameter", id)
		}
		return p, nil
	}
	return v, nil
}
