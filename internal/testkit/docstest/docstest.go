// Package docstest runs the shell blocks of the docs as written, the way a
// reader pastes them into one terminal, so that an example cannot rot:
// TestDocsRunAsWritten runs them against a seeded local stack of its own.
//
// A block is a fenced block of language sh or bash. A block that cannot run
// there (it starts the stack itself, or needs an AWS account) is named by
// an HTML comment on the line before its fence,
//
//	<!-- docs-test: make-run -->
//
// and the test skips it by that name, with the reason it keeps in one list.
//
// A block of any language that copies part of a source file says so,
//
//	<!-- docs-test: excerpt examples/local-go/main.go -->
//
// and TestDocExcerptsMatchTheirSources checks that its lines are still
// there, in order and together (indentation aside).
package docstest

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
)

// Block is one shell block of a document.
type Block struct {
	File string
	Line int    // of the opening fence
	Name string // from the docs-test comment, "" when unnamed
	Text string
}

func (b Block) String() string {
	if b.Name != "" {
		return fmt.Sprintf("%s:%d (%s)", b.File, b.Line, b.Name)
	}
	return fmt.Sprintf("%s:%d", b.File, b.Line)
}

var (
	nameComment    = regexp.MustCompile(`^<!--\s*docs-test:\s*([a-z0-9-]+)\s*-->$`)
	excerptComment = regexp.MustCompile(`^<!--\s*docs-test:\s*excerpt\s+(\S+)\s*-->$`)
)

// Excerpt is a block that copies part of a source file.
type Excerpt struct {
	Block
	Source string // the file it copies, relative to the repository's root
}

// ExtractExcerpts returns the blocks a docs-test excerpt comment names.
func ExtractExcerpts(file string, r io.Reader) ([]Excerpt, error) {
	var (
		out     []Excerpt
		cur     *Excerpt
		fence   string
		pending string
		lineNo  int
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case fence != "" && trimmed == fence:
			if cur != nil {
				out = append(out, *cur)
			}
			cur, fence = nil, ""
		case fence != "":
			if cur != nil {
				cur.Text += line + "\n"
			}
		case excerptComment.MatchString(trimmed):
			pending = excerptComment.FindStringSubmatch(trimmed)[1]
		case strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~"):
			fence = trimmed[:3]
			if pending != "" {
				cur = &Excerpt{Block: Block{File: file, Line: lineNo}, Source: pending}
			}
			pending = ""
		case trimmed != "":
			pending = ""
		}
	}
	if fence != "" {
		return nil, fmt.Errorf("%s: a fence opened before the end is never closed", file)
	}
	return out, sc.Err()
}

// Contains reports whether the lines of excerpt appear in source in order
// and together, each compared without its leading white space; lines that
// are only a // comment do not count on either side (an excerpt may drop
// the source's step-by-step comments).
func Contains(source, excerpt string) bool {
	strip := func(s string) []string {
		var lines []string
		for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
			if l = strings.TrimLeft(l, " \t"); !strings.HasPrefix(l, "//") {
				lines = append(lines, l)
			}
		}
		return lines
	}
	src, ex := strip(source), strip(excerpt)
	if len(ex) == 0 || len(ex) == 1 && ex[0] == "" {
		return false
	}
	for i := 0; i+len(ex) <= len(src); i++ {
		if slices.Equal(src[i:i+len(ex)], ex) {
			return true
		}
	}
	return false
}

// Extract returns the shell blocks of a Markdown document, in order.
func Extract(file string, r io.Reader) ([]Block, error) {
	var (
		blocks  []Block
		cur     *Block
		fence   string
		pending string // name from a comment just before a fence
		lineNo  int
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if cur != nil {
			if trimmed == fence {
				blocks = append(blocks, *cur)
				cur, fence = nil, ""
				continue
			}
			cur.Text += line + "\n"
			continue
		}
		if fence != "" { // inside a fence of another language
			if trimmed == fence {
				fence = ""
			}
			continue
		}
		if m := nameComment.FindStringSubmatch(trimmed); m != nil {
			pending = m[1]
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			marker := trimmed[:3]
			lang := strings.Fields(strings.TrimLeft(trimmed, marker[:1]) + " ")
			fence = marker
			if len(lang) > 0 && (lang[0] == "sh" || lang[0] == "bash") {
				cur = &Block{File: file, Line: lineNo, Name: pending}
			}
			pending = ""
			continue
		}
		if trimmed != "" {
			pending = ""
		}
	}
	if cur != nil || fence != "" {
		return nil, fmt.Errorf("%s: a fence opened before the end is never closed", file)
	}
	return blocks, sc.Err()
}

// Script is one bash script that runs blocks in order, stopping at the
// first command that fails; before each block it writes the block's index
// to the file named by $DOCSTEST_MARK, so that a failure can be pinned on
// its block.
func Script(blocks []Block) string {
	var b strings.Builder
	b.WriteString("set -eo pipefail\n")
	for i, bl := range blocks {
		fmt.Fprintf(&b, "echo %d > \"$DOCSTEST_MARK\"\necho '>>> %s' >&2\n", i, strings.ReplaceAll(bl.String(), "'", ""))
		b.WriteString(bl.Text)
	}
	b.WriteString("echo done > \"$DOCSTEST_MARK\"\n")
	return b.String()
}
