package docscheck_test

import (
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/testkit/docscheck"
)

// corpus is the repository's files to check, read once for every test:
// Markdown, and the sources whose comments and messages point into the docs.
var corpus = sync.OnceValues(func() (map[string]string, error) {
	root, err := docscheck.Root()
	if err != nil {
		return nil, err
	}
	files := map[string]string{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			switch d.Name() {
			case ".git", "node_modules", "dist", "build", ".local", ".aws-sam":
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case rel == "Makefile", rel == ".ci/run":
		case strings.HasPrefix(rel, "internal/testkit/docscheck/"):
			// Its tests spell out the stale forms they look for.
			return nil
		default:
			switch filepath.Ext(rel) {
			case ".md", ".go", ".yaml", ".yml", ".js", ".mjs":
			default:
				return nil
			}
		}
		data, err := os.ReadFile(path)
		files[rel] = string(data)
		return err
	})
	return files, err
})

// repo returns the repository and its files to check, sorted.
func repo(t *testing.T) (*docscheck.Repo, []string) {
	t.Helper()
	files, err := corpus()
	if err != nil {
		t.Fatal(err)
	}
	root, err := docscheck.Root()
	if err != nil {
		t.Fatal(err)
	}
	return &docscheck.Repo{Root: root}, slices.Sorted(maps.Keys(files))
}

func read(t *testing.T, r *docscheck.Repo, rel string) string {
	t.Helper()
	files, err := corpus()
	if err != nil {
		t.Fatal(err)
	}
	if text, ok := files[rel]; ok {
		return text
	}
	data, err := os.ReadFile(filepath.Join(r.Root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestEveryLinkOfTheDocsResolves(t *testing.T) {
	t.Parallel()
	r, files := repo(t)
	n := 0
	for _, f := range files {
		if !strings.HasSuffix(f, ".md") {
			continue
		}
		for _, l := range docscheck.Links(read(t, r, f)) {
			n++
			if err := r.CheckLink(f, l.Target); err != nil {
				t.Errorf("%s:%d: %v", f, l.Line, err)
			}
		}
	}
	if n == 0 {
		t.Fatal("no link found: the walk missed the docs")
	}
}

func TestEveryHeadingReferenceResolves(t *testing.T) {
	t.Parallel()
	r, files := repo(t)
	n := 0
	for _, f := range files {
		text := read(t, r, f)
		for _, ref := range docscheck.QuotedRefs(text) {
			n++
			if err := r.CheckRef(f, ref); err != nil {
				t.Errorf("%s:%d: %s %q: %v", f, ref.Line, ref.Path, ref.Heading, err)
			}
		}
		for _, l := range docscheck.StaleRefs(text) {
			t.Errorf("%s:%d: points at a README section or BENCHMARKS.md: name the docs/ file and its heading instead", f, l)
		}
	}
	if n == 0 {
		t.Fatal("no reference found: the walk missed the sources")
	}
}

func TestTheReadmeStaysShort(t *testing.T) {
	t.Parallel()
	r, _ := repo(t)
	if n := strings.Count(read(t, r, "README.md"), "\n"); n > 300 {
		t.Errorf("README.md has %d lines, more than 300: move the detail into docs/", n)
	}
}

// The checker itself: each kind of broken link or reference is caught, and
// good ones pass.
func TestTheCheckerFindsBrokenLinksAndReferences(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	write := func(rel, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, rel), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("docs/a.md", "# A\n\n## The deny list's pages\n\n```sh\n# Not a heading\n```\n\n## Exit status\n## Exit status\n")
	write("README.md", "# Top\n")
	r := &docscheck.Repo{Root: root}
	links := []struct {
		name, from, target string
		ok                 bool
	}{
		{"a file and its anchor", "README.md", "docs/a.md#the-deny-lists-pages", true},
		{"a second heading of the same name", "README.md", "docs/a.md#exit-status-1", true},
		{"the same file", "docs/a.md", "#exit-status", true},
		{"up and back down", "docs/a.md", "../README.md#top", true},
		{"an external link", "README.md", "https://example.com/x#y", true},
		{"a missing file", "README.md", "docs/b.md", false},
		{"a missing anchor", "README.md", "docs/a.md#revocation", false},
		{"a heading inside a code block", "README.md", "docs/a.md#not-a-heading", false},
		{"outside the repository", "README.md", "../x.md", false},
	}
	for _, c := range links {
		if err := r.CheckLink(c.from, c.target); (err == nil) != c.ok {
			t.Errorf("%s: CheckLink(%s, %s) = %v", c.name, c.from, c.target, err)
		}
	}
	refs := []struct {
		name, from, text string
		ok               bool
	}{
		{"a Go comment", "x.go", `// (docs/a.md "Exit status")`, true},
		{"a Go string", "x.go", `"refused (docs/a.md \"The deny list's pages\")"`, true},
		{"wrapped over comment lines", "x.go", "// see docs/a.md \"The deny\n// list's pages\" there", true},
		{"from a Markdown file's own directory", "docs/b.md", `[a.md, "Exit status"](a.md#exit-status)`, true},
		{"a missing heading", "x.go", `// docs/a.md "Revocation"`, false},
		{"a missing file", "x.go", `// docs/b.md "Revocation"`, false},
	}
	for _, c := range refs {
		got := docscheck.QuotedRefs(c.text)
		if len(got) != 1 {
			t.Errorf("%s: %d references found in %q, want 1", c.name, len(got), c.text)
			continue
		}
		if err := r.CheckRef(c.from, got[0]); (err == nil) != c.ok {
			t.Errorf("%s: CheckRef(%+v) = %v", c.name, got[0], err)
		}
	}
	stale := "ok\n// (README \"Revocation\")\nREADME, \"Load\"\nsee BENCHMARKS.md\nweb/README.md \"Demo page\"\n"
	if diff := cmp.Diff([]int{2, 3, 4}, docscheck.StaleRefs(stale)); diff != "" {
		t.Errorf("stale lines (-want +got):\n%s", diff)
	}
}

func TestSlugsAreGitHubs(t *testing.T) {
	t.Parallel()
	for h, want := range map[string]string{
		"Template parameters (`sam deploy --guided`)":       "template-parameters-sam-deploy---guided",
		"Operator commands (`credbroker admin`)":            "operator-commands-credbroker-admin",
		"`make load` after the tag deny (issues 20 and 21)": "make-load-after-the-tag-deny-issues-20-and-21",
		"Capacity on AWS (on paper)":                        "capacity-on-aws-on-paper",
		"The deny list's policies":                          "the-deny-lists-policies",
	} {
		if got := docscheck.Slug(h); got != want {
			t.Errorf("Slug(%q) = %q, want %q", h, got, want)
		}
	}
}
