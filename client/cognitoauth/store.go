package cognitoauth

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/credbroker/credbroker/client/internal/atomicfile"
)

// FileStore keeps tokens in a JSON file that only its owner can read
// (mode 0600, in a directory created with mode 0700). A file that others
// may read or write is refused rather than used.
type FileStore struct {
	Path string
}

// Load reads the tokens, or returns (nil, nil) when the file does not exist.
func (f FileStore) Load(context.Context) (*Tokens, error) {
	data, err := atomicfile.Read(f.Path)
	if err != nil || data == nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var t Tokens
	if err := dec.Decode(&t); err != nil {
		// The decoder's message can quote the file's content: keep it out.
		return nil, fmt.Errorf("token file %s is not a credbroker token file; sign in again", f.Path)
	}
	return &t, nil
}

// Save replaces the file atomically.
func (f FileStore) Save(_ context.Context, t *Tokens) error {
	data, err := json.Marshal(t)
	if err != nil {
		return err
	}
	return atomicfile.Write(f.Path, data)
}
