package cluster

import (
	"errors"
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
)

func entry(index uint64, size int) *raft.Log {
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: make([]byte, size)}
}

// countingStore is an in-memory LogStore that counts reads, so a test can
// tell a cache hit from a store read, and can be told to fail writes.
type countingStore struct {
	*raft.InmemStore
	reads    int
	failNext bool
}

func (s *countingStore) GetLog(index uint64, out *raft.Log) error {
	s.reads++
	return s.InmemStore.GetLog(index, out)
}

func (s *countingStore) StoreLogs(logs []*raft.Log) error {
	if s.failNext {
		s.failNext = false
		return errors.New("disk full")
	}
	return s.InmemStore.StoreLogs(logs)
}

func (s *countingStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// get reads index through c and reports whether the store was asked.
func get(t *testing.T, c *logCache, s *countingStore, index uint64) (raft.Log, bool) {
	t.Helper()
	before := s.reads
	var l raft.Log
	if err := c.GetLog(index, &l); err != nil {
		t.Fatalf("GetLog(%d) = %v", index, err)
	}
	if l.Index != index {
		t.Fatalf("GetLog(%d) returned entry %d", index, l.Index)
	}
	return l, s.reads > before
}

func TestLogCacheStaysWithinItsByteBudget(t *testing.T) {
	s := &countingStore{InmemStore: raft.NewInmemStore()}
	budget := 3 * (1000 + logEntryOverhead)
	c := newLogCache(s, budget)
	for i := uint64(1); i <= 10; i++ {
		if err := c.StoreLogs([]*raft.Log{entry(i, 1000)}); err != nil {
			t.Fatal(err)
		}
		if _, bytes := c.cached(); bytes > budget {
			t.Fatalf("after entry %d the cache holds %d bytes, over its budget of %d", i, bytes, budget)
		}
	}
	if n, _ := c.cached(); n != 3 {
		t.Fatalf("cache holds %d entries, want the newest 3", n)
	}
	for i := uint64(8); i <= 10; i++ {
		if _, fromStore := get(t, c, s, i); fromStore {
			t.Fatalf("entry %d, one of the newest, was read from the store", i)
		}
	}
	for i := uint64(1); i <= 7; i++ {
		if _, fromStore := get(t, c, s, i); !fromStore {
			t.Fatalf("evicted entry %d was not read from the store", i)
		}
	}
	// An entry larger than the whole budget goes to the store only.
	if err := c.StoreLog(entry(11, budget)); err != nil {
		t.Fatal(err)
	}
	if l, fromStore := get(t, c, s, 11); !fromStore || len(l.Data) != budget {
		t.Fatalf("oversized entry: from store %v, %d bytes", fromStore, len(l.Data))
	}
	if n, bytes := c.cached(); n != 0 || bytes != 0 {
		t.Fatalf("cache holds %d entries, %d bytes after an oversized entry; want none (the run is broken)", n, bytes)
	}
}

func TestLogCacheNeverServesDeletedOrOverwrittenEntries(t *testing.T) {
	s := &countingStore{InmemStore: raft.NewInmemStore()}
	c := newLogCache(s, 1<<20)
	for i := uint64(1); i <= 6; i++ {
		if err := c.StoreLog(&raft.Log{Index: i, Term: 1, Data: []byte(fmt.Sprint("t1-", i))}); err != nil {
			t.Fatal(err)
		}
	}
	// A conflicting tail: 5..6 are deleted, then rewritten in term 2.
	if err := c.DeleteRange(5, 6); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := c.GetLog(5, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("GetLog(5) after deleting it = %v, %+v; want ErrLogNotFound", err, l)
	}
	if err := c.StoreLogs([]*raft.Log{{Index: 5, Term: 2, Data: []byte("t2-5")}, {Index: 6, Term: 2, Data: []byte("t2-6")}}); err != nil {
		t.Fatal(err)
	}
	for i := uint64(5); i <= 6; i++ {
		if l, _ := get(t, c, s, i); l.Term != 2 || string(l.Data) != fmt.Sprint("t2-", i) {
			t.Fatalf("entry %d = term %d %q, want the rewritten term 2", i, l.Term, l.Data)
		}
	}
	// Compaction: a prefix goes.
	if err := c.DeleteRange(1, 3); err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 3; i++ {
		if err := c.GetLog(i, &l); !errors.Is(err, raft.ErrLogNotFound) {
			t.Fatalf("GetLog(%d) after compaction = %v; want ErrLogNotFound", i, err)
		}
	}
	if l, fromStore := get(t, c, s, 4); fromStore || string(l.Data) != "t1-4" {
		t.Fatalf("entry 4 after compaction: from store %v, %q", fromStore, l.Data)
	}
	// A failed write leaves nothing cached that the store lacks.
	s.failNext = true
	if err := c.StoreLog(&raft.Log{Index: 7, Term: 2}); err == nil {
		t.Fatal("StoreLog succeeded although the store failed")
	}
	if err := c.GetLog(7, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("GetLog(7) after a failed write = %v; want ErrLogNotFound", err)
	}
	if first, err := c.FirstIndex(); err != nil || first != 4 {
		t.Fatalf("FirstIndex = %d, %v; want 4", first, err)
	}
	if last, err := c.LastIndex(); err != nil || last != 6 {
		t.Fatalf("LastIndex = %d, %v; want 6", last, err)
	}
}
