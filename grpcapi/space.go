package grpcapi

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	peerv1 "github.com/raftogram/raftogram/api/proto/raftogram/peer/v1"
	"github.com/raftogram/raftogram/internal/diskspace"
)

// PeerAddr names another node and the gRPC address it serves on.
type PeerAddr struct {
	ID, GRPCAddr string
}

// SpaceNode is what the poller asks about this node's role (a
// *cluster.Node).
type SpaceNode interface {
	Term() uint64
	IsLeader(term uint64) bool
	Watch() <-chan struct{}
}

// SpacePoller keeps a free-space alarm current: each interval it measures
// this node's data_dir and, where this node takes writes (it leads, or it
// forwards writes), asks every peer's Peer.DiskSpace (in parallel, each
// call bounded by the interval) and stores the answers in the alarm. A node
// that wins an election polls at once. A peer that does not answer keeps
// its last report until the alarm deems it stale.
type SpacePoller struct {
	alarm   *diskspace.Alarm
	node    SpaceNode
	self    string
	peers   []PeerAddr
	forward bool
	conns   *Peers
	log     *slog.Logger

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// StartSpacePoller starts measuring into alarm and polling peers (this
// node, self, is skipped; they are reached through conns, which the caller
// closes after Close) while node leads or forward is set, until Close.
func StartSpacePoller(alarm *diskspace.Alarm, node SpaceNode, self string, peers []PeerAddr, forward bool, conns *Peers, log *slog.Logger) *SpacePoller {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &SpacePoller{alarm: alarm, node: node, self: self, peers: peers, forward: forward, conns: conns, log: log, cancel: cancel}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.run(ctx)
	}()
	return p
}

func (p *SpacePoller) run(ctx context.Context) {
	t := time.NewTicker(p.alarm.Interval())
	defer t.Stop()
	raised := false
	watch := p.node.Watch()
	for {
		if p.forward || p.node.IsLeader(p.node.Term()) {
			p.pollOnce(ctx)
		}
		switch short := p.alarm.Short(); {
		case len(short) > 0 && !raised:
			raised = true
			p.log.Warn("free-space alarm raised: writes are refused until space is freed", "reasons", strings.Join(short, "; "))
		case len(short) == 0 && raised:
			raised = false
			p.log.Info("free-space alarm cleared: writes resume")
		}
		select {
		case <-ctx.Done():
			return
		case <-watch: // a role change: a new leader polls at once
			watch = p.node.Watch()
		case <-t.C:
			p.alarm.Measure()
		}
	}
}

// pollOnce asks every peer once, in parallel, and waits for the answers.
func (p *SpacePoller) pollOnce(ctx context.Context) {
	var wg sync.WaitGroup
	for _, peer := range p.peers {
		if peer.ID == p.self {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := p.conns.Conn(peer.GRPCAddr)
			if err != nil {
				return
			}
			cctx, cancel := context.WithTimeout(ctx, p.alarm.Interval())
			defer cancel()
			resp, err := peerv1.NewPeerClient(conn).DiskSpace(cctx, &peerv1.DiskSpaceRequest{NodeId: p.self})
			if err != nil {
				p.log.Debug("disk space poll failed", "peer", peer.ID, "error", err)
				return
			}
			if resp.GetNodeId() != peer.ID {
				return // an old node, or a different one on that address
			}
			p.alarm.SetPeer(diskspace.Report{NodeID: resp.GetNodeId(), Free: resp.GetFreeBytes(), MinFree: resp.GetMinFreeBytes(), WriteErr: resp.GetWriteError()})
		}()
	}
	wg.Wait()
}

// Close stops polling and measuring; it returns nil (the connections are
// the caller's).
func (p *SpacePoller) Close() error {
	p.cancel()
	p.wg.Wait()
	return nil
}
