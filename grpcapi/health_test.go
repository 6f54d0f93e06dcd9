package grpcapi

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/raftogram/raftogram/cluster"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
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
