package revoker

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/credbroker/credbroker/internal/broker"
)

// Records keeps deny-list records durably (ddbstore.Store): the list as
// bytes it does not read, with optimistic concurrency on their version.
type Records interface {
	LoadDenyList(ctx context.Context) (broker.DenyListRecord, error)
	SaveDenyList(ctx context.Context, prev int64, next broker.DenyListRecord) error
}

// RecordStore is a Store over Records: it encodes the List as JSON, and
// treats a record it cannot decode, or whose version disagrees with its
// list's, as an unreadable item (broker.ErrCorruptItem) the next save may
// replace.
type RecordStore struct{ Records Records }

var _ Store = RecordStore{}

// LoadDenyList implements Store.
func (r RecordStore) LoadDenyList(ctx context.Context) (List, error) {
	const op = "load deny list"
	rec, err := r.Records.LoadDenyList(ctx)
	if err != nil {
		return List{Version: rec.Version}, err
	}
	if rec.Version == 0 && len(rec.List) == 0 {
		return List{}, nil
	}
	var l List
	if err := json.Unmarshal(rec.List, &l); err != nil {
		return List{Version: rec.Version}, broker.Wrap(broker.Internal, op, fmt.Errorf("%w: %w", broker.ErrCorruptItem, err))
	}
	if rec.Version != l.Version {
		return List{Version: rec.Version}, broker.Wrap(broker.Internal, op, fmt.Errorf("%w: version attribute %d disagrees with the list's %d", broker.ErrCorruptItem, rec.Version, l.Version))
	}
	return l, nil
}

// SaveDenyList implements Store.
func (r RecordStore) SaveDenyList(ctx context.Context, prev int64, next List) error {
	b, err := json.Marshal(next)
	if err != nil {
		return broker.Wrap(broker.Internal, "encode deny list", err)
	}
	// The fallbacks' cutoff goes apart for the endpoint: a resources'
	// fallback counts too, since the endpoint cannot tell which sets hold
	// those resources.
	return r.Records.SaveDenyList(ctx, prev, broker.DenyListRecord{Version: next.Version, List: b, AllBefore: next.Fallback()})
}
