package cluster

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/raftogram/raftogram/domain"
)

// A node keeps its log in the store it was configured with across
// restarts, and refuses to start with the other store on a data directory
// that holds a log, without creating the other store's files, so it never
// starts an empty log beside an existing one.
func TestLogStoreRefusesTheOtherStoresLog(t *testing.T) {
	for _, c := range []struct{ first, second, firstFiles, secondFiles string }{
		{LogStoreBoltDB, LogStoreWAL, LogFileName, WALDirName},
		{LogStoreWAL, LogStoreBoltDB, WALDirName, LogFileName},
	} {
		t.Run(c.first+" then "+c.second, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			dir := t.TempDir()
			n, store := openSingleNodeIn(t, dir, c.first)
			rs, err := n.Apply(ctx, []domain.Event{domain.ChannelCreated{ChannelID: "c", Name: "c", CreatedAt: time.Now()}})
			if err != nil || rs[0].Err != nil {
				t.Fatal(err, rs)
			}
			written := rs[0].Index
			if err := n.Close(ctx); err != nil {
				t.Fatal(err)
			}
			store.Close()

			_, _, err = tryOpenSingleNode(t, dir, c.second)
			if !errors.Is(err, ErrOtherLogStore) || !strings.Contains(err.Error(), filepath.Join(dir, c.firstFiles)) ||
				!strings.Contains(err.Error(), "raft.log_store: "+c.first) {
				t.Fatalf("open with %s over a %s log: %v; want ErrOtherLogStore naming %s and the setting", c.second, c.first, err, c.firstFiles)
			}
			if _, err := os.Lstat(filepath.Join(dir, c.secondFiles)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the refused open left %s behind: %v", c.secondFiles, err)
			}

			n, _ = openSingleNodeIn(t, dir, c.first)
			var l raft.Log
			if err := n.logs.GetLog(written, &l); err != nil {
				t.Fatalf("entry %d after a restart on %s: %v", written, c.first, err)
			}
			if got := n.fsm.AppliedIndex(); got < written {
				t.Fatalf("applied index %d after restart, want >= %d", got, written)
			}
		})
	}
}

func TestUnknownLogStoreIsRefused(t *testing.T) {
	dir := t.TempDir()
	_, _, err := tryOpenSingleNode(t, dir, "sqlite")
	if err == nil || !strings.Contains(err.Error(), `unknown raft.log_store "sqlite"`) {
		t.Fatalf("open with log store sqlite: %v", err)
	}
}

// Every store answers raft.ErrLogNotFound for entries a compaction (a
// prefix DeleteRange) removed, also while they still sit in raft-wal's
// open segment, and keeps serving the rest, across a reopen.
func TestLogStoreForgetsCompactedEntries(t *testing.T) {
	for _, ls := range LogStores {
		t.Run(ls, func(t *testing.T) {
			dir := t.TempDir()
			hlog := newHCLogger(slog.New(slog.DiscardHandler), nil)
			s, err := openLogStore(dir, ls, hlog)
			if err != nil {
				t.Fatal(err)
			}
			var logs []*raft.Log
			for i := uint64(1); i <= 10; i++ {
				logs = append(logs, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte{byte(i)}})
			}
			if err := s.StoreLogs(logs); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteRange(1, 5); err != nil {
				t.Fatal(err)
			}
			check := func(s logStore) {
				t.Helper()
				if first, err := s.FirstIndex(); err != nil || first != 6 {
					t.Fatalf("first index %d (%v), want 6", first, err)
				}
				var l raft.Log
				for i := uint64(1); i <= 5; i++ {
					if err := s.GetLog(i, &l); !errors.Is(err, raft.ErrLogNotFound) {
						t.Fatalf("compacted entry %d: %v (data %v), want ErrLogNotFound", i, err, l.Data)
					}
				}
				if err := s.GetLog(6, &l); err != nil || l.Data[0] != 6 {
					t.Fatalf("entry 6: %v %v", err, l.Data)
				}
			}
			check(s)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if s, err = openLogStore(dir, ls, hlog); err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			check(s)
		})
	}
}
