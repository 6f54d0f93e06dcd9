package projection

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// recorder is an Observer that keeps what it is told.
type recorder struct {
	mu        sync.Mutex
	applied   []int // entries per Apply
	commits   int
	snapshots []int64
}

func (r *recorder) ObserveApply(entries int, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied = append(r.applied, entries)
}

func (r *recorder) ObserveCommit(time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.commits++
}

func (r *recorder) ObserveSnapshot(size int64, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snapshots = append(r.snapshots, size)
}

// The Observer hears of applies, commits and snapshots; Stats reports the
// open transaction's age, the files and the checkpoints.
func TestObserverAndStats(t *testing.T) {
	rec := &recorder{}
	dir := t.TempDir()
	s, err := Open(context.Background(), filepath.Join(dir, FileName), Options{CommitDelay: time.Hour, Observer: rec})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustApply(t, s, create(1, "c", "c"), send(2, "c", "m1"), send(3, "c", "m2"))
	st := s.Stats()
	if st.OpenTxAge <= 0 || st.OpenTxAge > time.Minute {
		t.Errorf("OpenTxAge with a transaction open = %v, want > 0", st.OpenTxAge)
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	st = s.Stats()
	if st.OpenTxAge != 0 || st.DBBytes <= 0 || st.WALBytes <= 0 {
		t.Errorf("Stats() after the commit = %+v, want no open transaction and both files non-empty", st)
	}
	// The checkpointer runs after each commit, on its own goroutine.
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Checkpoints == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint counted 10s after a commit")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.Backup(context.Background(), filepath.Join(dir, "copy.db")); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if fmt.Sprint(rec.applied) != "[3]" || rec.commits != 1 || len(rec.snapshots) != 1 || rec.snapshots[0] < 4096 {
		t.Errorf("observed applies %v, commits %d, snapshots %v; want [3], 1, one of at least a page", rec.applied, rec.commits, rec.snapshots)
	}
}
