package layers_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/testkit/layers"
)

const module = "github.com/credbroker/credbroker"

func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

func table(t *testing.T, root string) layers.Table {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab, err := layers.ParseTable(f)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

// listed keeps goList's answers: each `go list` takes about a second, and
// the tests ask for the same tags more than once.
var listed = map[string][]layers.Package{}

// goList runs `go list -deps -json` on every package of the module, with
// the build tags given, and keeps the module's own packages.
func goList(t *testing.T, root string, tags string) []layers.Package {
	t.Helper()
	if pkgs, ok := listed[root+"\x00"+tags]; ok {
		return pkgs
	}
	args := []string{"list", "-deps", "-json=ImportPath,Imports,Deps"}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	cmd := exec.Command("go", append(args, "./...")...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []layers.Package
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			ImportPath    string
			Imports, Deps []string
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(p.ImportPath, module) {
			pkgs = append(pkgs, layers.Package{Path: p.ImportPath, Imports: p.Imports, Deps: p.Deps})
		}
	}
	if len(pkgs) < 20 {
		t.Fatalf("go list found only %d packages of the module", len(pkgs))
	}
	listed[root+"\x00"+tags] = pkgs
	return pkgs
}

// TestLayerRules holds the code to docs/architecture.md "Layers": every
// package in a layer, and every import one the table allows. Only the
// packages' own files count (tests may reach across layers: a logic
// package's tests use the in-memory test kit).
func TestLayerRules(t *testing.T) {
	root := moduleRoot(t)
	tab := table(t, root)
	for _, tags := range []string{"", "integration"} {
		for _, v := range tab.Check(module, goList(t, root, tags)) {
			t.Errorf("tags %q: %s", tags, v)
		}
	}
}

// Each function's main wires the logic package of its own name:
// functions/<name> imports internal/<name>.
func TestEachFunctionWiresItsNamesake(t *testing.T) {
	root := moduleRoot(t)
	n := 0
	for _, p := range goList(t, root, "") {
		name, ok := strings.CutPrefix(p.Path, module+"/functions/")
		if !ok || strings.Contains(name, "/") {
			continue
		}
		n++
		if !slices.Contains(p.Imports, module+"/internal/"+name) {
			t.Errorf("functions/%s does not import internal/%s", name, name)
		}
	}
	if n < 4 {
		t.Errorf("found %d functions, want the 4 of template.yaml", n)
	}
}

// The checker itself must catch what the table forbids.
func TestLayerRulesCatchForbiddenImports(t *testing.T) {
	tab := table(t, moduleRoot(t))
	p := func(rel string) string { return module + "/" + rel }
	cases := []struct {
		name string
		pkgs []layers.Package
		want []string
	}{
		{"an adapter importing logic fails", []layers.Package{{Path: p("internal/ddbstore"), Imports: []string{p("internal/revoker"), p("internal/broker")}}},
			[]string{"internal/ddbstore (adapters) imports internal/revoker (logic), which adapters may not import"}},
		{"an adapter importing another adapter fails", []layers.Package{{Path: p("internal/iamrole"), Imports: []string{p("internal/ddbstore")}}},
			[]string{"internal/iamrole (adapters) imports internal/ddbstore (adapters), which adapters may not import"}},
		{"logic pulling in the SDK through a dependency fails", []layers.Package{{Path: p("internal/credentials"), Deps: []string{"github.com/aws/aws-sdk-go-v2/service/sts"}}},
			[]string{"internal/credentials (logic) depends on the AWS SDK (github.com/aws/aws-sdk-go-v2/service/sts)"}},
		{"product code importing the test kit fails", []layers.Package{{Path: p("internal/wire"), Imports: []string{p("internal/testkit/memstore")}}},
			[]string{"internal/wire (wiring) imports internal/testkit/memstore (tools and test kit), which wiring may not import"}},
		{"a package in no layer fails", []layers.Package{{Path: p("internal/newthing")}},
			[]string{"internal/newthing is in no layer: add it to the table"}},
		{"an adapter on the domain and the SDK passes", []layers.Package{{Path: p("internal/ddbstore"), Imports: []string{p("internal/broker"), p("internal/backoff")}, Deps: []string{"github.com/aws/aws-sdk-go-v2/service/dynamodb"}}},
			nil},
		{"wiring importing logic and adapters passes", []layers.Package{{Path: p("functions/projector"), Imports: []string{p("internal/wire"), p("internal/projector"), p("internal/ddbstore")}}},
			nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if d := cmp.Diff(c.want, tab.Check(module, c.pkgs)); d != "" {
				t.Errorf("violations (-want +got):\n%s", d)
			}
		})
	}
}
