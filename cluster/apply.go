package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"github.com/raftogram/raftogram/domain"
)

// Apply commits events as one log entry and returns the state machine's
// result for each. It returns a *domain.NotLeaderError when this node does
// not lead (nothing was written), an EUNAVAILABLE *domain.Error when the
// outcome is unknown (leadership lost or shutdown before the commit was
// confirmed: the entry may still commit, so retry with the same
// client_message_id), and an EUNAVAILABLE one when the entry could not be
// queued in time.
//
// Concurrent calls share log entries (see batch.go); ctx is not consulted
// once the events are queued, because the outcome must be reported.
func (n *Node) Apply(ctx context.Context, events []domain.Event) ([]domain.Result, error) {
	if n.raft.State() != raft.Leader {
		return nil, n.NotLeader()
	}
	p := newProposal(events)
	select {
	case n.proposals <- p:
	case <-n.stop:
		return nil, n.raftError("write", errShutdown)
	case <-ctx.Done():
		return nil, fmt.Errorf("cluster apply: %w", ctx.Err()) // not queued: nothing written
	}
	select {
	case r := <-p.done:
		if r.err == nil {
			n.observeStage(StageCluster, time.Since(p.queued))
		}
		return r.results, r.err
	case <-n.batcherDone:
		// The batcher stopped; it may have left p queued. A proposal it did
		// take is answered by its commit, so wait for that briefly first.
		select {
		case r := <-p.done:
			return r.results, r.err
		case <-time.After(n.cfg.ApplyTimeout):
			return nil, n.raftError("write", errShutdown)
		}
	}
}

// errShutdown stands for raft.ErrRaftShutdown for proposals that never
// reached raft because the node was stopping.
var errShutdown = raft.ErrRaftShutdown

// raftError maps a raft future error to the domain's vocabulary
// ([mapRaftError]), naming the leader this node knows.
func (n *Node) raftError(op string, err error) error {
	return mapRaftError(op, err, n.NotLeader)
}

// mapRaftError maps the error of a raft future for op ("write", "read") to
// the domain's vocabulary: raft.ErrNotLeader to notLeader()'s
// *domain.NotLeaderError (nothing was written); raft.ErrEnqueueTimeout to an
// EUNAVAILABLE *domain.Error saying the leader is overloaded (nothing was
// queued); raft.ErrLeadershipTransferInProgress like ErrNotLeader (raft
// refuses before appending); raft.ErrLeadershipLost,
// ErrRaftShutdown and ErrAbortedByRestore to an EUNAVAILABLE one saying the
// outcome is unknown (the entry may still commit); any other error wrapped
// as an internal one.
func mapRaftError(op string, err error, notLeader func() *domain.NotLeaderError) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		// Raft refuses both before appending anything: not executed.
		// During a hand-off no leader is known yet (Unavailable with an
		// empty NotLeader detail), so clients look again soon.
		return notLeader()
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return domain.Errorf(domain.EUNAVAILABLE, "%s not accepted: the leader is overloaded; retry", op)
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrRaftShutdown), errors.Is(err, raft.ErrAbortedByRestore):
		return domain.Errorf(domain.EUNAVAILABLE, "%s outcome unknown: %v; retry with the same client_message_id", op, err)
	default:
		return fmt.Errorf("cluster %s: %w", op, err)
	}
}
