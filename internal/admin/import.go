package admin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/credbroker/credbroker/internal/broker"
	"github.com/credbroker/credbroker/internal/cli"
	"github.com/credbroker/credbroker/internal/projector"
)

// admin import writes many records from a file, all or nothing as far as
// validation goes: one invalid line and nothing is written.

func init() {
	register(cli.Command{Path: "admin import", Summary: "write memberships and buckets from a CSV or JSON-lines file (validated; --dry-run)", Run: runImport})
}

const importHelp = `usage: credbroker admin import [flags] FILE

FILE (or - for stdin) holds one record per line, as CSV with a header row or
as JSON lines. The fields:
  user, project, role     a membership (role "read" or "write"; none: read)
  expiresAt               with a membership: when it ends (RFC 3339 with an
                          offset, 2026-12-31T18:00:00Z; none: never)
  project, bucket, prefix a bucket of a project (prefix: a folder of it)
  op                      "put" (the default) or "delete" (keys only)
In CSV an empty cell is an absent field; in JSON lines null is a NULL
attribute, which the rules refuse. Every line is validated first with the
projector's rules (docs/contract.md "Source records"); if any line is invalid, the
errors are listed with their line numbers and nothing is written. Records
that already say the same are not rewritten.

Flags:
`

// importFields are the fields a line may carry.
var importFields = []string{"op", "user", "project", "role", "expiresAt", "bucket", "prefix"}

func runImport(ctx context.Context, env *cli.Env, args []string) error {
	fs := cli.NewFlags(env, "admin import")
	tf := cli.AddTargetFlags(fs, cli.MembershipTable, cli.BaseRole)
	format := fs.String("format", "auto", `"csv", "jsonl", or "auto": by the file's extension, else by its first character`)
	dry := fs.Bool("dry-run", false, "report what would change, and every invalid line, and write nothing")
	asJSON := fs.Bool("json", false, `print the report as JSON: [{"line","action","pk","sk","change","written"}]`)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), importHelp)
		fs.PrintDefaults()
	}
	files, err := cli.ParseWithArgs(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return cli.Usagef("one FILE expected (see -h)")
	}
	file := files[0]
	if !slices.Contains([]string{"auto", "csv", "jsonl"}, *format) {
		return cli.Usagef(`--format must be "csv", "jsonl" or "auto"`)
	}
	data, err := readInput(env, file)
	if err != nil {
		return err
	}
	a, err := openAdmin(ctx, env, tf, cli.MembershipTable)
	if err != nil {
		return err
	}
	lines, err := decodeImport(data, pickFormat(*format, file, data))
	if err != nil {
		return err
	}
	if len(lines) == 0 {
		return cli.Usagef("%s holds no records", file)
	}

	var ops []op
	var invalid []importLine
	seen := map[[2]string]int{}
	for _, l := range lines {
		if l.err == nil {
			l.err = a.checkLine(l.op)
		}
		if l.err == nil {
			k := [2]string{l.op.pk, l.op.sk}
			if first, dup := seen[k]; dup {
				l.err = fmt.Errorf("the same record as line %d (%s / %s)", first, l.op.pk, l.op.sk)
			} else {
				seen[k] = l.op.line
			}
		}
		if l.err != nil {
			invalid = append(invalid, l)
			continue
		}
		ops = append(ops, l.op)
	}
	for _, l := range invalid {
		fmt.Fprintf(env.Stderr, "line %d: %s\n", l.op.line, cli.OneLine(cli.Message(l.err)))
	}
	if len(invalid) > 0 && !*dry {
		return broker.Errorf(broker.Invalid, "import", "%d of %d records invalid (listed above): nothing written", len(invalid), len(lines))
	}

	changes, err := a.apply(ctx, ops, *dry)
	if err != nil {
		return err
	}
	if err := printChanges(env, changes, *asJSON, *dry); err != nil {
		return err
	}
	counts := map[string]int{}
	var failed []change
	for _, c := range changes {
		counts[c.Action]++
		if c.err != nil {
			failed = append(failed, c)
		}
	}
	summary := func(tense map[string]string) string {
		return fmt.Sprintf("%d %s, %d %s, %d %s, %d unchanged, %d not found to delete",
			counts[actionCreate], tense[actionCreate], counts[actionUpdate], tense[actionUpdate],
			counts[actionDelete], tense[actionDelete], counts[actionUnchanged], counts[actionAbsent])
	}
	future := map[string]string{actionCreate: "to create", actionUpdate: "to update", actionDelete: "to delete"}
	past := map[string]string{actionCreate: "created", actionUpdate: "updated", actionDelete: "deleted"}
	switch {
	case *dry && len(invalid) > 0:
		return broker.Errorf(broker.Invalid, "import", "dry run: %s; %d of %d records invalid (listed above)", summary(future), len(invalid), len(lines))
	case *dry:
		fmt.Fprintf(env.Stderr, "dry run: %s; nothing written\n", summary(future))
		return nil
	case len(failed) > 0:
		for _, c := range failed {
			fmt.Fprintf(env.Stderr, "line %d: not written: %s\n", c.Line, cli.OneLine(cli.Message(a.target.AWSError(c.err))))
		}
		return broker.Errorf(broker.Transient, "import", "%d of %d writes failed (listed above), the others are done; run the same import again: it writes only what is still missing",
			len(failed), counts[actionCreate]+counts[actionUpdate]+counts[actionDelete])
	}
	fmt.Fprintf(env.Stderr, "done: %s\n", summary(past))
	return nil
}

func printChanges(env *cli.Env, changes []change, asJSON, dry bool) error {
	format := cli.FormatTable
	if asJSON {
		format = cli.FormatJSON
	}
	out := cli.NewRows(env.Stdout, format, "LINE", "ACTION", "RECORD", "CHANGE")
	for _, c := range changes {
		action := c.Action
		if !dry && c.writes() {
			action = map[bool]string{true: c.verb(false), false: "failed to " + c.Action}[c.Written]
		}
		if err := out.Add(c, fmt.Sprint(c.Line), action, c.PK+" / "+c.SK, c.Detail); err != nil {
			return err
		}
	}
	return out.Close()
}

// readInput reads FILE, or stdin for "-".
func readInput(env *cli.Env, name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(env.Stdin)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, cli.Usagef("%v", err)
	}
	return data, nil
}

func pickFormat(format, name string, data []byte) string {
	if format != "auto" {
		return format
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".csv":
		return "csv"
	case ".jsonl", ".ndjson", ".json":
		return "jsonl"
	}
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
		return "jsonl"
	}
	return "csv"
}

// importLine is one record of the file, or why it is not one.
type importLine struct {
	op  op
	err error
}

// fields is a line's fields as read: present ones only, with their
// DynamoDB-like attribute for role and prefix.
type fields struct {
	str   map[string]string
	attrs map[string]broker.Attr
	bad   error
}

func decodeImport(data []byte, format string) ([]importLine, error) {
	if format == "csv" {
		return decodeCSV(data)
	}
	return decodeJSONLines(data)
}

func decodeCSV(data []byte) ([]importLine, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	r.Comment = '#'
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		return nil, nil
	}
	if err != nil {
		return nil, cli.Usagef("CSV header: %v", err)
	}
	for i, h := range header {
		// Column names match whatever their case (expiresAt, expiresat).
		k := slices.IndexFunc(importFields, func(f string) bool { return strings.EqualFold(f, strings.TrimSpace(h)) })
		if k < 0 {
			return nil, cli.Usagef("CSV header: unknown column %q (the columns are %s)", h, strings.Join(importFields, ", "))
		}
		header[i] = importFields[k]
		if slices.Contains(header[:i], header[i]) {
			return nil, cli.Usagef("CSV header: column %q twice", h)
		}
	}
	var out []importLine
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		line, _ := r.FieldPos(0)
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				line = pe.StartLine
			}
			out = append(out, importLine{op: op{line: line}, err: err})
			if pe == nil {
				return out, nil
			}
			continue
		}
		if len(rec) != len(header) {
			out = append(out, importLine{op: op{line: line}, err: fmt.Errorf("%d fields, the header has %d", len(rec), len(header))})
			continue
		}
		f := fields{str: map[string]string{}, attrs: map[string]broker.Attr{}}
		for i, v := range rec {
			if v == "" {
				continue // an empty cell is an absent field
			}
			f.str[header[i]] = v
			f.attrs[header[i]] = broker.StringAttr(v)
		}
		out = append(out, f.line(line))
	}
}

func decodeJSONLines(data []byte) ([]importLine, error) {
	var out []importLine
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(text, &raw); err != nil {
			out = append(out, importLine{op: op{line: n}, err: fmt.Errorf("not a JSON object: %v", err)})
			continue
		}
		f := fields{str: map[string]string{}, attrs: map[string]broker.Attr{}}
		for _, name := range slices.Sorted(maps.Keys(raw)) {
			if !slices.Contains(importFields, name) {
				f.bad = fmt.Errorf("unknown field %q (the fields are %s)", name, strings.Join(importFields, ", "))
				break
			}
			a := jsonAttr(raw[name])
			f.attrs[name] = a
			if a.Type == "S" {
				f.str[name] = a.S
			} else if name != "role" && name != "prefix" && name != "expiresAt" {
				f.bad = fmt.Errorf("field %q must be a string", name)
				break
			}
		}
		out = append(out, f.line(n))
	}
	if err := sc.Err(); err != nil {
		return nil, cli.Usagef("read: %v", err)
	}
	return out, nil
}

// jsonAttr maps a JSON value to the attribute DynamoDB would hold for it,
// so that the rules judge it as the projector would judge that item.
func jsonAttr(raw json.RawMessage) broker.Attr {
	t := bytes.TrimSpace(raw)
	// null first: encoding/json decodes it into a string as "".
	if bytes.Equal(t, []byte("null")) {
		return broker.Attr{Present: true, Type: "NULL"}
	}
	var s string
	if err := json.Unmarshal(t, &s); err == nil {
		return broker.StringAttr(s)
	}
	typ := "N"
	switch {
	case bytes.Equal(t, []byte("true")), bytes.Equal(t, []byte("false")):
		typ = "BOOL"
	case len(t) > 0 && t[0] == '[':
		typ = "L"
	case len(t) > 0 && t[0] == '{':
		typ = "M"
	}
	return broker.Attr{Present: true, Type: typ}
}

// line turns a line's fields into an op: a membership when it names a
// user, a bucket record when it names a bucket.
func (f fields) line(n int) importLine {
	l := importLine{op: op{line: n}}
	if f.bad != nil {
		l.err = f.bad
		return l
	}
	_, hasUser := f.attrs["user"]
	_, hasBucket := f.attrs["bucket"]
	_, hasRole := f.attrs["role"]
	_, hasPrefix := f.attrs["prefix"]
	_, hasExpiry := f.attrs["expiresAt"]
	var it broker.SourceItem
	switch {
	case hasUser && hasBucket:
		l.err = errors.New("a line names a user (a membership) or a bucket (a bucket of a project), not both")
		return l
	case hasUser && hasPrefix:
		l.err = errors.New("a membership has no prefix")
		return l
	case hasBucket && hasRole:
		l.err = errors.New("a bucket record has no role")
		return l
	case hasBucket && hasExpiry:
		l.err = errors.New("a bucket record has no expiresAt (memberships end, buckets do not)")
		return l
	case hasUser:
		it = broker.SourceItem{PK: broker.UserKeyPrefix + f.str["user"], SK: broker.ProjectKeyPrefix + f.str["project"], Role: f.attrs["role"], ExpiresAt: f.attrs["expiresAt"]}
	case hasBucket:
		it = broker.SourceItem{PK: broker.ProjectKeyPrefix + f.str["project"], SK: broker.BucketKeyPrefix + f.str["bucket"], Prefix: f.attrs["prefix"]}
	default:
		l.err = errors.New("a line names a user (a membership) or a bucket (a bucket of a project)")
		return l
	}
	l.op.pk, l.op.sk = it.PK, it.SK
	switch f.str["op"] {
	case "", "put":
		l.op.put = &it
	case "delete":
		if hasRole || hasPrefix || hasExpiry {
			l.err = errors.New(`op "delete" takes the keys only: user and project, or project and bucket`)
		}
	default:
		l.err = fmt.Errorf(`op %q: "put" or "delete"`, f.str["op"])
	}
	return l
}

// checkLine validates an op as the single commands do: a put with the
// projector's rules, a delete by its keys.
func (a *admin) checkLine(o op) error {
	if o.put != nil {
		_, err := projector.Validate(a.compiler, *o.put)
		return err
	}
	_, err := broker.ParseRef(o.pk, o.sk)
	return err
}
