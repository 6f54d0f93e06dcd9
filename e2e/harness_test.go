package e2e

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/httpapi"
	"github.com/raftogram/raftogram/internal/proccluster"
	"github.com/raftogram/raftogram/internal/testbin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
)

// binPath is the raftogram binary built once by TestMain.
var binPath string

// Timing bounds used by the polling helpers.
const (
	electionWait = 15 * time.Second     // a leader is elected / the cluster converges
	exitWait     = proccluster.ExitWait // a signalled process exits
	rpcTimeout   = 5 * time.Second      // one unary RPC
	pollInterval = proccluster.PollInterval
)

// freePorts returns n distinct free loopback addresses
// ([testbin.FreePorts]), failing the test when it cannot.
func freePorts(t testing.TB, n int) []string {
	t.Helper()
	addrs, err := testbin.FreePorts(n)
	if err != nil {
		t.Fatal(err)
	}
	return addrs
}

// proc is one started process ([proccluster.Process]) with methods that
// fail the test.
type proc struct{ *proccluster.Process }

// startProc starts the binary with args and env in dir (the test's working
// directory when empty), appending stdout and stderr to logPath. The process
// is SIGKILLed (by its pid) in t.Cleanup if it still runs.
func startProc(t testing.TB, dir, logPath string, env []string, args ...string) proc {
	t.Helper()
	p, err := proccluster.StartProcess(proccluster.ProcessOptions{Bin: binPath, Args: args, Env: env, Dir: dir, LogPath: logPath})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Kill(); err != nil {
			t.Error(err)
		}
	})
	return proc{p}
}

func (p proc) exited() bool { return p.Exited() }

// signal sends sig to the process (by its pid).
func (p proc) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// wait waits up to d for the process to exit and returns its exit code
// (-1: killed by a signal).
func (p proc) wait(t testing.TB, d time.Duration) int {
	t.Helper()
	code, err := p.Wait(d)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// dumpLogsOnFailure registers a cleanup that prints each file via t.Log when
// the test failed. Register it before starting processes so it runs after
// they have been killed.
func dumpLogsOnFailure(t testing.TB, paths ...string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Logf("log %s: %v", p, err)
				continue
			}
			t.Logf("----- %s -----\n%s", filepath.Base(p), b)
		}
	})
}

// eventually calls cond every pollInterval until it returns nil or d passes
// ([testbin.Poll]), then fails the test with the last error.
func eventually(t testing.TB, d time.Duration, what string, cond func() error) {
	t.Helper()
	if err := testbin.Poll(context.Background(), d, pollInterval, cond); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// dial returns a raw Messenger stub for addr, closed in t.Cleanup, for the
// tests that assert the wire contract itself (optional fields set, status
// messages and details); everything else uses the client package. Reconnect
// backoff is kept short because nodes are killed and restarted.
func dial(t testing.TB, addr string) raftogramv1.MessengerClient {
	t.Helper()
	cc, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 300 * time.Millisecond},
			MinConnectTimeout: 2 * time.Second,
		}))
	if err != nil {
		t.Fatalf("grpc.NewClient(%s): %v", addr, err)
	}
	t.Cleanup(func() { cc.Close() })
	return raftogramv1.NewMessengerClient(cc)
}

// rpcCtx is a context bounded by rpcTimeout.
func rpcCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	t.Cleanup(cancel)
	return ctx
}

// node is one member of a test cluster.
type node = proccluster.Node

// cluster is a [proccluster.Cluster] tied to a test.
type cluster struct {
	*proccluster.Cluster
	t testing.TB

	mu      sync.Mutex
	clients map[string]raftogramv1.MessengerClient
}

// newCluster writes configs for n nodes (node1..nodeN) on free loopback
// ports into a temp dir ([proccluster.New]). Nothing is started; every
// node is killed when the test ends, and their logs are printed if it
// failed.
func newCluster(t testing.TB, n int) *cluster {
	t.Helper()
	pc, err := proccluster.New(proccluster.Options{Bin: binPath, Dir: t.TempDir(), Nodes: n})
	if err != nil {
		t.Fatal(err)
	}
	logs := make([]string, len(pc.Nodes))
	for i, nd := range pc.Nodes {
		logs[i] = nd.LogPath
	}
	dumpLogsOnFailure(t, logs...)
	t.Cleanup(func() {
		if err := pc.Close(); err != nil {
			t.Error(err)
		}
	})
	return &cluster{Cluster: pc, t: t, clients: map[string]raftogramv1.MessengerClient{}}
}

// nodes returns the named nodes.
func (c *cluster) nodes(ids []string) []*node {
	out := make([]*node, len(ids))
	for i, id := range ids {
		if out[i] = c.Node(id); out[i] == nil {
			c.t.Fatalf("no node %q", id)
		}
	}
	return out
}

// start starts the named nodes in the given order.
func (c *cluster) start(ids ...string) {
	c.t.Helper()
	if err := c.Start(c.nodes(ids)...); err != nil {
		c.t.Fatal(err)
	}
}

// signal sends sig to the named node's process.
func (c *cluster) signal(id string, sig syscall.Signal) {
	c.t.Helper()
	if err := c.Node(id).Signal(sig); err != nil {
		c.t.Fatal(err)
	}
}

// wait waits up to d for the named node's process to exit and returns its
// exit code (-1: killed by a signal).
func (c *cluster) wait(id string, d time.Duration) int {
	c.t.Helper()
	code, err := c.Node(id).Wait(d)
	if err != nil {
		c.t.Fatal(err)
	}
	return code
}

// client returns the (cached) raw Messenger stub of a node ([dial]).
func (c *cluster) client(id string) raftogramv1.MessengerClient {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl, ok := c.clients[id]
	if !ok {
		cl = dial(c.t, c.Node(id).GRPCAddr)
		c.clients[id] = cl
	}
	return cl
}

// stable checks, once, that among the named nodes exactly one is the leader
// and every other one is a follower whose leader_* fields name it with the
// addresses of the static config ([proccluster.Cluster.Stable]). It returns
// the leader and every health.
func (c *cluster) stable(ids []string) (*node, map[string]httpapi.Health, error) {
	return c.Stable(c.nodes(ids)...)
}

// waitStable polls /health of the named nodes until [cluster.stable] holds
// and returns the leader.
func (c *cluster) waitStable(ids ...string) *node {
	c.t.Helper()
	l, err := c.WaitStable(context.Background(), electionWait, c.nodes(ids)...)
	if err != nil {
		c.t.Fatalf("one leader among %v, the others following it: %v", ids, err)
	}
	return l
}

// ids returns every node id.
func (c *cluster) ids() []string {
	out := make([]string, len(c.Nodes))
	for i, nd := range c.Nodes {
		out[i] = nd.ID
	}
	return out
}
