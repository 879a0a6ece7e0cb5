package client

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/credbroker/credbroker/client/internal/atomicfile"
)

// Cache keeps a Client's answers between processes: the credbroker
// command runs once per AWS CLI call and answers from it. The Client owns
// the format; a Cache stores one opaque blob.
type Cache interface {
	// Load returns what Store stored, or (nil, nil) when there is nothing.
	Load(ctx context.Context) ([]byte, error)
	Store(ctx context.Context, data []byte) error
}

// FileCache is a Cache in a file only its owner can read (mode 0600, in a
// directory created with mode 0700), replaced atomically. A file that
// others may read is not used (and is replaced by the next store). The
// file holds credentials: give each user and endpoint their own.
type FileCache struct {
	Path string
}

func (f FileCache) Load(context.Context) ([]byte, error)       { return atomicfile.Read(f.Path) }
func (f FileCache) Store(_ context.Context, data []byte) error { return atomicfile.Write(f.Path, data) }

// cacheFile is what a Client stores: the answers of one policyVersion by
// project ("" for all grants).
type cacheFile struct {
	Endpoint      string                  `json:"endpoint"`
	PolicyVersion string                  `json:"policyVersion"`
	Answers       map[string]cachedAnswer `json:"answers"`
}

type cachedAnswer struct {
	FetchedAt time.Time       `json:"fetchedAt"`
	CheckedAt time.Time       `json:"checkedAt,omitzero"`
	Answer    json.RawMessage `json:"answer"`
}

// snapshot is what persist writes: the answers held and the scopes whose
// stored answer must go.
type snapshot struct {
	version string
	answers map[string]cachedAnswer
	dropped []string
}

// readCache reads and decodes the stored blob; nil when there is none, it
// is unreadable, or it belongs to another endpoint.
func (c *Client) readCache(ctx context.Context) *cacheFile {
	data, err := c.o.Cache.Load(ctx)
	if err != nil {
		c.o.Logger.WarnContext(ctx, "credbroker: credential cache unreadable; fetching instead", "err", err)
		return nil
	}
	if data == nil {
		return nil
	}
	var f cacheFile
	if err := json.Unmarshal(data, &f); err != nil || f.Endpoint != c.endpoint {
		return nil
	}
	return &f
}

// loadLocked fills the entries from the Cache, once per Client.
func (c *Client) loadLocked(ctx context.Context) {
	if c.o.Cache == nil {
		return
	}
	f := c.readCache(ctx)
	if f == nil {
		return
	}
	for project, ca := range f.Answers {
		a, err := parseAnswer(ca.Answer)
		if err != nil || a.PolicyVersion != f.PolicyVersion || ca.FetchedAt.IsZero() {
			continue
		}
		c.entries[project] = &entry{answer: a, fetchedAt: ca.FetchedAt, checkedAt: ca.CheckedAt, staleAt: a.staleAt(ca.FetchedAt, c.o.Margin)}
		c.cutoffs.learn(a)
	}
	c.version = f.PolicyVersion
	c.dropDeniedLocked()
}

func (c *Client) snapshotLocked() *snapshot {
	if c.o.Cache == nil {
		return nil
	}
	s := &snapshot{version: c.version, answers: map[string]cachedAnswer{}}
	for project, e := range c.entries {
		if e.answer == nil {
			s.dropped = append(s.dropped, project)
			continue
		}
		raw, err := json.Marshal(e.answer)
		if err != nil {
			continue
		}
		s.answers[project] = cachedAnswer{FetchedAt: e.fetchedAt, CheckedAt: e.checkedAt, Answer: raw}
	}
	return s
}

// persist merges s into the stored blob: answers that other processes
// stored for other projects stay when they have the same version.
func (c *Client) persist(s *snapshot) {
	if s == nil {
		return
	}
	c.persistMu.Lock()
	defer c.persistMu.Unlock()
	ctx := context.Background()
	out := cacheFile{Endpoint: c.endpoint, PolicyVersion: s.version, Answers: s.answers}
	if old := c.readCache(ctx); old != nil && old.PolicyVersion == s.version {
		for project, ca := range old.Answers {
			if _, held := out.Answers[project]; !held && !slices.Contains(s.dropped, project) {
				out.Answers[project] = ca
			}
		}
	}
	data, err := json.Marshal(out)
	if err == nil {
		err = c.o.Cache.Store(ctx, data)
	}
	if err != nil {
		c.o.Logger.Warn("credbroker: credential cache not written", "err", err)
	}
}
