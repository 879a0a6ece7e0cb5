package main

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
	formatTable = "table"
	formatJSON  = "json"
	formatCSV   = "csv"
)

// rows streams a listing as its rows arrive, in one of the formats: a
// readable table, a JSON array (one element per line) or CSV. Nothing is
// held beyond a table's pending block, so a listing of a whole table takes
// no more memory than one of ten rows. Safe for concurrent use: parallel
// scan segments add rows as they find them.
type rows struct {
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

func newRows(w io.Writer, format string, header ...string) *rows {
	r := &rows{w: w, format: format, header: header}
	switch format {
	case formatCSV:
		r.csv = csv.NewWriter(w)
	case formatTable:
		r.tab = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	}
	return r
}

// add writes one row: v for JSON, cells (in header order) for the others.
func (r *rows) add(v any, cells ...string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	first := r.n == 0
	r.n++
	switch r.format {
	case formatJSON:
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
	case formatCSV:
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

func (r *rows) tabLine(cells []string) {
	for i, c := range cells {
		if i > 0 {
			_, _ = io.WriteString(r.tab, "\t")
		}
		_, _ = io.WriteString(r.tab, c)
	}
	_, _ = io.WriteString(r.tab, "\n")
}

// count is the number of rows added so far.
func (r *rows) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// close ends the listing: the JSON array's bracket, the table's last
// block, CSV's header when there was no row.
func (r *rows) close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	switch r.format {
	case formatJSON:
		end := "\n]\n"
		if r.n == 0 {
			end = "[]\n"
		}
		_, r.err = io.WriteString(r.w, end)
	case formatCSV:
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

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// progress reports a long scan on stderr: a line every few seconds while
// it runs, so that an operator sees it move, and a summary at the end.
type progress struct {
	env   *cmdEnv
	label string // "credbroker admin who-can"
	unit  string // "policy items"
	quiet bool
	start time.Time
	items atomic.Int64
	stop  chan struct{}
	done  chan struct{}
}

// progressEvery is the interval between progress lines.
const progressEvery = 3 * time.Second

func startProgress(env *cmdEnv, label, unit string, quiet bool) *progress {
	p := &progress{env: env, label: label, unit: unit, quiet: quiet, start: env.now(),
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
				fmt.Fprintf(env.Stderr, "%s: %d %s read, %s\n", p.label, p.items.Load(), p.unit, p.elapsed())
			}
		}
	}()
	return p
}

func (p *progress) elapsed() time.Duration {
	return p.env.now().Sub(p.start).Round(time.Millisecond)
}

// finish stops the periodic lines and writes the summary: what was read,
// and what the command found.
func (p *progress) finish(found string) {
	close(p.stop)
	<-p.done
	if !p.quiet {
		fmt.Fprintf(p.env.Stderr, "%s: %d %s read in %s: %s\n", p.label, p.items.Load(), p.unit, p.elapsed(), found)
	}
}
