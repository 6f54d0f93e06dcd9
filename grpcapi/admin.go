package grpcapi

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/cluster"
	"github.com/raftogram/raftogram/internal/window"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// AdminNode is the Raft member the Admin service reports on, moves
// leadership of and snapshots (a *cluster.Node).
type AdminNode interface {
	Status() cluster.Status
	LastContact() time.Time
	TransferLeadershipTo(id string) error
	Watch() <-chan struct{}
	LogAppliedIndex() uint64
	Peers() []cluster.Peer
	Snapshot() (index uint64, created bool, err error)
	CompactLog(ctx context.Context) (index uint64, err error)
}

// Digester is the projection whose digest GetDigest reports (a
// *projection.Store).
type Digester interface {
	DigestAt(ctx context.Context) (digest string, applied uint64, err error)
}

// Recent gives the node's figures over the last minute (a
// *window.Sampler).
type Recent interface {
	Stats() window.Stats
}

// Admin implements raftogramv1.AdminServer: node and cluster status,
// leadership transfer, snapshots on demand and state digests.
type Admin struct {
	raftogramv1.UnimplementedAdminServer

	node     AdminNode
	store    Digester
	recent   Recent
	peers    *Peers // connections to the other nodes' Admin services
	ownPeers bool   // peers is not Options.Peers: Close closes it
	version  string
	log      *slog.Logger
}

// NewAdmin returns the Admin service of node and its projection store,
// reporting opts.Version and recent's figures (zero when recent is nil).
// Close it after the gRPC server stops.
func NewAdmin(node AdminNode, store Digester, recent Recent, opts Options) *Admin {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	peers, owned := opts.peerPool()
	return &Admin{node: node, store: store, recent: recent, peers: peers, ownPeers: owned, version: opts.Version, log: log}
}

// Close closes the connections GetClusterStatus opened to the peers unless
// they are the shared Options.Peers. It returns the errors met closing
// them.
func (a *Admin) Close() error {
	if !a.ownPeers {
		return nil
	}
	return a.peers.Close()
}

// GetNodeStatus returns this node's role, the leader it knows, its indexes,
// its version, how long ago it last heard from a leader and its figures
// over the last minute. It never fails.
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
		// Read after st: at least st's applied index, as it should be.
		LogAppliedIndex: max(a.node.LogAppliedIndex(), st.AppliedIndex),
	}
	if last := a.node.LastContact(); !st.IsLeader && !last.IsZero() {
		ns.LastContactMs = time.Since(last).Milliseconds()
	}
	if a.recent != nil {
		w := a.recent.Stats()
		ns.WritesPerSecond = w.WritesPerSecond
		ns.WriteP99Ms = float64(w.WriteP99) / float64(time.Millisecond)
		ns.Subscribers = w.Subscribers
		ns.LeaderChanges = w.LeaderChanges
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

// TakeSnapshot makes raft snapshot this node now and returns the index the
// newest snapshot covers (created false when nothing was applied since it).
// It answers Unavailable while the node shuts down or cannot snapshot yet,
// Internal (logged) when writing the snapshot failed, Canceled or
// DeadlineExceeded when ctx ends first (the snapshot may still complete).
// With compact_log it also deletes every log entry the snapshot covers
// (cluster.Node.CompactLog), answering FailedPrecondition when nothing was
// applied since the newest snapshot.
func (a *Admin) TakeSnapshot(ctx context.Context, req *raftogramv1.TakeSnapshotRequest) (*raftogramv1.TakeSnapshotResponse, error) {
	type result struct {
		index   uint64
		created bool
		err     error
	}
	done := make(chan result, 1)
	if req.GetCompactLog() {
		index, err := a.node.CompactLog(ctx)
		if errors.Is(err, raft.ErrNothingNewToSnapshot) {
			return nil, status.Error(codes.FailedPrecondition, "nothing was applied since the newest snapshot, so no snapshot can compact the log now; retry after a write")
		}
		if err != nil {
			return nil, toStatus(a.log, "TakeSnapshot", err)
		}
		return &raftogramv1.TakeSnapshotResponse{SnapshotIndex: index, Created: true}, nil
	}
	go func() { // ends when raft answers, at the latest when it shuts down
		index, created, err := a.node.Snapshot()
		done <- result{index, created, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, toStatus(a.log, "TakeSnapshot", r.err)
		}
		return &raftogramv1.TakeSnapshotResponse{SnapshotIndex: r.index, Created: r.created}, nil
	case <-ctx.Done():
		return nil, toStatus(a.log, "TakeSnapshot", ctx.Err())
	}
}

// GetDigest returns the digest of this node's projection and the applied
// index it covers. It answers Canceled or DeadlineExceeded when ctx ends,
// Internal (logged) when the projection cannot be read.
func (a *Admin) GetDigest(ctx context.Context, _ *raftogramv1.GetDigestRequest) (*raftogramv1.Digest, error) {
	d, applied, err := a.store.DigestAt(ctx)
	if err != nil {
		return nil, toStatus(a.log, "GetDigest", err)
	}
	return &raftogramv1.Digest{NodeId: a.node.Status().NodeID, Digest: d, AppliedIndex: applied}, nil
}

// peerAskBound is how long GetClusterStatus waits for one peer's answers
// when the caller's deadline leaves longer.
const peerAskBound = 3 * time.Second

// GetClusterStatus reports every configured node, in configuration order:
// this one from its own state, the others by asking them concurrently,
// each bounded by peerAskBound and by nine tenths of the caller's deadline
// (so the caller gets the report rather than its own timeout). A peer that
// does not answer in time is Unavailable "no answer within …". It fails
// only when ctx ends first (Canceled or DeadlineExceeded).
func (a *Admin) GetClusterStatus(ctx context.Context, req *raftogramv1.GetClusterStatusRequest) (*raftogramv1.ClusterStatus, error) {
	self := a.node.Status().NodeID
	bound := peerAskBound
	if d, ok := ctx.Deadline(); ok {
		bound = min(bound, time.Until(d)*9/10)
	}
	peers := a.node.Peers()
	reports := make([]*raftogramv1.NodeReport, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() {
			if p.ID == self {
				reports[i] = a.reportSelf(ctx, p, req.GetIncludeDigests())
			} else {
				reports[i] = a.reportPeer(ctx, p, bound, req.GetIncludeDigests())
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, toStatus(a.log, "GetClusterStatus", err)
	}
	cs := &raftogramv1.ClusterStatus{NodeId: self, Nodes: reports}
	var leaderTerm, maxCommit uint64
	for _, r := range reports {
		st := r.GetStatus()
		if !r.GetReachable() {
			continue
		}
		maxCommit = max(maxCommit, st.GetCommitIndex())
		if st.GetRole() == "leader" && st.GetTerm() >= leaderTerm {
			leaderTerm, cs.LeaderId, cs.LeaderCommitIndex = st.GetTerm(), st.GetNodeId(), st.GetCommitIndex()
		}
	}
	if cs.LeaderId == "" {
		cs.LeaderCommitIndex = maxCommit
		for _, r := range reports { // no leader answered: the one the nodes name
			if id := r.GetStatus().GetLeaderId(); id != "" {
				cs.LeaderId = id
				break
			}
		}
	}
	for _, r := range reports {
		if r.GetReachable() {
			r.Lag = lagBehind(cs.LeaderCommitIndex, r.GetStatus())
		}
	}
	return cs, nil
}

// lagBehind returns how many committed entries (up to commit) st's node
// has yet to apply; a node too old to report log_applied_index is measured
// by its projection's applied index.
func lagBehind(commit uint64, st *raftogramv1.NodeStatus) uint64 {
	applied := max(st.GetLogAppliedIndex(), st.GetAppliedIndex())
	if applied >= commit {
		return 0
	}
	return commit - applied
}

// reportSelf is this node's entry of GetClusterStatus.
func (a *Admin) reportSelf(ctx context.Context, p cluster.Peer, digest bool) *raftogramv1.NodeReport {
	r := &raftogramv1.NodeReport{NodeId: p.ID, GrpcAddr: p.GRPCAddr, Reachable: true}
	r.Status, _ = a.GetNodeStatus(ctx, &raftogramv1.GetNodeStatusRequest{})
	if digest {
		d, err := a.GetDigest(ctx, &raftogramv1.GetDigestRequest{})
		setDigest(r, d, err)
	}
	return r
}

// reportPeer is a peer's entry of GetClusterStatus: its answers to
// GetNodeStatus and, with digest, GetDigest, within bound.
func (a *Admin) reportPeer(ctx context.Context, p cluster.Peer, bound time.Duration, digest bool) *raftogramv1.NodeReport {
	r := &raftogramv1.NodeReport{NodeId: p.ID, GrpcAddr: p.GRPCAddr}
	conn, err := a.peers.Conn(p.GRPCAddr)
	if err != nil {
		r.ErrorCode, r.Error = uint32(codes.Unavailable), err.Error()
		return r
	}
	pctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	ac := raftogramv1.NewAdminClient(conn)
	st, err := ac.GetNodeStatus(pctx, &raftogramv1.GetNodeStatusRequest{})
	if err != nil {
		s := peerError(ctx, err, bound)
		r.ErrorCode, r.Error = uint32(s.Code()), s.Message()
		return r
	}
	r.Reachable, r.Status = true, st
	if digest {
		d, err := ac.GetDigest(pctx, &raftogramv1.GetDigestRequest{})
		if err != nil {
			err = peerError(ctx, err, bound).Err()
		}
		setDigest(r, d, err)
	}
	return r
}

// peerError is the status to report for a peer's failed answer: its own,
// except that the per-peer bound running out (ctx still alive) is
// Unavailable, saying how long it waited.
func peerError(ctx context.Context, err error, bound time.Duration) *status.Status {
	s := status.Convert(err)
	if ctx.Err() == nil && (s.Code() == codes.DeadlineExceeded || errors.Is(err, context.DeadlineExceeded)) {
		return status.Newf(codes.Unavailable, "no answer within %s", bound.Round(time.Millisecond))
	}
	return s
}

// setDigest records a digest answer, or why there is none, in r.
func setDigest(r *raftogramv1.NodeReport, d *raftogramv1.Digest, err error) {
	if err != nil {
		s := status.Convert(err)
		r.DigestErrorCode, r.DigestError = uint32(s.Code()), s.Message()
		return
	}
	r.Digest = d
}
