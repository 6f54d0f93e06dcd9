package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// NodeStatus describes one node as it reported itself (raftogram.v1.Admin
// GetNodeStatus), or why it could not be asked.
type NodeStatus struct {
	// Addr is the gRPC address asked.
	Addr string
	// Err is why the node did not answer (ClusterStatus only); the other
	// fields are then zero, but NodeID when the gathering node named it.
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
	// LogAppliedIndex is the last log entry of any kind the node applied;
	// AppliedIndex counts only entries that reach the projection, so it
	// trails the commit index on an idle cluster (leader no-ops). 0 from a
	// node too old to report it.
	LogAppliedIndex uint64
	// SnapshotIndex is the index of the newest snapshot the node holds.
	SnapshotIndex uint64
	// Version is the build of the node's binary.
	Version string
	// LastContact is how long ago the node last heard from the leader; 0 on
	// the leader and when unknown.
	LastContact time.Duration
	// WritesPerSecond and WriteP99 are the node's write rate and 99th
	// percentile write latency over the last minute; Subscribers the
	// Subscribe streams it serves; LeaderChanges the leader changes it has
	// seen since it started. All 0 from a node too old to report them.
	WritesPerSecond float64
	WriteP99        time.Duration
	Subscribers     uint64
	LeaderChanges   uint64
}

// nodeStatus converts a node's answer, given the address it was asked at.
func nodeStatus(addr string, resp *raftogramv1.NodeStatus) *NodeStatus {
	return &NodeStatus{Addr: addr, NodeID: resp.GetNodeId(), Role: resp.GetRole(), LeaderID: resp.GetLeaderId(),
		LeaderAddr: resp.GetLeaderGrpcAddr(), Term: resp.GetTerm(), CommitIndex: resp.GetCommitIndex(),
		AppliedIndex: resp.GetAppliedIndex(), LogAppliedIndex: resp.GetLogAppliedIndex(), LastLogIndex: resp.GetLastLogIndex(), SnapshotIndex: resp.GetSnapshotIndex(),
		Version: resp.GetVersion(), LastContact: time.Duration(resp.GetLastContactMs()) * time.Millisecond,
		WritesPerSecond: resp.GetWritesPerSecond(), WriteP99: time.Duration(resp.GetWriteP99Ms() * float64(time.Millisecond)),
		Subscribers: resp.GetSubscribers(), LeaderChanges: resp.GetLeaderChanges()}
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
	st := nodeStatus(addr, resp)
	if st.Role == "leader" {
		c.setLeader(addr)
	}
	return st, nil
}

// ClusterStatus returns the status of every node of the cluster, gathered
// by one node (raftogram.v1.Admin GetClusterStatus): it asks the addresses
// the Client knows (see [Client.Addrs]), the leader first when known, one
// at a time and once each, until one answers, and returns one NodeStatus
// per configured node in the cluster's configuration order, Addr being the
// node's configured gRPC address. A node the gatherer could not reach is
// reported with Err set (its code and message as the gatherer saw them),
// not as a failure of the call. When the node asked is too old to gather
// (ErrUnimplemented), it asks every known address itself, in parallel, and
// returns one NodeStatus per address in that order. When no node answers,
// it returns one NodeStatus per known address with that address's error
// (when ctx ends, every node still out has ctx's error). The only error
// returned is ErrClosed.
func (c *Client) ClusterStatus(ctx context.Context) ([]NodeStatus, error) {
	reports, err := c.gather(ctx, "ClusterStatus", false)
	if err != nil {
		return nil, err
	}
	if reports == nil { // an old node: ask each one
		return c.askEach(ctx)
	}
	out := make([]NodeStatus, len(reports))
	for i, r := range reports {
		out[i] = r.status
	}
	return out, nil
}

// report is one node of a gathered cluster status.
type report struct {
	status    NodeStatus
	digest    *NodeDigest // with digests
	reachable bool
}

// gather asks the known addresses, the leader first, for
// GetClusterStatus until one answers and returns its reports. It returns
// nil reports (and no error) when a node answered ErrUnimplemented; when
// no node answered, one unreachable report per address with its error. It
// returns ErrClosed when the Client is closed.
func (c *Client) gather(ctx context.Context, op string, digests bool) ([]report, error) {
	if c.isClosed() {
		return nil, fmt.Errorf("%s: %w", op, ErrClosed)
	}
	addrs := c.Addrs()
	if l := c.Leader(); l != "" {
		addrs = slices.DeleteFunc(addrs, func(a string) bool { return a == l })
		addrs = append([]string{l}, addrs...)
	}
	failed := make([]report, len(addrs))
	for i, a := range addrs {
		failed[i] = report{status: NodeStatus{Addr: a}}
	}
	for i, a := range addrs {
		var resp *raftogramv1.ClusterStatus
		err := c.do(ctx, call{op: op, pin: a}, func(ctx context.Context, cc *grpc.ClientConn) error {
			var err error
			resp, err = raftogramv1.NewAdminClient(cc).GetClusterStatus(ctx, &raftogramv1.GetClusterStatusRequest{IncludeDigests: digests})
			return err
		})
		switch {
		case err == nil:
			return c.reports(resp, digests), nil
		case c.isClosed():
			return nil, fmt.Errorf("%s: %w", op, ErrClosed)
		case errors.Is(err, ErrUnimplemented):
			return nil, nil
		}
		failed[i].status.Err = err
		if ctx.Err() != nil {
			for j := i + 1; j < len(addrs); j++ {
				failed[j].status.Err = fmt.Errorf("%s on %s: %w", op, addrs[j], ctx.Err())
			}
			break
		}
	}
	for i := range failed {
		failed[i].digest = &NodeDigest{Addr: failed[i].status.Addr, Err: failed[i].status.Err}
	}
	return failed, nil
}

// reports converts a gathered ClusterStatus, noting the leader it names.
func (c *Client) reports(cs *raftogramv1.ClusterStatus, digests bool) []report {
	out := make([]report, len(cs.GetNodes()))
	for i, n := range cs.GetNodes() {
		r := report{reachable: n.GetReachable()}
		if n.GetReachable() {
			r.status = *nodeStatus(n.GetGrpcAddr(), n.GetStatus())
			if r.status.Role == "leader" {
				c.setLeader(n.GetGrpcAddr())
			}
		} else {
			r.status = NodeStatus{Addr: n.GetGrpcAddr(), NodeID: n.GetNodeId(), Err: fromStatus(status.Error(codes.Code(n.GetErrorCode()), n.GetError()))}
		}
		if digests {
			d := &NodeDigest{Addr: n.GetGrpcAddr(), NodeID: n.GetNodeId(), Digest: n.GetDigest().GetDigest(), AppliedIndex: n.GetDigest().GetAppliedIndex()}
			switch {
			case !n.GetReachable():
				d.Err = r.status.Err
			case n.GetDigest() == nil:
				d.Err = fromStatus(status.Error(codes.Code(n.GetDigestErrorCode()), n.GetDigestError()))
			}
			r.digest = d
		}
		out[i] = r
	}
	return out
}

// askEach asks every known address for its status in parallel: one
// NodeStatus per address in Addrs order, a node that does not answer with
// Err set. The only error returned is ErrClosed.
func (c *Client) askEach(ctx context.Context) ([]NodeStatus, error) {
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

// NodeDigest is one node's projection digest and the applied index it
// covers, or why it could not be had.
type NodeDigest struct {
	// Addr is the node's gRPC address.
	Addr string
	// Err is why there is no digest (ClusterDigests only); the other
	// fields but Addr and NodeID are then zero.
	Err    error
	NodeID string
	// Digest is a hex SHA-256 over the node's projection content: nodes
	// at the same AppliedIndex must have equal digests.
	Digest       string
	AppliedIndex uint64
}

// Digest asks the node at addr for its projection digest (raftogram.v1.Admin
// GetDigest), once. It returns ErrUnavailable when the node cannot be
// reached, ErrInternal when its projection cannot be read,
// ErrUnimplemented from a node too old to serve it, ctx's error, or
// ErrClosed.
func (c *Client) Digest(ctx context.Context, addr string) (*NodeDigest, error) {
	var resp *raftogramv1.Digest
	err := c.do(ctx, call{op: "Digest", pin: addr}, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = raftogramv1.NewAdminClient(cc).GetDigest(ctx, &raftogramv1.GetDigestRequest{})
		return err
	})
	if err != nil {
		return nil, err
	}
	return &NodeDigest{Addr: addr, NodeID: resp.GetNodeId(), Digest: resp.GetDigest(), AppliedIndex: resp.GetAppliedIndex()}, nil
}

// ClusterDigests returns every node's digest, gathered by one node as
// ClusterStatus gathers statuses, in the cluster's configuration order; a
// node whose digest could not be had has Err set. With a node too old to
// gather, it asks every known address (Digest) in parallel; such a node
// answers each with ErrUnimplemented. The only error returned is
// ErrClosed.
func (c *Client) ClusterDigests(ctx context.Context) ([]NodeDigest, error) {
	reports, err := c.gather(ctx, "ClusterDigests", true)
	if err != nil {
		return nil, err
	}
	if reports != nil {
		out := make([]NodeDigest, len(reports))
		for i, r := range reports {
			out[i] = *r.digest
		}
		return out, nil
	}
	addrs := c.Addrs()
	out := make([]NodeDigest, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Go(func() {
			d, err := c.Digest(ctx, a)
			if err != nil {
				d = &NodeDigest{Addr: a, Err: err}
			}
			out[i] = *d
		})
	}
	wg.Wait()
	if c.isClosed() {
		return nil, fmt.Errorf("ClusterDigests: %w", ErrClosed)
	}
	return out, nil
}

// TakeSnapshot asks the node at addr to take a Raft snapshot now, once,
// and returns the index its newest snapshot covers and whether one was
// taken (false when nothing was applied since the newest). It returns
// ErrUnavailable when the node cannot be reached, shuts down or cannot
// snapshot yet (retry), ErrInternal when writing the snapshot failed,
// ErrUnimplemented from a node too old to serve it, ctx's error, or
// ErrClosed.
func (c *Client) TakeSnapshot(ctx context.Context, addr string) (index uint64, created bool, err error) {
	var resp *raftogramv1.TakeSnapshotResponse
	err = c.do(ctx, call{op: "TakeSnapshot", pin: addr}, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = raftogramv1.NewAdminClient(cc).TakeSnapshot(ctx, &raftogramv1.TakeSnapshotRequest{})
		return err
	})
	if err != nil {
		return 0, false, err
	}
	return resp.GetSnapshotIndex(), resp.GetCreated(), nil
}

// CompactLog asks the node at addr to take a Raft snapshot now and delete
// every log entry it covers, so redacted and deleted content leaves that
// node's Raft log at once (run it on every node). It returns the snapshot's
// index; ErrFailedPrecondition when nothing was applied since the node's
// newest snapshot (write, then retry), and TakeSnapshot's other errors.
func (c *Client) CompactLog(ctx context.Context, addr string) (uint64, error) {
	var resp *raftogramv1.TakeSnapshotResponse
	err := c.do(ctx, call{op: "CompactLog", pin: addr}, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = raftogramv1.NewAdminClient(cc).TakeSnapshot(ctx, &raftogramv1.TakeSnapshotRequest{CompactLog: true})
		return err
	})
	if err != nil {
		return 0, err
	}
	return resp.GetSnapshotIndex(), nil
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
