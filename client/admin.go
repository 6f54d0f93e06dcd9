package client

import (
	"context"
	"fmt"
	"sync"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"google.golang.org/grpc"
)

// NodeStatus describes one node as it reported itself (raftogram.v1.Admin
// GetNodeStatus), or why it could not be asked.
type NodeStatus struct {
	// Addr is the gRPC address asked.
	Addr string
	// Err is why the node did not answer (ClusterStatus only); the other
	// fields are then zero.
	Err error

	NodeID string
	// Role is leader, follower, candidate or shutdown.
	Role string
	// LeaderID and LeaderAddr name the leader this node follows; empty when
	// it knows none.
	LeaderID, LeaderAddr string
	Term                 uint64
	CommitIndex          uint64
	AppliedIndex         uint64
	LastLogIndex         uint64
	// SnapshotIndex is the index of the newest snapshot the node holds.
	SnapshotIndex uint64
	// Version is the build of the node's binary.
	Version string
	// LastContact is how long ago the node last heard from the leader; 0 on
	// the leader and when unknown.
	LastContact time.Duration
}

// NodeStatus asks the node at addr (any address, configured or not) for its
// status, once: no retry, bounded by ctx and the attempt timeout. It
// returns ErrUnavailable when the node cannot be reached, ErrUnimplemented
// from a node too old to serve Admin, ctx's error, or ErrClosed.
func (c *Client) NodeStatus(ctx context.Context, addr string) (*NodeStatus, error) {
	var resp *raftogramv1.NodeStatus
	err := c.do(ctx, call{op: "NodeStatus", pin: addr}, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = raftogramv1.NewAdminClient(cc).GetNodeStatus(ctx, &raftogramv1.GetNodeStatusRequest{})
		return err
	})
	if err != nil {
		return nil, err
	}
	st := &NodeStatus{Addr: addr, NodeID: resp.GetNodeId(), Role: resp.GetRole(), LeaderID: resp.GetLeaderId(),
		LeaderAddr: resp.GetLeaderGrpcAddr(), Term: resp.GetTerm(), CommitIndex: resp.GetCommitIndex(),
		AppliedIndex: resp.GetAppliedIndex(), LastLogIndex: resp.GetLastLogIndex(), SnapshotIndex: resp.GetSnapshotIndex(),
		Version: resp.GetVersion(), LastContact: time.Duration(resp.GetLastContactMs()) * time.Millisecond}
	if st.Role == "leader" {
		c.setLeader(addr)
	}
	return st, nil
}

// ClusterStatus asks every address the Client knows (see [Client.Addrs])
// for its status, in parallel, and returns one NodeStatus per address in
// that order. A node that does not answer is reported with Err set, not as
// a failure of the call (when ctx ends, every node still out has ctx's
// error). The only error returned is ErrClosed.
func (c *Client) ClusterStatus(ctx context.Context) ([]NodeStatus, error) {
	if c.isClosed() {
		return nil, fmt.Errorf("ClusterStatus: %w", ErrClosed)
	}
	addrs := c.Addrs()
	out := make([]NodeStatus, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Go(func() {
			st, err := c.NodeStatus(ctx, a)
			if err != nil {
				out[i] = NodeStatus{Addr: a, Err: err}
				return
			}
			out[i] = *st
		})
	}
	wg.Wait()
	if c.isClosed() {
		return nil, fmt.Errorf("ClusterStatus: %w", ErrClosed)
	}
	return out, nil
}

// TransferLeadership asks the leader to hand leadership to the node
// toNodeID, or to the most up-to-date follower when toNodeID is empty, and
// returns the id of the node that leads afterwards when the leader knew it
// already ("" otherwise). It goes to the leader, following NotLeader
// answers, but never repeats an attempt whose outcome is unknown (that
// could move leadership twice): it then returns ErrUnavailable. It returns
// ErrInvalidArgument for an unknown node id, ErrUnimplemented from a node
// too old to serve Admin, and ctx's error.
func (c *Client) TransferLeadership(ctx context.Context, toNodeID string) (string, error) {
	var resp *raftogramv1.TransferLeadershipResponse
	err := c.do(ctx, call{op: "TransferLeadership", route: toLeader}, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = raftogramv1.NewAdminClient(cc).TransferLeadership(ctx, &raftogramv1.TransferLeadershipRequest{ToNodeId: toNodeID})
		return err
	})
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	c.leader = "" // moved; the next answer says where
	c.mu.Unlock()
	return resp.GetLeaderId(), nil
}
