package cluster

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/raft"
	"github.com/raftogram/raftogram/domain"
)

// Peers returns every voter of the static cluster, this node included, in
// configuration order.
func (n *Node) Peers() []Peer {
	return append([]Peer(nil), n.cfg.Peers...)
}

// LogAppliedIndex returns the last log entry of any kind raft has handed
// to the FSM or consumed itself (no-op, barrier and configuration entries
// never reach the projection, so its applied index stays below the commit
// index on an idle cluster).
func (n *Node) LogAppliedIndex() uint64 { return n.raft.AppliedIndex() }

// Snapshot makes raft take a snapshot now and waits for it. It returns the
// index the snapshot covers and created true; when nothing was applied
// since the newest snapshot it takes none and returns that snapshot's index
// with created false. It returns an EUNAVAILABLE *domain.Error while the
// node shuts down or cannot snapshot yet (a configuration entry is not
// applied), and any other error (EINTERNAL) when the snapshot could not be written.
func (n *Node) Snapshot() (index uint64, created bool, err error) {
	// raft itself refuses only before anything was applied; it would write
	// a second snapshot of the same index.
	stats := n.raft.Stats()
	applied, aerr := strconv.ParseUint(stats["applied_index"], 10, 64)
	last, lerr := strconv.ParseUint(stats["last_snapshot_index"], 10, 64)
	if aerr == nil && lerr == nil && last != 0 && applied == last {
		return last, false, nil
	}
	f := n.raft.Snapshot()
	err = f.Error()
	switch {
	case err == nil:
	case errors.Is(err, raft.ErrNothingNewToSnapshot):
		return n.Status().SnapshotIndex, false, nil
	case errors.Is(err, raft.ErrRaftShutdown):
		return 0, false, domain.Errorf(domain.EUNAVAILABLE, "cannot snapshot: the node is shutting down")
	case strings.HasPrefix(err.Error(), "cannot take snapshot now"): // raft has no sentinel for it
		return 0, false, domain.Errorf(domain.EUNAVAILABLE, "cannot snapshot yet: %v; retry", err)
	default:
		return 0, false, fmt.Errorf("cluster: snapshot: %w", err)
	}
	meta, rc, err := f.Open()
	if err != nil {
		return 0, false, fmt.Errorf("cluster: open the new snapshot: %w", err)
	}
	rc.Close()
	n.log.Info("snapshot taken on request", "index", meta.Index, "term", meta.Term)
	return meta.Index, true, nil
}
