package grpcapi

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftogram/raftogram/cluster"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
)

func healthReq(service string) *healthpb.HealthCheckRequest {
	return &healthpb.HealthCheckRequest{Service: service}
}

// fakeHealthNode is a node whose status the test sets; every set closes
// the watch channel, as leader observations do.
type fakeHealthNode struct {
	mu    sync.Mutex
	st    cluster.Status
	watch chan struct{}
}

func newFakeHealthNode(st cluster.Status) *fakeHealthNode {
	return &fakeHealthNode{st: st, watch: make(chan struct{})}
}

func (n *fakeHealthNode) Status() cluster.Status {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.st
}

func (n *fakeHealthNode) Watch() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.watch
}

func (n *fakeHealthNode) set(st cluster.Status) {
	n.mu.Lock()
	n.st = st
	close(n.watch)
	n.watch = make(chan struct{})
	n.mu.Unlock()
}

var (
	noLeader = cluster.Status{NodeID: "node2", Role: "candidate"}
	follower = cluster.Status{NodeID: "node2", Role: "follower", LeaderID: "node1"}
	leading  = cluster.Status{NodeID: "node2", Role: "leader", IsLeader: true, LeaderID: "node2"}
)

func TestHealthFollowsRoleLeaderAndAlarm(t *testing.T) {
	var free atomic.Uint64
	free.Store(1 << 30)
	alarm := newFakeAlarm(t, &free)
	n := newFakeHealthNode(noLeader)
	h := NewHealth(n, Options{Space: alarm})
	defer h.Shutdown()
	const S, NS = "SERVING", "NOT_SERVING"
	steps := []struct {
		name      string
		do        func()
		all, msgr string
	}{
		{"no leader", func() {}, NS, NS},
		{"follower", func() { n.set(follower) }, S, NS},
		{"leader", func() { n.set(leading) }, S, S},
		{"alarm", func() { free.Store(1 << 20); alarm.Measure() }, S, NS},
		{"space back", func() { free.Store(1 << 30); alarm.Measure() }, S, S},
		{"deposed", func() { n.set(noLeader) }, NS, NS},
	}
	for _, s := range steps {
		s.do()
		waitStatus(t, h, "", s.all)
		waitStatus(t, h, MessengerService, s.msgr)
	}
	if MessengerService != "raftogram.v1.Messenger" {
		t.Errorf("MessengerService = %q", MessengerService)
	}

	n.set(leading)
	waitStatus(t, h, MessengerService, S)
	h.Shutdown()
	n.set(leading)
	waitStatus(t, h, "", NS)
	waitStatus(t, h, MessengerService, NS)
}

func TestHealthOfAForwardingFollower(t *testing.T) {
	n := newFakeHealthNode(follower)
	h := NewHealth(n, Options{ForwardWrites: true})
	defer h.Shutdown()
	waitStatus(t, h, "", "SERVING")
	waitStatus(t, h, MessengerService, "SERVING")
	n.set(noLeader)
	waitStatus(t, h, MessengerService, "NOT_SERVING")
}

// A Watch stream sees NOT_SERVING and ends with Unavailable at Shutdown, so
// a watching client does not hold a graceful stop open.
func TestHealthWatchEndsAtShutdown(t *testing.T) {
	n := newFakeHealthNode(leading)
	h := NewHealth(n, Options{})
	ln := bufconn.Listen(1 << 20)
	g := grpc.NewServer()
	h.Register(g)
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ln.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := healthpb.NewHealthClient(conn).Watch(ctx, healthReq(MessengerService))
	if err != nil {
		t.Fatal(err)
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("before shutdown: %v", err)
		}
		if resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			break
		}
	}
	h.Shutdown()
	sawNotServing := false
	for {
		resp, err := stream.Recv()
		if err != nil {
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("Watch ended with %v, want Unavailable", err)
			}
			break
		}
		sawNotServing = sawNotServing || resp.GetStatus() == healthpb.HealthCheckResponse_NOT_SERVING
	}
	if !sawNotServing {
		t.Error("the stream ended without reporting NOT_SERVING")
	}
}
