package grpcapi

import (
	"context"
	"errors"
	"time"

	peerv1 "github.com/raftogram/raftogram/api/proto/raftogram/peer/v1"
	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/domain"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Read consistency. A read or stream names how fresh its answer must be:
//
//   - UNSPECIFIED: the leader only, after its read barrier; other nodes
//     answer NotLeader (the contract before levels existed).
//   - LINEARIZABLE: any node. The leader passes its read barrier; a
//     follower asks the leader for a read index (Peer.ReadIndex: the same
//     quorum-confirmed round), waits until it has applied that index, then
//     reads its own projection. A follower that cannot reach a leader, or
//     cannot catch up, fails with the deadline: it never answers stale.
//   - AT_LEAST: any node, once it has applied min_index (waiting within the
//     deadline). min_index 0 is always reached, so it behaves as LOCAL.
//   - LOCAL: any node, at once, from what it has applied.
//
// min_index is read only with AT_LEAST.

// fresh makes this node's projection fresh enough, and readable, for a
// read at level. It returns a *domain.NotLeaderError for UNSPECIFIED on a
// follower, an EINVALID *domain.Error for an unknown level, the context's
// error when the node cannot become fresh enough in time, and the read
// barrier's errors.
func (s *Server) fresh(ctx context.Context, level raftogramv1.ReadConsistency, minIndex uint64) error {
	switch level {
	case raftogramv1.ReadConsistency_READ_CONSISTENCY_UNSPECIFIED:
		return s.cluster.ReadBarrier(ctx)
	case raftogramv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE:
		return s.linearizable(ctx)
	case raftogramv1.ReadConsistency_READ_CONSISTENCY_AT_LEAST:
		return s.cluster.WaitApplied(ctx, minIndex)
	case raftogramv1.ReadConsistency_READ_CONSISTENCY_LOCAL:
		return s.cluster.WaitApplied(ctx, 0) // makes what is applied readable
	default:
		return domain.Errorf(domain.EINVALID, "unknown consistency %d", int32(level))
	}
}

// Retry pacing of a follower looking for the leader.
const (
	minRetryWait = 10 * time.Millisecond
	maxRetryWait = 500 * time.Millisecond
)

// linearizable passes the read barrier on the leader, or obtains a read
// index from the leader and waits until this node has applied it. It
// retries while leadership moves, until ctx ends.
func (s *Server) linearizable(ctx context.Context) error {
	wait := minRetryWait
	for {
		err := s.cluster.ReadBarrier(ctx)
		var nl *domain.NotLeaderError
		if !errors.As(err, &nl) {
			return err
		}
		if nl.LeaderID != "" {
			index, err := s.readIndexFrom(ctx, nl.LeaderGRPCAddr)
			if err == nil {
				return s.cluster.WaitApplied(ctx, index)
			}
			s.log.Debug("read index from the leader failed; retrying", "leader_id", nl.LeaderID, "error", err)
		}
		if err := s.pause(ctx, wait); err != nil {
			return err
		}
		wait = min(2*wait, maxRetryWait)
	}
}

// readIndexFrom asks the node at addr for a read index.
func (s *Server) readIndexFrom(ctx context.Context, addr string) (uint64, error) {
	conn, err := s.peers.Conn(addr)
	if err != nil {
		return 0, err
	}
	resp, err := peerv1.NewPeerClient(conn).ReadIndex(ctx, &peerv1.ReadIndexRequest{NodeId: s.cluster.NodeID()})
	if err != nil {
		return 0, err
	}
	return resp.GetReadIndex(), nil
}

// pause waits for d or the next change of leader, whichever comes first.
// It returns ctx's error when ctx ends first and Unavailable when the server
// shuts down.
func (s *Server) pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.cluster.Watch():
	case <-s.done:
		return status.Error(codes.Unavailable, "server shutting down")
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}
