package cluster

import (
	"context"
	"errors"
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
