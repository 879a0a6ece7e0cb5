package credentials

import (
	"container/list"
	"sync"
	"time"

	"github.com/credbroker/credbroker/internal/broker"
)

// CacheKey names one credential set of one answer. PolicyVersion is part of
// it, so a user whose grants changed never gets credentials scoped to the
// older grants; Project is the ?project= filter ("" for none), since a
// narrowed answer has its own session policies.
type CacheKey struct {
	UserID        string
	PolicyVersion string
	Project       string
	Set           int
}

// Cache keeps issued credential sets in a warm container, so that a client
// polling the endpoint does not cost an AssumeRole per call. An entry is
// reused only while more than half of its lifetime remains: a caller always
// gets credentials valid for at least half the configured session duration.
// The least recently used entry goes first when the cache is full. A nil
// Cache, or one of size 0, keeps nothing. It is safe for concurrent use.
type Cache struct {
	size int
	now  func() time.Time

	mu    sync.Mutex
	order *list.List // front is the most recently used
	items map[CacheKey]*list.Element
}

type cacheEntry struct {
	key    CacheKey
	creds  broker.Credentials
	issued time.Time
}

// NewCache returns a cache of at most size entries; size <= 0 disables it.
// now is the clock (time.Now when nil).
func NewCache(size int, now func() time.Time) *Cache {
	if now == nil {
		now = time.Now
	}
	return &Cache{size: max(size, 0), now: now, order: list.New(), items: make(map[CacheKey]*list.Element)}
}

// Get returns the entry for key if more than half of its lifetime remains,
// and drops it otherwise.
func (c *Cache) Get(key CacheKey) (broker.Credentials, bool) {
	if c == nil || c.size == 0 {
		return broker.Credentials{}, false
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return broker.Credentials{}, false
	}
	e := el.Value.(*cacheEntry)
	if !fresh(e, now) {
		c.order.Remove(el)
		delete(c.items, key)
		return broker.Credentials{}, false
	}
	c.order.MoveToFront(el)
	return e.creds, true
}

// fresh reports whether more than half of the entry's lifetime remains.
func fresh(e *cacheEntry, now time.Time) bool {
	lifetime := e.creds.Expiration.Sub(e.issued)
	return e.creds.Expiration.Sub(now) > lifetime/2
}

// Put stores creds for key, issued now, evicting the least recently used
// entry when the cache is full. Credentials that are not fresh now are not
// stored.
func (c *Cache) Put(key CacheKey, creds broker.Credentials) {
	if c == nil || c.size == 0 {
		return
	}
	e := &cacheEntry{key: key, creds: creds, issued: c.now()}
	if !e.creds.Expiration.After(e.issued) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		el.Value = e
		c.order.MoveToFront(el)
		return
	}
	for c.order.Len() >= c.size {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.items, oldest.Value.(*cacheEntry).key)
	}
	c.items[key] = c.order.PushFront(e)
}

// Len returns the number of entries, fresh or not.
func (c *Cache) Len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
