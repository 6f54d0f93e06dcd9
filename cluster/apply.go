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

// raftError maps a raft future error to the domain's vocabulary.
func (n *Node) raftError(op string, err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		// Raft refuses both before appending anything: not executed.
		// During a hand-off no leader is known yet (Unavailable with an
		// empty NotLeader detail), so clients look again soon.
		return n.NotLeader()
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return domain.Errorf(domain.EUNAVAILABLE, "%s not accepted: the leader is overloaded; retry", op)
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrRaftShutdown), errors.Is(err, raft.ErrAbortedByRestore):
		return domain.Errorf(domain.EUNAVAILABLE, "%s outcome unknown: %v; retry with the same client_message_id", op, err)
	default:
		return fmt.Errorf("cluster %s: %w", op, err)
	}
}

// ReadBarrier returns nil once a read of the local projection is
// linearizable: this node has applied an entry of its current term, has
// confirmed with a quorum that it still leads, and its projection has
// applied (and made readable) everything committed when the read began.
// Concurrent calls share one confirmation round (runReads). It returns a
// *domain.NotLeaderError on a follower or a deposed leader, an EUNAVAILABLE
// *domain.Error when leadership changes meanwhile or the node shuts down,
// and ctx's error when ctx ends first.
func (n *Node) ReadBarrier(ctx context.Context) error {
	r, err := n.confirm(ctx)
	if err != nil {
		return err
	}
	return n.fsm.WaitApplied(ctx, r.target)
}

// ReadIndex is etcd's ReadIndex, served by the leader for a follower's
// linearizable read: it runs exactly the confirmation round of ReadBarrier
// (shared with concurrent reads) and returns the index a node must have
// applied to answer the read, and the term that confirmed it, without
// waiting for this node's own projection. The index is that of an entry
// every node's state machine applies (a command or configuration entry), so
// a follower's applied index reaches it. It returns the errors of
// ReadBarrier.
func (n *Node) ReadIndex(ctx context.Context) (index, term uint64, err error) {
	r, err := n.confirm(ctx)
	if err != nil {
		return 0, 0, err
	}
	return r.target, r.term, nil
}

// confirm queues a read for the next confirmation round and returns its
// outcome.
func (n *Node) confirm(ctx context.Context) (readResult, error) {
	if n.raft.State() != raft.Leader {
		return readResult{}, n.NotLeader()
	}
	w := &readWaiter{done: make(chan readResult, 1)}
	select {
	case n.reads <- w:
	case <-ctx.Done():
		return readResult{}, ctx.Err()
	case <-n.stop:
		return readResult{}, n.raftError("read", errShutdown)
	}
	var r readResult
	select {
	case r = <-w.done:
	case <-ctx.Done():
		return readResult{}, ctx.Err()
	case <-n.stop:
		return readResult{}, n.raftError("read", errShutdown)
	}
	return r, r.err
}

// WaitApplied blocks until this node's projection has applied index and
// made it readable, returning nil; it returns ctx's error (wrapped) when
// ctx ends first, or the projection's I/O error.
func (n *Node) WaitApplied(ctx context.Context, index uint64) error {
	return n.fsm.WaitApplied(ctx, index)
}

// AppliedIndex returns the last log index applied to this node's
// projection.
func (n *Node) AppliedIndex() uint64 { return n.fsm.AppliedIndex() }

// readWaiter is one ReadBarrier call waiting for a confirmation round.
type readWaiter struct{ done chan readResult } // buffered, receives once

type readResult struct {
	target uint64 // the index the projection must reach
	term   uint64 // the term that confirmed it
	err    error
}

// runReads owns the read confirmation rounds until n.stop closes. Every
// round serves the calls queued when it starts, so each call's round began
// after the call did (its commit index is read after the read began), and
// a crowd of readers costs one VerifyLeader per round instead of one each.
func (n *Node) runReads() {
	defer n.wg.Done()
	for {
		var batch []*readWaiter
		select {
		case w := <-n.reads:
			batch = append(batch, w)
		case <-n.stop:
			return
		}
		for queued := true; queued; {
			select {
			case w := <-n.reads:
				batch = append(batch, w)
			default:
				queued = false
			}
		}
		n.readRounds.Add(1)
		target, term, err := n.readIndex()
		for _, w := range batch {
			w.done <- readResult{target: target, term: term, err: err}
		}
	}
}

// readIndex runs one confirmation round and returns the index the
// projection must reach for a linearizable read, and the term.
func (n *Node) readIndex() (uint64, uint64, error) {
	if n.raft.State() != raft.Leader {
		return 0, 0, n.NotLeader()
	}
	term := n.raft.CurrentTerm()
	if n.stalledRecently() {
		// After a stall, heartbeat responses to requests sent before it can
		// still count as votes in VerifyLeader; only a new entry committed
		// in this term proves this node still leads.
		n.readyTerm.Store(0)
	}
	if err := n.ensureReady(term); err != nil {
		return 0, 0, err
	}
	commit := n.raft.CommitIndex()
	if err := n.await(n.raft.VerifyLeader()); err != nil {
		return 0, 0, n.raftError("read", err)
	}
	if n.raft.CurrentTerm() != term {
		return 0, 0, domain.Errorf(domain.EUNAVAILABLE, "read aborted: leadership changed; retry")
	}
	target, err := n.lastAppliedEntryAtOrBelow(commit)
	if err != nil {
		return 0, 0, err
	}
	if target == 0 {
		// This projection already holds every state-machine entry up to
		// commit: its applied index is such an entry (or later, also
		// committed), which a follower reaches too.
		target = n.fsm.AppliedIndex()
	}
	return target, term, nil
}

// await returns f's error, or raft.ErrRaftShutdown once the node stops.
// hashicorp/raft never answers a barrier or verify future still queued in
// its (buffered) apply channel when it shuts down, so waiting on f alone
// could block Close forever (seen in TestTransferLeadershipToRefusesUnknownNodes).
// The goroutine reading f ends when raft answers; a future raft never
// answers is left to the exiting process, which is the only time that
// happens.
func (n *Node) await(f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-n.stop:
		return raft.ErrRaftShutdown
	}
}

// ensureReady makes sure an entry of term has been committed and applied
// (a barrier), so the commit index this leader reports is current.
func (n *Node) ensureReady(term uint64) error {
	if n.readyTerm.Load() == term {
		return nil
	}
	n.barrierMu.Lock()
	defer n.barrierMu.Unlock()
	if n.readyTerm.Load() == term {
		return nil
	}
	if err := n.await(n.raft.Barrier(n.cfg.ApplyTimeout)); err != nil {
		return n.raftError("read", err)
	}
	if n.raft.CurrentTerm() != term {
		return domain.Errorf(domain.EUNAVAILABLE, "read aborted: leadership changed; retry")
	}
	n.readyTerm.Store(term)
	return nil
}

// lastAppliedEntryAtOrBelow returns the highest index <= commit that reaches
// the FSM (a command or configuration entry). No-op and barrier entries never
// reach it, so waiting for their index would wait forever.
func (n *Node) lastAppliedEntryAtOrBelow(commit uint64) (uint64, error) {
	for i := commit; i > n.fsm.AppliedIndex(); i-- {
		var l raft.Log
		err := n.logs.GetLog(i, &l)
		switch {
		case errors.Is(err, raft.ErrLogNotFound):
			return 0, nil // compacted into a snapshot the FSM already holds
		case err != nil:
			return 0, fmt.Errorf("cluster read: get log %d: %w", i, err)
		case l.Type == raft.LogCommand || l.Type == raft.LogConfiguration:
			return i, nil
		}
	}
	return 0, nil
}

// stallTick is how often watchStalls notes that the process runs.
const stallTick = 10 * time.Millisecond

// stallLimit is the gap between ticks that counts as a stall (the process
// was stopped, swapped out or starved of CPU).
func (n *Node) stallLimit() time.Duration {
	return max(n.cfg.LeaderLeaseTimeout/2, 5*stallTick)
}

// watchStalls ticks until the node stops. When the gap since the previous
// tick exceeds stallLimit, the process was frozen: the next read must
// re-prove leadership with a barrier (see ReadBarrier).
func (n *Node) watchStalls() {
	defer n.wg.Done()
	t := time.NewTicker(stallTick)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
			now := time.Now()
			if gap := now.Sub(time.Unix(0, n.lastTick.Load())); gap > n.stallLimit() {
				n.readyTerm.Store(0)
				n.log.Warn("process stalled; the next read re-proves leadership with a barrier", "stall", gap)
			}
			n.lastTick.Store(now.UnixNano())
		}
	}
}

// stalledRecently reports whether the stall watcher has not run for longer
// than stallLimit, which means the process is just resuming from a freeze
// the watcher has not seen yet.
func (n *Node) stalledRecently() bool {
	return time.Since(time.Unix(0, n.lastTick.Load())) > n.stallLimit()
}
