package cli

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// Output formats of the listings.
const (
	FormatTable = "table"
	FormatJSON  = "json"
	FormatCSV   = "csv"
)

// Rows streams a listing as its rows arrive, in one of the formats: a
// readable table, a JSON array (one element per line) or CSV. Nothing is
// held beyond a table's pending block, so a listing of a whole table takes
// no more memory than one of ten rows. Safe for concurrent use: parallel
// scan segments add rows as they find them.
type Rows struct {
	mu     sync.Mutex
	w      io.Writer
	format string
	header []string
	n      int
	err    error
	tab    *tabwriter.Writer
	csv    *csv.Writer
}

// tableBlock is how many rows a table aligns at a time: a long listing
// comes out in aligned blocks instead of waiting for its last row.
const tableBlock = 500

func NewRows(w io.Writer, format string, header ...string) *Rows {
	r := &Rows{w: w, format: format, header: header}
	switch format {
	case FormatCSV:
		r.csv = csv.NewWriter(w)
	case FormatTable:
		r.tab = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	}
	return r
}

// Add writes one row: v for JSON, cells (in header order) for the others.
func (r *Rows) Add(v any, cells ...string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	first := r.n == 0
	r.n++
	switch r.format {
	case FormatJSON:
		b, err := json.Marshal(v)
		if err != nil {
			r.err = err
			return err
		}
		sep := ",\n"
		if first {
			sep = "[\n"
		}
		_, r.err = fmt.Fprintf(r.w, "%s%s", sep, b)
	case FormatCSV:
		if first {
			_ = r.csv.Write(r.header)
		}
		_ = r.csv.Write(cells)
		r.csv.Flush()
		r.err = r.csv.Error()
	default:
		if first || (r.n-1)%tableBlock == 0 {
			r.tabLine(r.header)
		}
		r.tabLine(cells)
		if r.n%tableBlock == 0 {
			r.err = r.tab.Flush()
		}
	}
	return r.err
}

func (r *Rows) tabLine(cells []string) {
	for i, c := range cells {
		if i > 0 {
			_, _ = io.WriteString(r.tab, "\t")
		}
		_, _ = io.WriteString(r.tab, c)
	}
	_, _ = io.WriteString(r.tab, "\n")
}

// Count is the number of rows added so far.
func (r *Rows) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// Close ends the listing: the JSON array's bracket, the table's last
// block, CSV's header when there was no row.
func (r *Rows) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	switch r.format {
	case FormatJSON:
		end := "\n]\n"
		if r.n == 0 {
			end = "[]\n"
		}
		_, r.err = io.WriteString(r.w, end)
	case FormatCSV:
		if r.n == 0 {
			_ = r.csv.Write(r.header)
		}
		r.csv.Flush()
		r.err = r.csv.Error()
	default:
		r.err = r.tab.Flush()
	}
	return r.err
}

// PrintJSON writes v as indented JSON.
func PrintJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Progress reports a long scan on stderr: a line every few seconds while
// it runs, so that an operator sees it move, and a summary at the end.
type Progress struct {
	env   *Env
	label string // "credbroker admin who-can"
	unit  string // "policy items"
	quiet bool
	start time.Time
	// Items counts what the scan read.
	Items atomic.Int64
	stop  chan struct{}
	done  chan struct{}
}

// progressEvery is the interval between progress lines.
const progressEvery = 3 * time.Second

func StartProgress(env *Env, label, unit string, quiet bool) *Progress {
	p := &Progress{env: env, label: label, unit: unit, quiet: quiet, start: env.Now(),
		stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		if quiet {
			return
		}
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				fmt.Fprintf(env.Stderr, "%s: %d %s read, %s\n", p.label, p.Items.Load(), p.unit, p.elapsed())
			}
		}
	}()
	return p
}

func (p *Progress) elapsed() time.Duration {
	return p.env.Now().Sub(p.start).Round(time.Millisecond)
}

// Finish stops the periodic lines and writes the summary: what was read,
// and what the command found; when the scan failed (err), that it stopped
// there, since a count of what a partial scan found would mislead.
func (p *Progress) Finish(found string, err error) {
	close(p.stop)
	<-p.done
	if p.quiet {
		return
	}
	if err != nil {
		fmt.Fprintf(p.env.Stderr, "%s: stopped after %d %s read in %s: the scan failed (below); nothing it found is complete\n", p.label, p.Items.Load(), p.unit, p.elapsed())
		return
	}
	fmt.Fprintf(p.env.Stderr, "%s: %d %s read in %s: %s\n", p.label, p.Items.Load(), p.unit, p.elapsed(), found)
}

// LockedWriter serializes the writes of several goroutines to W: a log and
// progress lines sharing stderr.
type LockedWriter struct {
	mu sync.Mutex
	W  io.Writer
}

func (l *LockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.W.Write(p)
}

// Folder is a grant's prefix as a table cell: "(whole bucket)" for none.
func Folder(prefix string) string {
	if prefix == "" {
		return "(whole bucket)"
	}
	return prefix
}

// Until is a grant's or membership's end as a table cell: "-" for none.
func Until(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
