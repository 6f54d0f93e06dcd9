package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Liveness bounds (see Liveness).
const (
	// LiveTickMax is the oldest the stall watcher's tick may be.
	LiveTickMax = 5 * time.Second
	// LiveRaftWait is how long raft's main loop has to answer.
	LiveRaftWait = 5 * time.Second
	// LiveApplyMax is the longest one batch may stay in the state machine.
	LiveApplyMax = 30 * time.Second
)

// Check is the outcome of one named health check: Err is nil when it passed.
type Check struct {
	Name string
	Err  error
}

// applyClock is implemented by an FSM that reports a running batch (a
// *fsm.FSM).
type applyClock interface {
	ApplyingSince() time.Time
}

// Liveness checks that this node's own loops tick, whatever the rest of the
// cluster does (a node cut off from every peer is live):
//
//   - loops: the stall watcher goroutine ticked within LiveTickMax (the
//     process is not frozen or starved, and the node's goroutines run);
//   - raft: raft's main loop answered a VerifyLeader within LiveRaftWait (a
//     follower or candidate answers at once that it does not lead, a leader
//     after one heartbeat round, or on stepping down); any answer counts;
//   - apply: the state machine is between batches, or has been in the
//     current one for less than LiveApplyMax (idle, or making progress).
//
// It waits at most LiveRaftWait (less if ctx ends first).
func (n *Node) Liveness(ctx context.Context) []Check {
	checks := make([]Check, 0, 3)
	tick := Check{Name: "loops"}
	if age := time.Since(time.Unix(0, n.lastTick.Load())); age > LiveTickMax {
		tick.Err = fmt.Errorf("the node's watchdog last ticked %s ago (limit %s): the process is frozen or starved", age.Round(time.Millisecond), LiveTickMax)
	}
	checks = append(checks, tick)

	rc := Check{Name: "raft"}
	ctx, cancel := context.WithTimeout(ctx, LiveRaftWait)
	defer cancel()
	round := n.raftRound()
	select {
	case <-round.done:
		if errors.Is(round.err, raft.ErrRaftShutdown) {
			rc.Err = round.err
		}
	case <-n.stop:
		rc.Err = raft.ErrRaftShutdown
	case <-ctx.Done():
		rc.Err = fmt.Errorf("raft's main loop has not answered for %s (limit %s)", time.Since(round.start).Round(time.Millisecond), LiveRaftWait)
	}
	checks = append(checks, rc)

	ac := Check{Name: "apply"}
	if c, ok := n.fsm.(applyClock); ok {
		if since := c.ApplyingSince(); !since.IsZero() && time.Since(since) > LiveApplyMax {
			ac.Err = fmt.Errorf("one batch has been applying for %s (limit %s)", time.Since(since).Round(time.Second), LiveApplyMax)
		}
	}
	return append(checks, ac)
}

// liveRound is one VerifyLeader sent to raft's main loop by Liveness.
type liveRound struct {
	start time.Time
	done  chan struct{} // closed when raft answered
	err   error         // raft's answer; set before done closes
}

// raftRound returns the round still waiting for raft, or starts a new one,
// so a stuck main loop holds one waiting goroutine, not one per probe.
// VerifyLeader itself blocks until the main loop takes the request, so
// the goroutine makes the call.
func (n *Node) raftRound() *liveRound {
	n.liveMu.Lock()
	defer n.liveMu.Unlock()
	if r := n.live; r != nil {
		select {
		case <-r.done:
		default:
			return r
		}
	}
	r := &liveRound{start: time.Now(), done: make(chan struct{})}
	n.live = r
	go func() {
		r.err = n.raft.VerifyLeader().Error()
		close(r.done)
	}()
	return r
}
