// Package layers checks the import graph against the layer table of
// docs/architecture.md "Layers": the table is the rule, and
// TestLayerRules fails on any package it does not place and on any import
// it does not allow.
package layers

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
)

// SDK is the import path prefix the table calls "the AWS SDK".
const SDK = "github.com/aws/aws-sdk-go-v2"

// Layer is one row of the table.
type Layer struct {
	Name     string
	Patterns []string // module-relative: "internal/broker", "functions/*"
	Imports  []string // the layers it may import; "the AWS SDK" and "everything" are special
}

// Table is the layer table, in the order of its rows.
type Table []Layer

// ParseTable reads the first Markdown table under the "## Layers" heading.
func ParseTable(r io.Reader) (Table, error) {
	var (
		t       Table
		inside  bool
		tickers = regexp.MustCompile("`([^`]+)`")
	)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "## "):
			if inside && len(t) > 0 {
				return t, nil
			}
			inside = line == "## Layers"
			continue
		case !inside || !strings.HasPrefix(line, "|"):
			if inside && len(t) > 0 && line == "" {
				return t, nil
			}
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) != 3 {
			return nil, fmt.Errorf("layer table row %q: want 3 cells", line)
		}
		name := strings.TrimSpace(cells[0])
		if name == "layer" || strings.HasPrefix(name, "---") {
			continue
		}
		l := Layer{Name: name}
		for _, m := range tickers.FindAllStringSubmatch(cells[1], -1) {
			l.Patterns = append(l.Patterns, m[1])
		}
		if imp := strings.TrimSpace(cells[2]); imp != "nothing of ours" {
			for _, s := range strings.Split(imp, ",") {
				l.Imports = append(l.Imports, strings.TrimSpace(s))
			}
		}
		t = append(t, l)
	}
	if len(t) == 0 {
		return nil, fmt.Errorf(`no layer table under "## Layers"`)
	}
	return t, sc.Err()
}

// LayerOf returns the layer of a module-relative package path, or "".
func (t Table) LayerOf(rel string) string {
	for _, l := range t {
		for _, p := range l.Patterns {
			if rel == p || strings.HasSuffix(p, "/*") && strings.HasPrefix(rel, strings.TrimSuffix(p, "*")) {
				return l.Name
			}
		}
	}
	return ""
}

func (t Table) layer(name string) Layer {
	for _, l := range t {
		if l.Name == name {
			return l
		}
	}
	return Layer{}
}

// Package is one node of `go list -deps`: its own imports and every
// package it depends on, directly or not.
type Package struct {
	Path    string
	Imports []string
	Deps    []string
}

// Check returns one line for every package the table does not place and
// every import it does not allow. module is the module path; packages
// outside it other than the SDK are not ruled.
func (t Table) Check(module string, pkgs []Package) []string {
	var bad []string
	rel := func(path string) (string, bool) {
		if path == module {
			return ".", true
		}
		r, ok := strings.CutPrefix(path, module+"/")
		return r, ok
	}
	for _, p := range pkgs {
		from, ours := rel(p.Path)
		if !ours {
			continue
		}
		name := t.LayerOf(from)
		if name == "" {
			bad = append(bad, fmt.Sprintf("%s is in no layer: add it to the table", from))
			continue
		}
		l := t.layer(name)
		if slices.Contains(l.Imports, "everything") {
			continue
		}
		for _, imp := range p.Imports {
			to, ours := rel(imp)
			if !ours {
				continue
			}
			if toLayer := t.LayerOf(to); !slices.Contains(l.Imports, toLayer) {
				bad = append(bad, fmt.Sprintf("%s (%s) imports %s (%s), which %s may not import", from, name, to, cmpOr(toLayer, "no layer"), name))
			}
		}
		if !slices.Contains(l.Imports, "the AWS SDK") {
			for _, d := range p.Deps {
				if d == SDK || strings.HasPrefix(d, SDK+"/") {
					bad = append(bad, fmt.Sprintf("%s (%s) depends on the AWS SDK (%s)", from, name, d))
					break
				}
			}
		}
	}
	return bad
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
