// Package docscheck reads the project's Markdown so that its tests can hold
// the docs to the code: links and `path.md "Heading"` references resolve,
// and the defaults the configuration tables quote are the ones the template
// and the code use (docs/development.md "Tests").
package docscheck

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"unicode"

	"github.com/credbroker/credbroker/internal/samtemplate"
)

// Doc is what other files may point at in one Markdown file.
type Doc struct {
	// Headings holds each heading's text as written, without Markdown
	// (backticks, emphasis, link syntax).
	Headings map[string]bool
	// Anchors holds the fragment GitHub gives each heading.
	Anchors map[string]bool
}

// ParseDoc collects the headings of md, outside fenced code blocks.
func ParseDoc(md string) Doc {
	d := Doc{Headings: map[string]bool{}, Anchors: map[string]bool{}}
	seen := map[string]int{}
	for _, l := range prose(md) {
		m := headingRE.FindStringSubmatch(l.text)
		if m == nil {
			continue
		}
		h := plain(m[1])
		d.Headings[h] = true
		slug := Slug(h)
		if n := seen[slug]; n > 0 {
			d.Anchors[fmt.Sprintf("%s-%d", slug, n)] = true
		} else {
			d.Anchors[slug] = true
		}
		seen[slug]++
	}
	return d
}

var (
	headingRE  = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)
	mdLinkRE   = regexp.MustCompile(`\[([^\]]*)\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	codeSpanRE = regexp.MustCompile("`[^`]*`")
)

// plain drops the Markdown of a heading: backticks, emphasis and link
// targets.
func plain(h string) string {
	h = mdLinkRE.ReplaceAllString(h, "$1")
	return strings.NewReplacer("`", "", "**", "", "__", "").Replace(strings.TrimSpace(h))
}

// Slug is the fragment GitHub gives a heading: lower case, punctuation
// dropped but for '-' and '_', spaces turned into '-'.
func Slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(plain(heading)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

type line struct {
	n    int
	text string
}

// prose returns the lines of md outside fenced code blocks.
func prose(md string) []line {
	var out []line
	fence := ""
	for i, l := range strings.Split(md, "\n") {
		t := strings.TrimSpace(l)
		if fence != "" {
			if strings.HasPrefix(t, fence) {
				fence = ""
			}
			continue
		}
		if strings.HasPrefix(t, "```") || strings.HasPrefix(t, "~~~") {
			fence = t[:3]
			continue
		}
		out = append(out, line{i + 1, l})
	}
	return out
}

// Link is a Markdown link of a file.
type Link struct {
	Line   int
	Target string
}

// Links returns the inline links of md outside code blocks and code spans.
func Links(md string) []Link {
	var out []Link
	for _, l := range prose(md) {
		text := codeSpanRE.ReplaceAllString(l.text, "`code`")
		for _, m := range mdLinkRE.FindAllStringSubmatch(text, -1) {
			out = append(out, Link{Line: l.n, Target: m[2]})
		}
	}
	return out
}

// Ref is a reference of the form `docs/security.md "Revocation"`: a file and
// one of its headings.
type Ref struct {
	Line          int
	Path, Heading string
}

// QuotedRefs returns the references of text, Go, YAML, Makefile or Markdown
// alike: comment leaders are dropped and lines joined first, so that a
// reference wrapped over two comment lines is found whole. A comma may
// separate the file from the heading, and the quotes may be escaped (a Go
// string).
func QuotedRefs(text string) []Ref {
	if !strings.Contains(text, ".md") {
		return nil
	}
	joined, starts := join(text)
	var out []Ref
	for off := 0; ; {
		i := strings.Index(joined[off:], ".md")
		if i < 0 {
			return out
		}
		dot := off + i
		end := dot + len(".md")
		off = end
		start := dot
		for start > 0 && isPathByte(joined[start-1]) {
			start--
		}
		// After the file: an optional comma, a space, a quote (escaped in a
		// Go string), the heading, the closing quote.
		rest := strings.TrimPrefix(joined[end:], ",")
		if !strings.HasPrefix(rest, " ") || start == dot {
			continue
		}
		rest = strings.TrimPrefix(rest[1:], `\`)
		if !strings.HasPrefix(rest, `"`) {
			continue
		}
		heading, _, ok := strings.Cut(rest[1:], `"`)
		heading = strings.TrimSuffix(heading, `\`)
		if !ok || strings.TrimSpace(heading) == "" {
			continue
		}
		out = append(out, Ref{
			Line:    lineAt(starts, start),
			Path:    joined[start:end],
			Heading: strings.Join(strings.Fields(heading), " "),
		})
	}
}

func isPathByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '/' || c == '-'
}

// join returns text's lines joined by single spaces, each without its
// leading blanks and comment leader (//, #, *, --), and where each line
// starts in the result.
func join(text string) (string, []int) {
	var b strings.Builder
	b.Grow(len(text))
	var starts []int
	for i, l := range strings.Split(text, "\n") {
		if i > 0 {
			b.WriteByte(' ')
			l = strings.TrimLeft(l, " \t")
			for _, leader := range []string{"//", "--", "*"} {
				l = strings.TrimPrefix(l, leader)
			}
			l = strings.TrimLeft(strings.TrimLeft(l, "#"), " \t")
		}
		starts = append(starts, b.Len())
		b.WriteString(l)
	}
	return b.String(), starts
}

func lineAt(starts []int, off int) int {
	return sort.Search(len(starts), func(i int) bool { return starts[i] > off })
}

// staleRE finds the forms of reference the docs no longer have: the README's
// sections moved to docs/, and BENCHMARKS.md became docs/benchmarks.md.
var staleRE = regexp.MustCompile(`\bREADME(,? \\?"|: ")|\bmain README\b|\bBENCHMARKS\.md\b`)

// StaleRefs returns the lines of text that point at a README section or at
// BENCHMARKS.md.
func StaleRefs(text string) []int {
	if !strings.Contains(text, "README") && !strings.Contains(text, "BENCHMARKS") {
		return nil
	}
	var out []int
	for i, l := range strings.Split(text, "\n") {
		if (strings.Contains(l, "README") || strings.Contains(l, "BENCHMARKS")) && staleRE.MatchString(l) {
			out = append(out, i+1)
		}
	}
	return out
}

// Table is a Markdown table: its header cells and rows of cells, each
// trimmed.
type Table struct {
	Line   int
	Header []string
	Rows   [][]string
}

// Tables returns the tables of md.
func Tables(md string) []Table {
	var out []Table
	var cur *Table
	for _, l := range prose(md) {
		t := strings.TrimSpace(l.text)
		if !strings.HasPrefix(t, "|") {
			cur = nil
			continue
		}
		cells := cells(t)
		switch {
		case cur == nil:
			out = append(out, Table{Line: l.n, Header: cells})
			cur = &out[len(out)-1]
		case len(cur.Rows) == 0 && isRule(cells):
		default:
			cur.Rows = append(cur.Rows, cells)
		}
	}
	return out
}

// cells splits a table row on the pipes that are not escaped.
func cells(row string) []string {
	row = strings.TrimSuffix(strings.TrimPrefix(row, "|"), "|")
	var out []string
	var b strings.Builder
	for i := 0; i < len(row); i++ {
		switch {
		case row[i] == '\\' && i+1 < len(row) && row[i+1] == '|':
			b.WriteByte('|')
			i++
		case row[i] == '|':
			out = append(out, strings.TrimSpace(b.String()))
			b.Reset()
		default:
			b.WriteByte(row[i])
		}
	}
	return append(out, strings.TrimSpace(b.String()))
}

func isRule(cells []string) bool {
	for _, c := range cells {
		if strings.Trim(c, ":-") != "" || c == "" {
			return false
		}
	}
	return true
}

// Literal returns the value of a cell that is one code span and nothing
// else (`900`, `""` for the empty string); any other cell is prose.
func Literal(cell string) (string, bool) {
	if len(cell) < 2 || cell[0] != '`' || cell[len(cell)-1] != '`' || strings.Count(cell, "`") != 2 {
		return "", false
	}
	v := cell[1 : len(cell)-1]
	if v == `""` {
		v = ""
	}
	return v, true
}

// Names returns the code spans of a cell: `A`, `B` gives A and B.
func Names(cell string) []string {
	var out []string
	for _, m := range codeSpanRE.FindAllString(cell, -1) {
		out = append(out, strings.Trim(m, "`"))
	}
	return out
}

// Root returns the module's root, where template.yaml and go.mod are.
func Root() (string, error) {
	path, err := samtemplate.DefaultPath()
	return filepath.Dir(path), err
}

// Repo resolves links and references against the files under Root.
type Repo struct {
	Root string
	docs map[string]Doc
}

// Doc returns the parsed Markdown file at path (relative to Root).
func (r *Repo) Doc(path string) (Doc, error) {
	if d, ok := r.docs[path]; ok {
		return d, nil
	}
	data, err := os.ReadFile(filepath.Join(r.Root, path))
	if err != nil {
		return Doc{}, err
	}
	if r.docs == nil {
		r.docs = map[string]Doc{}
	}
	d := ParseDoc(string(data))
	r.docs[path] = d
	return d, nil
}

// CheckLink says what is wrong with a link of the Markdown file from
// (relative to Root), or nil: a relative path must exist, and a fragment
// must be a heading's anchor of the Markdown file it names.
func (r *Repo) CheckLink(from, target string) error {
	if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
		return nil
	}
	path, frag, _ := strings.Cut(target, "#")
	if path == "" {
		path = from
	} else {
		path = filepath.ToSlash(filepath.Join(filepath.Dir(from), path))
	}
	if strings.HasPrefix(path, "../") {
		return fmt.Errorf("%s leaves the repository", target)
	}
	if _, err := os.Stat(filepath.Join(r.Root, path)); err != nil {
		return fmt.Errorf("%s: no file %s", target, path)
	}
	if frag == "" || !strings.HasSuffix(path, ".md") {
		return nil
	}
	d, err := r.Doc(path)
	if err != nil {
		return err
	}
	if !d.Anchors[frag] {
		return fmt.Errorf("%s: %s has no heading with the anchor #%s", target, path, frag)
	}
	return nil
}

// CheckRef says what is wrong with a reference of the file from, or nil:
// the path is taken from the repository's root, or for a Markdown file
// from its own directory first, and must name one of its headings.
func (r *Repo) CheckRef(from string, ref Ref) error {
	candidates := []string{ref.Path}
	if strings.HasSuffix(from, ".md") {
		candidates = append([]string{filepath.ToSlash(filepath.Join(filepath.Dir(from), ref.Path))}, candidates...)
	}
	for _, path := range candidates {
		if _, err := os.Stat(filepath.Join(r.Root, path)); err != nil {
			continue
		}
		d, err := r.Doc(path)
		if err != nil {
			return err
		}
		if !d.Headings[ref.Heading] {
			return fmt.Errorf("%s has no heading %q", path, ref.Heading)
		}
		return nil
	}
	return fmt.Errorf("no file %s", ref.Path)
}
