package credentials

import (
	"container/list"
	"sync"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
)

// CacheKey names one credential set of one answer. PolicyVersion is part of
// it, so a user whose grants changed never gets credentials scoped to the
// older grants; Project is the ?project= filter ("" for none) and Split
// says the sets were recompiled smaller after STS refused one, since either
// gives the answer session policies of its own. Cutoff is the user's
// revocation cutoff (Unix milliseconds, 0 for none) the sets were minted
// under: their sessions carry its tag, and only that cutoff's deny spares
// them.
type CacheKey struct {
	UserID        string
	PolicyVersion string
	Project       string
	Split         bool
	Cutoff        int64
	Set           int
}

// Cache keeps issued credential sets in a warm instance, so that a client
// polling the endpoint does not cost an AssumeRole per call. An entry is
// reused only while more than half of its lifetime remains: a caller always
// gets credentials valid for at least half the configured session duration.
// The least recently used entry goes first when the cache is full. A nil
// Cache, or one of size 0, keeps nothing. It is safe for concurrent use.
type Cache struct {
	now   func() time.Time
	items *lru[CacheKey, cacheEntry]
}

type cacheEntry struct {
	creds broker.Credentials
	// issued is when STS issued the credentials (their expiration minus
	// the session duration).
	issued time.Time
}

// NewCache returns a cache of at most size entries; size <= 0 disables it.
// now is the clock (time.Now when nil).
func NewCache(size int, now func() time.Time) *Cache {
	if now == nil {
		now = time.Now
	}
	return &Cache{now: now, items: newLRU[CacheKey, cacheEntry](size)}
}

// Get returns the entry for key if more than half of its lifetime remains
// and it was issued at or after notBefore (a request for fresh credentials
// sets it), and drops it otherwise.
func (c *Cache) Get(key CacheKey, notBefore time.Time) (broker.Credentials, bool) {
	if c == nil {
		return broker.Credentials{}, false
	}
	now := c.now()
	e, ok := c.items.get(key, func(e cacheEntry) bool {
		lifetime := e.creds.Expiration.Sub(e.issued)
		return e.creds.Expiration.Sub(now) > lifetime/2 && !e.issued.Before(notBefore)
	})
	return e.creds, ok
}

// Put stores creds for key, issued at issued. Credentials already expired
// are not stored.
func (c *Cache) Put(key CacheKey, creds broker.Credentials, issued time.Time) {
	if c == nil || !creds.Expiration.After(c.now()) || !creds.Expiration.After(issued) {
		return
	}
	c.items.put(key, cacheEntry{creds: creds, issued: issued})
}

// Len returns the number of entries, fresh or not.
func (c *Cache) Len() int {
	if c == nil {
		return 0
	}
	return c.items.len()
}

// lru is a map bounded to size entries that forgets the least recently
// used one first. size <= 0 keeps nothing.
type lru[K comparable, V any] struct {
	size  int
	mu    sync.Mutex
	order *list.List // front is the most recently used
	items map[K]*list.Element
}

type lruEntry[K comparable, V any] struct {
	key K
	val V
}

func newLRU[K comparable, V any](size int) *lru[K, V] {
	return &lru[K, V]{size: max(size, 0), order: list.New(), items: make(map[K]*list.Element)}
}

// get returns the value for key while keep says it is still good; one that
// is not is removed.
func (l *lru[K, V]) get(key K, keep func(V) bool) (V, bool) {
	var zero V
	l.mu.Lock()
	defer l.mu.Unlock()
	el, ok := l.items[key]
	if !ok {
		return zero, false
	}
	e := el.Value.(*lruEntry[K, V])
	if keep != nil && !keep(e.val) {
		l.order.Remove(el)
		delete(l.items, key)
		return zero, false
	}
	l.order.MoveToFront(el)
	return e.val, true
}

func (l *lru[K, V]) put(key K, val V) {
	if l.size == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if el, ok := l.items[key]; ok {
		el.Value.(*lruEntry[K, V]).val = val
		l.order.MoveToFront(el)
		return
	}
	for l.order.Len() >= l.size {
		oldest := l.order.Back()
		l.order.Remove(oldest)
		delete(l.items, oldest.Value.(*lruEntry[K, V]).key)
	}
	l.items[key] = l.order.PushFront(&lruEntry[K, V]{key: key, val: val})
}

func (l *lru[K, V]) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.order.Len()
}
