package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
)

// CompactLog takes a snapshot on this node now and deletes every log entry
// it covers, keeping no trailing entries, so that the content of redacted
// messages and deleted channels leaves this node's Raft log (raft.db's
// freed pages keep the bytes until bolt reuses them). It restores the
// configured trailing_logs afterwards. Followers that lag behind the
// snapshot then catch up by snapshot install instead of log replay. Run it
// on every node. It returns the snapshot's index, or raft's error (an
// error wrapping raft.ErrNothingNewToSnapshot when nothing was applied
// since the last snapshot, after which the log is compacted already if a
// previous CompactLog ran).
func (n *Node) CompactLog(ctx context.Context) (uint64, error) {
	n.compactMu.Lock()
	defer n.compactMu.Unlock()
	cfg := n.raft.ReloadableConfig()
	compact := cfg
	compact.TrailingLogs = 0
	if err := n.raft.ReloadConfig(compact); err != nil {
		return 0, fmt.Errorf("compact log: %w", err)
	}
	defer func() {
		if err := n.raft.ReloadConfig(cfg); err != nil {
			n.log.Error("restoring trailing_logs after a log compaction failed", "error", err)
		}
	}()
	f := n.raft.Snapshot()
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if err != nil {
			if errors.Is(err, raft.ErrNothingNewToSnapshot) {
				return 0, fmt.Errorf("compact log: %w", err)
			}
			return 0, fmt.Errorf("compact log: snapshot: %w", err)
		}
	case <-ctx.Done():
		// The snapshot goes on; trailing_logs is restored now, so it may
		// keep entries.
		return 0, fmt.Errorf("compact log: %w", ctx.Err())
	}
	meta, rc, err := f.Open()
	if err != nil {
		return 0, fmt.Errorf("compact log: open snapshot: %w", err)
	}
	rc.Close()
	return meta.Index, nil
}
