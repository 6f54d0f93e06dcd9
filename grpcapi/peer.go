package grpcapi

import (
	"context"
	"log/slog"

	peerv1 "github.com/raftogram/raftogram/api/proto/raftogram/peer/v1"
	"github.com/raftogram/raftogram/internal/diskspace"
)

// ReadIndexer is the leader side of a follower's linearizable read (a
// *cluster.Node).
type ReadIndexer interface {
	ReadIndex(ctx context.Context) (index, term uint64, err error)
}

// Peer implements peerv1.PeerServer, the node-to-node service.
type Peer struct {
	peerv1.UnimplementedPeerServer

	node  ReadIndexer
	space *diskspace.Alarm
	log   *slog.Logger
}

// NewPeer returns the Peer service of node, reporting opts.Space.
func NewPeer(node ReadIndexer, opts Options) *Peer {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Peer{node: node, space: opts.Space, log: log}
}

// ReadIndex confirms this node's leadership with a quorum, exactly as for
// its own linearizable reads, and returns the index the asking node must
// apply before it answers. A node that does not lead answers
// FailedPrecondition + NotLeader (Unavailable while no leader is known);
// a leadership change during the round is Unavailable.
func (p *Peer) ReadIndex(ctx context.Context, req *peerv1.ReadIndexRequest) (*peerv1.ReadIndexResponse, error) {
	index, term, err := p.node.ReadIndex(ctx)
	if err != nil {
		return nil, toStatus(p.log, "ReadIndex", err)
	}
	return &peerv1.ReadIndexResponse{ReadIndex: index, Term: term}, nil
}

// DiskSpace reports this node's data_dir free space, min_free_bytes and
// write probe error as last measured; all zero without an alarm. It never
// fails.
func (p *Peer) DiskSpace(ctx context.Context, req *peerv1.DiskSpaceRequest) (*peerv1.DiskSpaceResponse, error) {
	if p.space == nil {
		return &peerv1.DiskSpaceResponse{}, nil
	}
	r := p.space.Local()
	return &peerv1.DiskSpaceResponse{NodeId: r.NodeID, FreeBytes: r.Free, MinFreeBytes: r.MinFree, WriteError: r.WriteErr}, nil
}
