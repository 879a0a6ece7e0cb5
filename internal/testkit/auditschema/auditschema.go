// Package auditschema validates audit event details against the versioned
// JSON Schemas in events/schemas. Tests use it; the functions do not, so
// the schema library stays out of the Lambda binaries.
package auditschema

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/credbroker/credbroker/internal/broker"
)

// Dir is where the detail schemas live, relative to the module root.
const Dir = "events/schemas"

// Validate checks detail against the JSON Schema of detailType at the
// current schema version (events/schemas/<detailType>.v<N>.json), with
// formats such as date-time asserted. It finds the schemas by walking up
// from the working directory to go.mod, so it is meant for tests: producers
// validate what MarshalDetail makes of their details.
func Validate(detailType string, detail []byte) error {
	sch, err := schemaFor(detailType)
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(detail))
	if err != nil {
		return fmt.Errorf("%s detail is not JSON: %w", detailType, err)
	}
	if err := sch.Validate(inst); err != nil {
		return fmt.Errorf("%s detail: %w", detailType, err)
	}
	return nil
}

// Path returns the schema file of detailType at the current version.
func Path(detailType string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, Dir, fmt.Sprintf("%s.v%s.json", detailType, broker.AuditSchemaVersion)), nil
}

var (
	schemaMu sync.Mutex
	schemas  = map[string]*jsonschema.Schema{}
)

func schemaFor(detailType string) (*jsonschema.Schema, error) {
	schemaMu.Lock()
	defer schemaMu.Unlock()
	if s, ok := schemas[detailType]; ok {
		return s, nil
	}
	path, err := Path(detailType)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("no schema for detail type %q: %w", detailType, err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		return nil, fmt.Errorf("schema %s: %w", path, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	url := "file://" + filepath.ToSlash(path)
	if err := c.AddResource(url, doc); err != nil {
		return nil, fmt.Errorf("schema %s: %w", path, err)
	}
	s, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("schema %s: %w", path, err)
	}
	schemas[detailType] = s
	return s, nil
}

// moduleRoot walks up from the working directory to the directory of go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory: Validate runs from within the module (tests)")
		}
		dir = parent
	}
}
