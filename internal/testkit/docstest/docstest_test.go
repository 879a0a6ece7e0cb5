package docstest_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credbroker/credbroker/internal/testkit/docstest"
)

const doc = "# Title\n\n" +
	"<!-- docs-test: make-run -->\n" +
	"```sh\nmake run\n```\n\n" +
	"Some text.\n\n```sh\nX=1\necho one\n```\n\n" +
	"```json\n{\"not\": \"shell\"}\n```\n\n" +
	"<!-- docs-test: later -->\n\nA paragraph between the name and the fence.\n\n" +
	"```bash\necho \"$X\"\n```\n"

func TestExtractFindsShellBlocksAndTheirNames(t *testing.T) {
	blocks, err := docstest.Extract("doc.md", strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := []docstest.Block{
		{File: "doc.md", Line: 4, Name: "make-run", Text: "make run\n"},
		{File: "doc.md", Line: 10, Text: "X=1\necho one\n"},
		{File: "doc.md", Line: 23, Text: "echo \"$X\"\n"},
	}
	if d := cmp.Diff(want, blocks); d != "" {
		t.Errorf("blocks (-want +got):\n%s", d)
	}
}

func TestExtractRefusesAnUnclosedFence(t *testing.T) {
	if _, err := docstest.Extract("doc.md", strings.NewReader("```sh\necho\n")); err == nil {
		t.Error("an unclosed fence accepted")
	}
}

// run runs the script of blocks with bash and returns the index of the
// block it stopped in ("done" when none failed).
func run(t *testing.T, blocks []docstest.Block) (string, error) {
	t.Helper()
	mark := filepath.Join(t.TempDir(), "mark")
	cmd := exec.Command("bash", "-c", docstest.Script(blocks))
	cmd.Env = append(os.Environ(), "DOCSTEST_MARK="+mark)
	out, err := cmd.CombinedOutput()
	got, _ := os.ReadFile(mark)
	t.Logf("%s", out)
	return strings.TrimSpace(string(got)), err
}

func TestScriptStopsAtTheFirstFailingCommandAndNamesItsBlock(t *testing.T) {
	blocks := []docstest.Block{
		{File: "a.md", Line: 1, Text: "X=ok\n"},
		{File: "a.md", Line: 5, Text: "test \"$X\" = ok\nfalse | cat\necho never\n"},
		{File: "a.md", Line: 9, Text: "touch should-not-run\n"},
	}
	at, err := run(t, blocks)
	if err == nil || at != "1" {
		t.Errorf("stopped at %q with %v, want block 1 with an error (a failing pipe stage fails the block)", at, err)
	}
	if at, err := run(t, blocks[:1]); err != nil || at != "done" {
		t.Errorf("a passing block: stopped at %q with %v", at, err)
	}
}

func TestContainsFindsAnExcerptWhateverItsIndentation(t *testing.T) {
	src := "func f() {\n\tif x {\n\t\treturn 1\n\t}\n}\n"
	cases := []struct {
		name, excerpt string
		want          bool
	}{
		{"the same lines one tab less are found", "if x {\n\treturn 1\n}\n", true},
		{"a changed line is not", "if x {\n\treturn 2\n}\n", false},
		{"lines out of order are not", "return 1\nif x {\n", false},
		{"an empty excerpt is not", "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := docstest.Contains(src, c.excerpt); got != c.want {
				t.Errorf("Contains = %v, want %v", got, c.want)
			}
		})
	}
}

// TestDocExcerptsMatchTheirSources: a block that says it copies a source
// file still matches it, so an excerpt cannot drift from the program the
// docs run.
func TestDocExcerptsMatchTheirSources(t *testing.T) {
	root := filepath.Join("..", "..", "..")
	docs, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	docs = append(docs, filepath.Join(root, "README.md"), filepath.Join(root, "web", "README.md"))
	n := 0
	for _, doc := range docs {
		f, err := os.Open(doc)
		if err != nil {
			t.Fatal(err)
		}
		ex, err := docstest.ExtractExcerpts(doc, f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ex {
			n++
			src, err := os.ReadFile(filepath.Join(root, e.Source))
			if err != nil {
				t.Errorf("%s: excerpt of %s: %v", e.Block, e.Source, err)
				continue
			}
			if !docstest.Contains(string(src), e.Text) {
				t.Errorf("%s: the excerpt no longer matches %s: copy it again", e.Block, e.Source)
			}
		}
	}
	if n < 2 {
		t.Errorf("found %d excerpts, want the Go and JavaScript local-stack examples at least", n)
	}
}

func TestContainsIgnoresCommentOnlyLines(t *testing.T) {
	src := "try {\n  // 1. Sign in.\n  const a = 1;\n\n  // 2. Fetch.\n  const b = 2;\n}\n"
	if !docstest.Contains(src, "const a = 1;\n\nconst b = 2;\n") {
		t.Error("an excerpt without the source's comment lines not found")
	}
	if docstest.Contains(src, "const a = 1;\nconst b = 2;\n") {
		t.Error("an excerpt that dropped a blank line found")
	}
}
