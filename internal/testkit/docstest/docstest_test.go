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
