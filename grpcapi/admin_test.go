package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/cluster"
	"github.com/raftogram/raftogram/domain"
	"github.com/raftogram/raftogram/internal/window"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// adminNode is a fake cluster member for the Admin service.
type adminNode struct {
	st      cluster.Status
	peers   []cluster.Peer
	snapIdx uint64
	snapNew bool
	snapErr error
}

func (n *adminNode) Status() cluster.Status            { return n.st }
func (n *adminNode) LastContact() time.Time            { return time.Time{} }
func (n *adminNode) TransferLeadershipTo(string) error { return nil }
func (n *adminNode) Watch() <-chan struct{}            { return make(chan struct{}) }
func (n *adminNode) LogAppliedIndex() uint64           { return n.st.AppliedIndex + 1 }
func (n *adminNode) Peers() []cluster.Peer             { return n.peers }
func (n *adminNode) Snapshot() (uint64, bool, error)   { return n.snapIdx, n.snapNew, n.snapErr }
func (n *adminNode) CompactLog(context.Context) (uint64, error) {
	if n.snapErr == nil && !n.snapNew {
		return 0, fmt.Errorf("compact log: %w", raft.ErrNothingNewToSnapshot)
	}
	return n.snapIdx, n.snapErr
}
func (n *adminNode) DigestAt(context.Context) (string, uint64, error) {
	return "d-" + n.st.NodeID, n.st.AppliedIndex, nil
}

type fixedRecent window.Stats

func (r fixedRecent) Stats() window.Stats { return window.Stats(r) }

// serveAdmin serves a's Admin service on a loopback port and returns it.
func serveAdmin(t *testing.T, a *Admin) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	raftogramv1.RegisterAdminServer(s, a)
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return ln.Addr().String()
}

// A node gathers itself locally and its peers over gRPC: a live peer's
// answer, a closed port as Unavailable, and a peer that accepts but never
// answers as Unavailable "no answer within" inside the caller's deadline.
func TestGetClusterStatusBoundsEachPeer(t *testing.T) {
	// A listener that accepts and then says nothing: the gRPC handshake hangs.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 16)
	go func() {
		defer close(accepted)
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	defer func() {
		silent.Close()
		for c := range accepted {
			c.Close()
		}
	}()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()

	leader := &adminNode{st: cluster.Status{NodeID: "node2", Role: "leader", IsLeader: true, LeaderID: "node2", Term: 4, CommitIndex: 50, AppliedIndex: 50}}
	leaderAdmin := NewAdmin(leader, leader, fixedRecent{WritesPerSecond: 12.5, WriteP99: 3 * time.Millisecond, Subscribers: 2, LeaderChanges: 1}, Options{Version: "v-leader"})
	defer leaderAdmin.Close()
	peers := []cluster.Peer{
		{ID: "node1", GRPCAddr: "self-not-dialled:1"},
		{ID: "node2", GRPCAddr: serveAdmin(t, leaderAdmin)},
		{ID: "node3", GRPCAddr: closedAddr},
		{ID: "node4", GRPCAddr: silent.Addr().String()},
	}
	self := &adminNode{st: cluster.Status{NodeID: "node1", Role: "follower", LeaderID: "node2", Term: 4, CommitIndex: 48, AppliedIndex: 45}, peers: peers}
	a := NewAdmin(self, self, nil, Options{Version: "v-self"})
	defer a.Close()

	const deadline = time.Second
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	cs, err := a.GetClusterStatus(ctx, &raftogramv1.GetClusterStatusRequest{IncludeDigests: true})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took >= deadline {
		t.Fatalf("took %v, not inside the caller's %v", took, deadline)
	}
	if cs.GetNodeId() != "node1" || cs.GetLeaderId() != "node2" || cs.GetLeaderCommitIndex() != 50 || len(cs.GetNodes()) != 4 {
		t.Fatalf("header %v", cs)
	}
	n := cs.GetNodes()
	if !n[0].GetReachable() || n[0].GetStatus().GetVersion() != "v-self" || n[0].GetStatus().GetLogAppliedIndex() != 46 || n[0].GetLag() != 4 || n[0].GetDigest().GetDigest() != "d-node1" {
		t.Errorf("self: %v", n[0])
	}
	st := n[1].GetStatus()
	if !n[1].GetReachable() || st.GetRole() != "leader" || st.GetVersion() != "v-leader" || n[1].GetLag() != 0 ||
		st.GetWritesPerSecond() != 12.5 || st.GetWriteP99Ms() != 3 || st.GetSubscribers() != 2 || st.GetLeaderChanges() != 1 ||
		n[1].GetDigest().GetDigest() != "d-node2" || n[1].GetDigest().GetAppliedIndex() != 50 {
		t.Errorf("leader: %v", n[1])
	}
	if n[2].GetReachable() || codes.Code(n[2].GetErrorCode()) != codes.Unavailable || n[2].GetError() == "" || n[2].GetStatus() != nil {
		t.Errorf("closed port: %v", n[2])
	}
	if n[3].GetReachable() || codes.Code(n[3].GetErrorCode()) != codes.Unavailable || !strings.HasPrefix(n[3].GetError(), "no answer within ") {
		t.Errorf("silent peer: %v", n[3])
	}

	// The caller's context already ended: the call fails with its reason.
	done, cancelDone := context.WithCancel(context.Background())
	cancelDone()
	if _, err := a.GetClusterStatus(done, &raftogramv1.GetClusterStatusRequest{}); status.Code(err) != codes.Canceled {
		t.Fatalf("cancelled call: %v", err)
	}
}

func TestTakeSnapshotMapsErrors(t *testing.T) {
	for _, c := range []struct {
		name    string
		idx     uint64
		created bool
		err     error
		code    codes.Code
	}{
		{"taken", 42, true, nil, codes.OK},
		{"nothing new", 40, false, nil, codes.OK},
		{"shutting down", 0, false, domain.Errorf(domain.EUNAVAILABLE, "cannot snapshot: the node is shutting down"), codes.Unavailable},
		{"write failed", 0, false, errors.New("cluster: snapshot: disk full"), codes.Internal},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := &adminNode{snapIdx: c.idx, snapNew: c.created, snapErr: c.err}
			a := NewAdmin(n, n, nil, Options{})
			defer a.Close()
			resp, err := a.TakeSnapshot(context.Background(), &raftogramv1.TakeSnapshotRequest{})
			if status.Code(err) != c.code {
				t.Fatalf("code %v, want %v (%v)", status.Code(err), c.code, err)
			}
			if c.code == codes.Internal && status.Convert(err).Message() != "internal error" {
				t.Fatalf("internal detail shown: %v", err)
			}
			if err == nil && (resp.GetSnapshotIndex() != c.idx || resp.GetCreated() != c.created) {
				t.Fatalf("resp %v", resp)
			}
			// compact_log: the same errors, except that nothing new to
			// snapshot cannot compact anything: FailedPrecondition.
			want := c.code
			if c.err == nil && !c.created {
				want = codes.FailedPrecondition
			}
			resp, err = a.TakeSnapshot(context.Background(), &raftogramv1.TakeSnapshotRequest{CompactLog: true})
			if status.Code(err) != want {
				t.Fatalf("compact_log: code %v, want %v (%v)", status.Code(err), want, err)
			}
			if err == nil && (resp.GetSnapshotIndex() != c.idx || !resp.GetCreated()) {
				t.Fatalf("compact_log: resp %v", resp)
			}
		})
	}
}
