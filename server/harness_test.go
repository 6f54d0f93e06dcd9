package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	peerv1 "github.com/raftogram/raftogram/api/proto/raftogram/peer/v1"
	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/config"
	"github.com/raftogram/raftogram/internal/netproxy"
	"github.com/raftogram/raftogram/internal/testbin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// testCluster is an in-process cluster of real nodes on loopback ports.
type testCluster struct {
	t       *testing.T
	cfgs    []config.Config
	servers []*Server
	logs    []*testbin.Buffer
	clients map[string]raftogramv1.MessengerClient
	conns   map[string]*grpc.ClientConn
	// proxies[i] carries the Raft traffic other nodes send node i (only in
	// clusters made by newProxiedTestCluster): cutting it partitions node i.
	proxies []*netproxy.Proxy
}

// tune adjusts a node's config before it starts.
type tune func(*config.Config)

func newTestCluster(t *testing.T, n int, tunes ...tune) *testCluster {
	t.Helper()
	return newTestClusterWith(t, n, false, tunes...)
}

// newProxiedTestCluster is newTestCluster with every node's Raft address in
// the peer list pointing at a proxy in front of it (c.proxies), so a test
// can cut a node off from the leader's appends and heartbeats.
func newProxiedTestCluster(t *testing.T, n int, tunes ...tune) *testCluster {
	t.Helper()
	return newTestClusterWith(t, n, true, tunes...)
}

func newTestClusterWith(t *testing.T, n int, proxied bool, tunes ...tune) *testCluster {
	t.Helper()
	c := &testCluster{t: t, clients: map[string]raftogramv1.MessengerClient{}, conns: map[string]*grpc.ClientConn{}}
	listeners := make([]Listeners, n)
	var peers config.Peers
	for i := range n {
		ls := Listeners{Raft: mustListen(t), GRPC: mustListen(t), HTTP: mustListen(t)}
		listeners[i] = ls
		raftAddr := ls.Raft.Addr().String()
		if proxied {
			p, err := netproxy.New(raftAddr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { p.Close() })
			c.proxies = append(c.proxies, p)
			raftAddr = p.Addr()
		}
		peers = append(peers, config.Peer{NodeID: fmt.Sprintf("node%d", i+1), RaftAddr: raftAddr, GRPCAddr: ls.GRPC.Addr().String()})
	}
	dir := t.TempDir()
	for i := range n {
		cfg := config.Default()
		cfg.NodeID = peers[i].NodeID
		cfg.RaftBindAddr = listeners[i].Raft.Addr().String()
		cfg.GRPCBindAddr = peers[i].GRPCAddr
		cfg.HealthBindAddr = listeners[i].HTTP.Addr().String()
		cfg.DataDir = filepath.Join(dir, cfg.NodeID)
		cfg.Cluster.Peers = peers
		// Short enough for quick elections, long enough that a loaded
		// machine running the race detector does not depose leaders.
		cfg.Raft.HeartbeatTimeout = 500 * time.Millisecond
		cfg.Raft.ElectionTimeout = 500 * time.Millisecond
		cfg.Raft.LeaderLeaseTimeout = 300 * time.Millisecond
		cfg.Raft.CommitTimeout = 10 * time.Millisecond
		cfg.ShutdownTimeout = 5 * time.Second
		for _, f := range tunes {
			f(&cfg)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		c.cfgs = append(c.cfgs, cfg)
		c.logs = append(c.logs, &testbin.Buffer{})
		c.servers = append(c.servers, nil)
		conn, err := grpc.NewClient(cfg.GRPCBindAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		c.clients[cfg.NodeID] = raftogramv1.NewMessengerClient(conn)
		c.conns[cfg.NodeID] = conn
	}
	for i := range n {
		c.startWith(i, listeners[i])
	}
	t.Cleanup(func() {
		for i, s := range c.servers {
			if s != nil {
				s.Close()
			}
			if t.Failed() {
				t.Logf("--- log of %s ---\n%s", c.cfgs[i].NodeID, c.logs[i])
			}
		}
	})
	return c
}

func mustListen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func (c *testCluster) startWith(i int, ls Listeners) {
	c.t.Helper()
	log := slog.New(slog.NewTextHandler(c.logs[i], &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := Open(context.Background(), c.cfgs[i], ls, log, WithVersion(testVersion))
	if err != nil {
		c.t.Fatalf("start %s: %v", c.cfgs[i].NodeID, err)
	}
	c.servers[i] = s
}

// start restarts node i on its configured addresses.
func (c *testCluster) start(i int) {
	c.t.Helper()
	ls, err := Listen(c.cfgs[i])
	if err != nil {
		c.t.Fatal(err)
	}
	c.startWith(i, ls)
}

// stop stops node i gracefully.
func (c *testCluster) stop(i int) {
	c.t.Helper()
	if err := c.servers[i].Close(); err != nil {
		c.t.Fatalf("stop %s: %v", c.cfgs[i].NodeID, err)
	}
	c.servers[i] = nil
}

// waitFor polls cond until it returns nil or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %v: %v", what, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// leader waits until exactly one running node leads and every running node
// names it, and returns its position.
func (c *testCluster) leader() int {
	c.t.Helper()
	var leader int
	waitFor(c.t, "a single agreed leader", 15*time.Second, func() error {
		leader = -1
		for i, s := range c.servers {
			if s == nil {
				continue
			}
			if s.Node().Status().IsLeader {
				if leader >= 0 {
					return fmt.Errorf("two leaders: %s and %s", c.cfgs[leader].NodeID, c.cfgs[i].NodeID)
				}
				leader = i
			}
		}
		if leader < 0 {
			return fmt.Errorf("no leader")
		}
		for i, s := range c.servers {
			if s != nil && s.Node().Status().LeaderID != c.cfgs[leader].NodeID {
				return fmt.Errorf("%s names leader %q", c.cfgs[i].NodeID, s.Node().Status().LeaderID)
			}
		}
		return nil
	})
	return leader
}

func (c *testCluster) client(i int) raftogramv1.MessengerClient { return c.clients[c.cfgs[i].NodeID] }

func (c *testCluster) admin(i int) raftogramv1.AdminClient {
	return raftogramv1.NewAdminClient(c.conns[c.cfgs[i].NodeID])
}

func (c *testCluster) peer(i int) peerv1.PeerClient {
	return peerv1.NewPeerClient(c.conns[c.cfgs[i].NodeID])
}

// testVersion is the version every test node reports.
const testVersion = "test-build"

// converged waits until every running node has applied the same index and
// holds the same projection content.
func (c *testCluster) converged() {
	c.t.Helper()
	waitFor(c.t, "converged projections", 20*time.Second, func() error {
		var want string
		var wantIdx uint64
		for i, s := range c.servers {
			if s == nil {
				continue
			}
			d, err := s.Store().Digest(context.Background())
			if err != nil {
				return err
			}
			idx := s.Store().AppliedIndex()
			if want == "" {
				want, wantIdx = d, idx
				continue
			}
			if d != want || idx != wantIdx {
				return fmt.Errorf("%s at index %d differs from index %d", c.cfgs[i].NodeID, idx, wantIdx)
			}
		}
		return nil
	})
}
