package client

import (
	"context"
	"errors"
	"net"
	"testing"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// fakeAdmin is an Admin service on a loopback port: gathers (when
// cluster is set) or, like a node older than GetClusterStatus, answers
// only GetNodeStatus.
type fakeAdmin struct {
	raftogramv1.UnimplementedAdminServer
	addr    string
	id      string
	cluster *raftogramv1.ClusterStatus
}

func startFakeAdmin(t *testing.T, f *fakeAdmin) *fakeAdmin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	s := grpc.NewServer()
	raftogramv1.RegisterAdminServer(s, f)
	done := make(chan struct{})
	go func() { defer close(done); s.Serve(ln) }()
	t.Cleanup(func() { s.Stop(); <-done })
	return f
}

func (f *fakeAdmin) GetNodeStatus(context.Context, *raftogramv1.GetNodeStatusRequest) (*raftogramv1.NodeStatus, error) {
	return &raftogramv1.NodeStatus{NodeId: f.id, Role: "follower", Term: 2}, nil
}

func (f *fakeAdmin) GetClusterStatus(context.Context, *raftogramv1.GetClusterStatusRequest) (*raftogramv1.ClusterStatus, error) {
	if f.cluster == nil {
		return f.UnimplementedAdminServer.GetClusterStatus(context.Background(), nil)
	}
	return f.cluster, nil
}

// A node too old to gather (Unimplemented): ClusterStatus asks every
// address itself, in Addrs order; ClusterDigests reports each node's
// ErrUnimplemented.
func TestClusterStatusFallsBackOnOldNodes(t *testing.T) {
	a := startFakeAdmin(t, &fakeAdmin{id: "old1"})
	b := startFakeAdmin(t, &fakeAdmin{id: "old2"})
	c := newTestClient(t, Config{Addrs: []string{a.addr, b.addr}})
	sts, err := c.ClusterStatus(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(sts) != 2 || sts[0].Addr != a.addr || sts[0].NodeID != "old1" || sts[1].Addr != b.addr || sts[1].NodeID != "old2" || sts[0].Err != nil {
		t.Fatalf("fallback statuses %+v", sts)
	}
	ds, err := c.ClusterDigests(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 || !errors.Is(ds[0].Err, ErrUnimplemented) || !errors.Is(ds[1].Err, ErrUnimplemented) || ds[1].Addr != b.addr {
		t.Fatalf("digests from old nodes %+v", ds)
	}
}

// A gathered report: every configured node in its order, an unreachable
// one with the gatherer's code and message as a typed error, a digest
// error likewise; the leader it reports becomes the Client's guess.
func TestClusterStatusFromTheGatherer(t *testing.T) {
	g := startFakeAdmin(t, &fakeAdmin{id: "node2"})
	addr1, addr3 := closedAddr(t), closedAddr(t) // the gatherer's view; never dialled but for the leader guess
	g.cluster = &raftogramv1.ClusterStatus{NodeId: "node2", LeaderId: "node1", LeaderCommitIndex: 9, Nodes: []*raftogramv1.NodeReport{
		{NodeId: "node1", GrpcAddr: addr1, Reachable: true, Status: &raftogramv1.NodeStatus{NodeId: "node1", Role: "leader", CommitIndex: 9,
			WritesPerSecond: 4, WriteP99Ms: 1.5, Subscribers: 3, LeaderChanges: 2}, Digest: &raftogramv1.Digest{NodeId: "node1", Digest: "abc", AppliedIndex: 9}},
		{NodeId: "node2", GrpcAddr: g.addr, Reachable: true, Status: &raftogramv1.NodeStatus{NodeId: "node2", Role: "follower"},
			DigestErrorCode: uint32(codes.Internal), DigestError: "internal error"},
		{NodeId: "node3", GrpcAddr: addr3, ErrorCode: uint32(codes.Unavailable), Error: "no answer within 3s"},
	}}
	c := newTestClient(t, Config{Addrs: []string{g.addr}})
	sts, err := c.ClusterStatus(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(sts) != 3 || sts[0].Addr != addr1 || sts[0].Role != "leader" || sts[0].WritesPerSecond != 4 ||
		sts[0].WriteP99.Microseconds() != 1500 || sts[0].Subscribers != 3 || sts[0].LeaderChanges != 2 || sts[1].NodeID != "node2" {
		t.Fatalf("gathered statuses %+v", sts)
	}
	var ce *Error
	if !errors.As(sts[2].Err, &ce) || !errors.Is(sts[2].Err, ErrUnavailable) || ce.Message != "no answer within 3s" || sts[2].Addr != addr3 || sts[2].NodeID != "node3" {
		t.Fatalf("unreachable node %+v", sts[2])
	}
	if c.Leader() != addr1 {
		t.Fatalf("leader guess %q", c.Leader())
	}
	ds, err := c.ClusterDigests(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 3 || ds[0].Digest != "abc" || ds[0].AppliedIndex != 9 || ds[0].Err != nil || !errors.Is(ds[1].Err, ErrInternal) ||
		!errors.Is(ds[2].Err, ErrUnavailable) || ds[2].NodeID != "node3" {
		t.Fatalf("gathered digests %+v", ds)
	}
}

// No node answers: one entry per known address with its error, no call
// error.
func TestClusterStatusWithNoNodeAnswering(t *testing.T) {
	addr := closedAddr(t)
	c := newTestClient(t, Config{Addrs: []string{addr}})
	sts, err := c.ClusterStatus(testCtx(t))
	if err != nil || len(sts) != 1 || sts[0].Addr != addr || !errors.Is(sts[0].Err, ErrUnavailable) {
		t.Fatalf("ClusterStatus with the only node down = %+v, %v", sts, err)
	}
	c.Close()
	if _, err := c.ClusterStatus(testCtx(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
