package grpcapi

import (
	"context"
	"log/slog"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/cluster"
)

// AdminNode is the Raft member the Admin service reports on and moves
// leadership of (a *cluster.Node).
type AdminNode interface {
	Status() cluster.Status
	LastContact() time.Time
	TransferLeadershipTo(id string) error
	Watch() <-chan struct{}
}

// Admin implements raftogramv1.AdminServer: node status and leadership
// transfer.
type Admin struct {
	raftogramv1.UnimplementedAdminServer

	node    AdminNode
	version string
	log     *slog.Logger
}

// NewAdmin returns the Admin service of node, reporting opts.Version.
func NewAdmin(node AdminNode, opts Options) *Admin {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Admin{node: node, version: opts.Version, log: log}
}

// GetNodeStatus returns this node's role, the leader it knows, its indexes,
// its version and how long ago it last heard from a leader. It never fails.
func (a *Admin) GetNodeStatus(context.Context, *raftogramv1.GetNodeStatusRequest) (*raftogramv1.NodeStatus, error) {
	st := a.node.Status()
	ns := &raftogramv1.NodeStatus{
		NodeId:         st.NodeID,
		Role:           st.Role,
		LeaderId:       st.LeaderID,
		LeaderGrpcAddr: st.LeaderGRPCAddr,
		Term:           st.Term,
		CommitIndex:    st.CommitIndex,
		AppliedIndex:   st.AppliedIndex,
		LastLogIndex:   st.LastLogIndex,
		SnapshotIndex:  st.SnapshotIndex,
		Version:        a.version,
	}
	if last := a.node.LastContact(); !st.IsLeader && !last.IsZero() {
		ns.LastContactMs = time.Since(last).Milliseconds()
	}
	return ns, nil
}

// transferSettle bounds how long TransferLeadership waits to learn the new
// leader after a successful transfer.
const transferSettle = 2 * time.Second

// TransferLeadership hands leadership from this node to to_node_id (any
// up-to-date follower when empty) and returns the new leader once known.
// It answers FailedPrecondition + NotLeader when this node does not lead,
// InvalidArgument for an unknown node, Unavailable when the transfer
// failed.
func (a *Admin) TransferLeadership(ctx context.Context, req *raftogramv1.TransferLeadershipRequest) (*raftogramv1.TransferLeadershipResponse, error) {
	const method = "TransferLeadership"
	from := a.node.Status().NodeID
	if err := a.node.TransferLeadershipTo(req.GetToNodeId()); err != nil {
		return nil, toStatus(a.log, method, err)
	}
	a.log.Info("leadership transfer requested", "to_node_id", req.GetToNodeId())
	settle := time.NewTimer(transferSettle)
	defer settle.Stop()
	for {
		watch := a.node.Watch()
		st := a.node.Status()
		if st.LeaderID != "" && (st.LeaderID != from || req.GetToNodeId() == from) {
			return &raftogramv1.TransferLeadershipResponse{LeaderId: st.LeaderID}, nil
		}
		select {
		case <-watch:
		case <-settle.C:
			return &raftogramv1.TransferLeadershipResponse{}, nil
		case <-ctx.Done():
			return &raftogramv1.TransferLeadershipResponse{}, nil
		}
	}
}
