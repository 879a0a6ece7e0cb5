package samtemplate

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Parameters: each value checked against its declared constraints, as
// CloudFormation checks it.

// checkParameter checks raw against a parameter's constraints the way
// CloudFormation does (a pattern must match the whole value, each element of
// a list) and returns its value for Ref.
func checkParameter(name string, def map[string]any, raw string) (any, error) {
	typ, _ := def["Type"].(string)
	bad := func(format string, args ...any) error {
		msg := fmt.Sprintf(format, args...)
		if cd, ok := def["ConstraintDescription"].(string); ok {
			msg += " (" + cd + ")"
		}
		return fmt.Errorf("parameter %s %q: %s", name, raw, msg)
	}
	var pattern *regexp.Regexp
	if p, ok := def["AllowedPattern"].(string); ok {
		var err error
		if pattern, err = regexp.Compile(`^(?:` + p + `)$`); err != nil {
			return nil, fmt.Errorf("parameter %s: AllowedPattern %q: %w", name, p, err)
		}
	}
	allowed := func(v string) bool {
		vals, ok := def["AllowedValues"].([]any)
		return !ok || slices.ContainsFunc(vals, func(a any) bool { return scalarString(a) == v })
	}
	switch typ {
	case "String":
		if !allowed(raw) {
			return nil, bad("not one of %v", def["AllowedValues"])
		}
		if pattern != nil && !pattern.MatchString(raw) {
			return nil, bad("does not match %s", def["AllowedPattern"])
		}
		if n, ok := def["MaxLength"].(int); ok && len(raw) > n {
			return nil, bad("longer than %d", n)
		}
		if n, ok := def["MinLength"].(int); ok && len(raw) < n {
			return nil, bad("shorter than %d", n)
		}
		return raw, nil
	case "Number":
		n, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return nil, bad("not a number")
		}
		if !allowed(raw) {
			return nil, bad("not one of %v", def["AllowedValues"])
		}
		if lo, ok := number(def["MinValue"]); ok && n < lo {
			return nil, bad("less than %v", def["MinValue"])
		}
		if hi, ok := number(def["MaxValue"]); ok && n > hi {
			return nil, bad("more than %v", def["MaxValue"])
		}
		return raw, nil
	case "CommaDelimitedList":
		var out []any
		for e := range strings.SplitSeq(raw, ",") {
			if !allowed(e) {
				return nil, bad("%q is not one of %v", e, def["AllowedValues"])
			}
			if pattern != nil && !pattern.MatchString(e) {
				return nil, bad("%q does not match %s", e, def["AllowedPattern"])
			}
			out = append(out, e)
		}
		return out, nil
	}
	return nil, fmt.Errorf("parameter %s: type %q is not supported by samtemplate", name, typ)
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// scalarString is how CloudFormation compares and substitutes scalars.
func scalarString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

func list(v any) []any {
	switch x := v.(type) {
	case nil:
		return nil
	case []any:
		return x
	}
	return []any{v}
}
