// Package samtemplate reads the SAM template (template.yaml) so that the local
// stack and the tests build their resources from the template's own
// definitions: there is no second, hand-kept copy of a table schema or of the
// base role's policy.
//
// CloudFormation short tags (!Ref, !GetAtt, !Sub, !If, ...) are decoded into
// their long JSON form ({"Ref": x}, {"Fn::GetAtt": [r, a]}, {"Fn::Sub": s},
// ...), which is what CloudFormation itself sees after parsing the YAML.
package samtemplate

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/credbroker/credbroker/internal/broker"
)

// FileName is the template's name at the module root.
const FileName = "template.yaml"

// Template is a parsed SAM template.
type Template struct {
	path string
	root *yaml.Node
	doc  map[string]any
}

// Resource is one entry of the template's Resources section.
type Resource struct {
	LogicalID string
	Type      string
	// Condition names the template condition the resource depends on, or "".
	Condition string
	// DeletionPolicy and UpdateReplacePolicy are the resource attributes,
	// "" when absent (CloudFormation then deletes).
	DeletionPolicy, UpdateReplacePolicy string
	// Properties and Metadata are decoded with intrinsics in long form.
	// For an AWS::Serverless::Function from Template.Function, Properties has
	// the Globals merged in.
	Properties map[string]any
	Metadata   map[string]any
	// Node is the resource's YAML mapping, for callers that need positions or
	// the exact tags.
	Node *yaml.Node
}

// Load reads and parses the template at path.
func Load(path string) (*Template, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, broker.Wrap(broker.Internal, "samtemplate.Load", err)
	}
	t, err := Parse(data)
	if err != nil {
		return nil, broker.Wrap(broker.Other, "samtemplate.Load "+path, err)
	}
	t.path = path
	return t, nil
}

// LoadDefault loads template.yaml from the module root: the nearest
// directory at or above the working directory that holds go.mod. Tests of any
// package can call it.
func LoadDefault() (*Template, error) {
	path, err := DefaultPath()
	if err != nil {
		return nil, err
	}
	return Load(path)
}

// DefaultPath returns the path LoadDefault reads.
func DefaultPath() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", broker.Wrap(broker.Internal, "samtemplate.DefaultPath", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, FileName), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", broker.Errorf(broker.Internal, "samtemplate.DefaultPath", "no go.mod at or above the working directory")
		}
		dir = parent
	}
}

// Parse parses a template from its YAML (or JSON) text.
func Parse(data []byte) (*Template, error) {
	const op = "samtemplate.Parse"
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		return nil, broker.Wrap(broker.Internal, op, err)
	}
	v, err := decode(&root)
	if err != nil {
		return nil, broker.Wrap(broker.Internal, op, err)
	}
	doc, ok := v.(map[string]any)
	if !ok {
		return nil, broker.Errorf(broker.Internal, op, "template is not a mapping")
	}
	if _, ok := doc["Resources"].(map[string]any); !ok {
		return nil, broker.Errorf(broker.Internal, op, "template has no Resources mapping")
	}
	return &Template{root: &root, doc: doc}, nil
}

// Path returns the file the template was loaded from ("" after Parse).
func (t *Template) Path() string { return t.path }

// Section returns a top-level section (Parameters, Conditions, Globals,
// Outputs, ...) decoded with intrinsics in long form, or nil when absent.
func (t *Template) Section(name string) map[string]any {
	m, _ := t.doc[name].(map[string]any)
	return m
}

// Resource returns the resource with the given logical id.
func (t *Template) Resource(logicalID string) (Resource, error) {
	const op = "samtemplate.Resource"
	raw, ok := t.Section("Resources")[logicalID]
	if !ok {
		return Resource{}, broker.Errorf(broker.NotFound, op, "template has no resource %q", logicalID)
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return Resource{}, broker.Errorf(broker.Internal, op, "resource %q is not a mapping", logicalID)
	}
	r := Resource{LogicalID: logicalID, Node: t.resourceNode(logicalID)}
	r.Type, _ = m["Type"].(string)
	r.Condition, _ = m["Condition"].(string)
	r.DeletionPolicy, _ = m["DeletionPolicy"].(string)
	r.UpdateReplacePolicy, _ = m["UpdateReplacePolicy"].(string)
	r.Properties, _ = m["Properties"].(map[string]any)
	r.Metadata, _ = m["Metadata"].(map[string]any)
	if r.Type == "" {
		return Resource{}, broker.Errorf(broker.Internal, op, "resource %q has no Type", logicalID)
	}
	return r, nil
}

// Resources returns every resource, sorted by logical id.
func (t *Template) Resources() ([]Resource, error) {
	ids := slices.Sorted(maps.Keys(t.Section("Resources")))
	out := make([]Resource, 0, len(ids))
	for _, id := range ids {
		r, err := t.Resource(id)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Function returns an AWS::Serverless::Function with Globals.Function merged
// into its Properties the way SAM merges them: the function's scalars win,
// maps merge key by key, lists append.
func (t *Template) Function(logicalID string) (Resource, error) {
	r, err := t.Resource(logicalID)
	if err != nil {
		return Resource{}, err
	}
	if r.Type != "AWS::Serverless::Function" {
		return Resource{}, broker.Errorf(broker.Invalid, "samtemplate.Function", "%s is a %s, not an AWS::Serverless::Function", logicalID, r.Type)
	}
	globals, _ := t.Section("Globals")["Function"].(map[string]any)
	merged, _ := mergeGlobal(globals, r.Properties).(map[string]any)
	r.Properties = merged
	return r, nil
}

// UserPoolClientAuthFlows returns the ExplicitAuthFlows of UserPoolClient
// in the local stack's environment (LocalEnv).
func (t *Template) UserPoolClientAuthFlows() ([]string, error) {
	if _, err := t.Resource("UserPoolClient"); err != nil {
		return nil, err
	}
	s, err := t.Stack(LocalEnv())
	if err != nil {
		return nil, err
	}
	return s.UserPoolClientAuthFlows()
}

// UserPoolClientAuthFlows returns the ExplicitAuthFlows of the stack's
// UserPoolClient.
func (s *Stack) UserPoolClientAuthFlows() ([]string, error) {
	const op = "samtemplate.UserPoolClientAuthFlows"
	r, created, err := s.Resource("UserPoolClient")
	if err != nil {
		return nil, err
	}
	if !created {
		return nil, broker.Errorf(broker.NotFound, op, "this stack creates no UserPoolClient")
	}
	flows, err := stringList(r.Properties["ExplicitAuthFlows"])
	if err != nil {
		return nil, broker.Wrap(broker.Internal, op, fmt.Errorf("UserPoolClient.ExplicitAuthFlows: %w", err))
	}
	return flows, nil
}

// LocalAccountID is the account moto serves: what AWS::AccountId stands
// for when the template's policies are created there.
const LocalAccountID = "123456789012"

// BaseRolePolicy returns the base role's ceiling as the local stack
// (LocalEnv) creates it in moto: the document, as JSON, of the managed
// policy that is both BaseRole's one policy and its permissions boundary.
func (t *Template) BaseRolePolicy() (string, error) {
	if _, err := t.Resource("BaseRole"); err != nil {
		return "", err
	}
	s, err := t.Stack(LocalEnv())
	if err != nil {
		return "", err
	}
	return s.BaseRolePolicy()
}

// BaseRolePolicy returns the stack's base role ceiling as JSON. A BaseRole
// whose boundary is not a managed policy of the template, or that has any
// other policy, has no ceiling this package can stand for: an error.
func (s *Stack) BaseRolePolicy() (string, error) {
	const op = "samtemplate.BaseRolePolicy"
	id, err := s.t.baseRoleCeilingID()
	if err != nil {
		return "", err
	}
	r, _, err := s.Resource(id)
	if err != nil {
		return "", err
	}
	doc, ok := r.Properties["PolicyDocument"]
	if !ok {
		return "", broker.Errorf(broker.Internal, op, "%s has no PolicyDocument", id)
	}
	return marshalJSON(doc)
}

// baseRoleCeilingID returns the logical id of the managed policy that
// bounds BaseRole: its PermissionsBoundary, which must also be its only
// managed policy, with no inline policy besides.
func (t *Template) baseRoleCeilingID() (string, error) {
	const op = "samtemplate.baseRoleCeilingID"
	r, err := t.Resource("BaseRole")
	if err != nil {
		return "", err
	}
	name, arg, ok := IsIntrinsic(r.Properties["PermissionsBoundary"])
	id, _ := arg.(string)
	if !ok || name != "Ref" || id == "" {
		return "", broker.Errorf(broker.Internal, op, "BaseRole's PermissionsBoundary is %v, want a Ref to a managed policy of the template", r.Properties["PermissionsBoundary"])
	}
	ceiling, err := t.Resource(id)
	if err != nil {
		return "", broker.Wrap(broker.Internal, op, err)
	}
	if ceiling.Type != "AWS::IAM::ManagedPolicy" {
		return "", broker.Errorf(broker.Internal, op, "BaseRole's boundary %s is a %s, not an AWS::IAM::ManagedPolicy", id, ceiling.Type)
	}
	if arns, ok := r.Properties["ManagedPolicyArns"].([]any); !ok || len(arns) != 1 || !equalRef(arns[0], id) {
		return "", broker.Errorf(broker.Internal, op, "BaseRole's ManagedPolicyArns are %v, want only its boundary %s", r.Properties["ManagedPolicyArns"], id)
	}
	if p, ok := r.Properties["Policies"]; ok {
		return "", broker.Errorf(broker.Internal, op, "BaseRole has inline policies %v, want none", p)
	}
	return id, nil
}

func equalRef(v any, id string) bool {
	name, arg, ok := IsIntrinsic(v)
	return ok && name == "Ref" && arg == id
}

func (t *Template) resourceNode(logicalID string) *yaml.Node {
	root := t.root
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	return mappingValue(mappingValue(root, "Resources"), logicalID)
}

func mappingValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// decode turns a YAML node into plain Go values, short-form intrinsics into
// their long form.
func decode(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return decode(n.Content[0])
	case yaml.AliasNode:
		return decode(n.Alias)
	}
	if fn, ok := intrinsicName(n.Tag); ok {
		if fn == "Fn::GetAtt" && n.Kind == yaml.ScalarNode {
			res, attr, ok := strings.Cut(n.Value, ".")
			if !ok {
				return nil, fmt.Errorf("line %d: !GetAtt %q is not Resource.Attribute", n.Line, n.Value)
			}
			return map[string]any{fn: []any{res, attr}}, nil
		}
		arg := *n
		arg.Tag = ""
		v, err := decode(&arg)
		if err != nil {
			return nil, err
		}
		return map[string]any{fn: v}, nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: mapping key is not a scalar", k.Line)
			}
			v, err := decode(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[k.Value] = v
		}
		return m, nil
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := decode(c)
			if err != nil {
				return nil, err
			}
			s = append(s, v)
		}
		return s, nil
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		return v, nil
	}
	return nil, fmt.Errorf("line %d: unexpected YAML node kind %v", n.Line, n.Kind)
}

// intrinsicName maps a CloudFormation short tag to its long-form key.
func intrinsicName(tag string) (string, bool) {
	if !strings.HasPrefix(tag, "!") || strings.HasPrefix(tag, "!!") {
		return "", false
	}
	switch name := tag[1:]; name {
	case "Ref", "Condition":
		return name, true
	default:
		return "Fn::" + name, true
	}
}

// IsIntrinsic reports whether v is a long-form intrinsic function call, such
// as {"Ref": "X"} or {"Fn::If": [...]}, and returns its name and argument.
func IsIntrinsic(v any) (name string, arg any, ok bool) {
	m, isMap := v.(map[string]any)
	if !isMap || len(m) != 1 {
		return "", nil, false
	}
	for k, a := range m {
		if k == "Ref" || k == "Condition" || strings.HasPrefix(k, "Fn::") {
			return k, a, true
		}
	}
	return "", nil, false
}

// mergeGlobal merges a Globals value under a resource's own value.
func mergeGlobal(global, local any) any {
	if global == nil {
		return local
	}
	if local == nil {
		return global
	}
	if _, _, ok := IsIntrinsic(local); ok {
		return local
	}
	if _, _, ok := IsIntrinsic(global); ok {
		return local
	}
	switch g := global.(type) {
	case map[string]any:
		l, ok := local.(map[string]any)
		if !ok {
			return local
		}
		out := maps.Clone(g)
		for k, lv := range l {
			out[k] = mergeGlobal(g[k], lv)
		}
		return out
	case []any:
		l, ok := local.([]any)
		if !ok {
			return local
		}
		return slices.Concat(g, l)
	}
	return local
}

// substitute expands Fn::Sub's ${Name} with lookup (and keeps ${!Literal}
// as ${Literal}).
func substitute(s string, lookup func(name string) (string, error)) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return "", fmt.Errorf("Fn::Sub %q: unterminated ${", s)
		}
		b.WriteString(s[:i])
		name := s[i+2 : i+j]
		if strings.HasPrefix(name, "!") {
			b.WriteString("${" + name[1:] + "}")
		} else {
			val, err := lookup(name)
			if err != nil {
				return "", fmt.Errorf("Fn::Sub: ${%s}: %w", name, err)
			}
			b.WriteString(val)
		}
		s = s[i+j+1:]
	}
}

func stringList(v any) ([]string, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, errors.New("not a list")
	}
	out := make([]string, 0, len(list))
	for i, e := range list {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("[%d] is not a string", i)
		}
		out = append(out, s)
	}
	return out, nil
}
