package cluster

import (
	"time"

	"github.com/hashicorp/raft"
)

// Write stages: where a write's time goes on its way through this node,
// reported to Observer.ObserveWriteStage (raftogram_write_stage_seconds).
// The stages of one write are sequential on the leader except replicate,
// which nests in commit, and log_append, which commit also spans; see
// docs/metrics.md for the exact start and end of each.
const (
	// StageQueue: from Apply queueing the write to the batcher proposing
	// its entry to raft (the group-commit wait).
	StageQueue = "queue"
	// StageRaft: from raft.Apply to its future resolving (the leader's
	// append, replication, commit and the FSM apply on the leader).
	StageRaft = "raft"
	// StageLogAppend: one log store append (StoreLogs, with its fsyncs) on
	// the leader.
	StageLogAppend = "log_append"
	// StageFollowerAppend: one log store append on a follower.
	StageFollowerAppend = "follower_append"
	// StageReplicate: one AppendEntries round trip carrying entries, as the
	// leader sees it (network, the follower's decode and append, the
	// answer).
	StageReplicate = "replicate"
	// StageCommit: from the leader dispatching an entry (raft's
	// AppendedAt, before its log append) to the leader's FSM receiving it
	// committed: log_append, replication, the commit notification and the
	// FSM queue.
	StageCommit = "commit"
	// StageFSMApply: one ApplyBatch call on the leader.
	StageFSMApply = "fsm_apply"
	// StageCluster: the whole of Apply (queue + raft + handing back the
	// results), per write.
	StageCluster = "cluster"
)

// WriteStages lists every stage in the order a write meets them.
var WriteStages = []string{StageQueue, StageRaft, StageLogAppend, StageReplicate, StageFollowerAppend, StageCommit, StageFSMApply, StageCluster}

// observeStage reports d for stage to n's observer, if it has one.
func (n *Node) observeStage(stage string, d time.Duration) {
	if n.cfg.Observer != nil {
		n.cfg.Observer.ObserveWriteStage(stage, d)
	}
}

// leads reports whether this node's raft is running and leads (false
// before raft started).
func (n *Node) leads() bool {
	r := n.raftPtr.Load()
	return r != nil && r.State() == raft.Leader
}

// timedFSM is the node's FSM with the leader's commit and fsm_apply
// stages measured around ApplyBatch.
type timedFSM struct {
	FSM
	n *Node
}

// ApplyBatch applies logs through the wrapped FSM; on the leader it
// reports each command entry's commit stage and the batch's fsm_apply.
func (f timedFSM) ApplyBatch(logs []*raft.Log) []any {
	if f.n.cfg.Observer == nil || !f.n.leads() {
		return f.FSM.ApplyBatch(logs)
	}
	start := time.Now()
	for _, l := range logs {
		if l.Type == raft.LogCommand && !l.AppendedAt.IsZero() {
			f.n.observeStage(StageCommit, start.Sub(l.AppendedAt))
		}
	}
	out := f.FSM.ApplyBatch(logs)
	f.n.observeStage(StageFSMApply, time.Since(start))
	return out
}

// observeReplicate reports one append round trip (the transport's hook).
func (n *Node) observeReplicate(d time.Duration) { n.observeStage(StageReplicate, d) }
