package cluster

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// logEntryOverhead is what a cached entry costs beside its data and
// extensions: the raft.Log struct and the map slot.
const logEntryOverhead = 128

// defaultLogCacheBytes bounds the log cache when Config.MaxLogCacheBytes is 0.
const defaultLogCacheBytes = 64 << 20

// logCache is a raft.LogStore that keeps the newest entries in memory within
// a byte budget (raft.LogCache bounds only their number, and an entry may
// hold megabytes). It holds a contiguous run of indexes, first..last; older
// entries are evicted first, an entry larger than the budget is not cached,
// and everything else is read from the store beneath. Writes go to the store
// first: the cache never holds what the store does not.
type logCache struct {
	store   raft.LogStore
	budget  int
	observe func(time.Duration) // each StoreLogs' time in the store (nil: not measured)

	mu          sync.Mutex
	logs        map[uint64]*raft.Log
	first, last uint64 // the cached run; empty when len(logs) == 0
	bytes       int
}

// newLogCache returns store behind a cache of at most budget bytes.
func newLogCache(store raft.LogStore, budget int) *logCache {
	return &logCache{store: store, budget: budget, logs: make(map[uint64]*raft.Log)}
}

func entryBytes(l *raft.Log) int { return len(l.Data) + len(l.Extensions) + logEntryOverhead }

// GetLog returns the entry at index from memory or the store; the store's
// raft.ErrLogNotFound when it has none.
func (c *logCache) GetLog(index uint64, out *raft.Log) error {
	c.mu.Lock()
	l, ok := c.logs[index]
	c.mu.Unlock()
	if ok {
		*out = *l
		return nil
	}
	return c.store.GetLog(index, out)
}

// StoreLog stores one entry; see StoreLogs.
func (c *logCache) StoreLog(l *raft.Log) error { return c.StoreLogs([]*raft.Log{l}) }

// StoreLogs writes the entries to the store, then caches them; on a store
// error it drops the cache and returns the error.
func (c *logCache) StoreLogs(logs []*raft.Log) error {
	start := time.Now()
	err := c.store.StoreLogs(logs)
	if c.observe != nil {
		c.observe(time.Since(start))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.clear()
		return err
	}
	for _, l := range logs {
		if len(c.logs) > 0 && l.Index != c.last+1 {
			c.clear() // not the next index (cannot happen after DeleteRange): start afresh
		}
		size := entryBytes(l)
		if size > c.budget {
			c.clear()
			continue
		}
		for len(c.logs) > 0 && c.bytes+size > c.budget {
			c.bytes -= entryBytes(c.logs[c.first])
			delete(c.logs, c.first)
			c.first++
		}
		if len(c.logs) == 0 {
			c.first = l.Index
		}
		c.logs[l.Index] = l
		c.last = l.Index
		c.bytes += size
	}
	return nil
}

// DeleteRange deletes entries min..max from the store and the cache, and
// returns the store's error.
func (c *logCache) DeleteRange(min, max uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Drop them from the cache even if the store fails: it must never
	// serve what the store may no longer hold.
	switch {
	case len(c.logs) == 0 || max < c.first || min > c.last:
	case min <= c.first && max >= c.last:
		c.clear()
	case min <= c.first: // a prefix: compaction
		for i := c.first; i <= max; i++ {
			c.bytes -= entryBytes(c.logs[i])
			delete(c.logs, i)
		}
		c.first = max + 1
	case max >= c.last: // a suffix: a conflicting tail
		for i := min; i <= c.last; i++ {
			c.bytes -= entryBytes(c.logs[i])
			delete(c.logs, i)
		}
		c.last = min - 1
	default:
		c.clear()
	}
	return c.store.DeleteRange(min, max)
}

// FirstIndex returns the store's first index.
func (c *logCache) FirstIndex() (uint64, error) { return c.store.FirstIndex() }

// LastIndex returns the store's last index.
func (c *logCache) LastIndex() (uint64, error) { return c.store.LastIndex() }

// cached returns how many entries and bytes the cache holds.
func (c *logCache) cached() (entries, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.logs), c.bytes
}

// clear empties the cache. c.mu must be held.
func (c *logCache) clear() {
	clear(c.logs)
	c.first, c.last, c.bytes = 0, 0, 0
}

// IsMonotonic reports whether the store beneath refuses gaps between
// appends (raft.MonotonicLogStore; raft-wal does): raft then deletes the
// whole log after installing a snapshot instead of leaving a gap before
// the entries that follow it.
func (c *logCache) IsMonotonic() bool {
	m, ok := c.store.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}
