package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/httpapi"
	"github.com/raftogram/raftogram/internal/testbin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
)

// binPath is the raftogram binary built once by TestMain.
var binPath string

// Timing bounds used by the polling helpers.
const (
	electionWait = 15 * time.Second // a leader is elected / the cluster converges
	exitWait     = 15 * time.Second // a signalled process exits
	rpcTimeout   = 5 * time.Second  // one unary RPC
	pollInterval = 25 * time.Millisecond
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

// proc is one started raftogram process.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when Wait returned
	err  error         // Wait's result, valid once done is closed
}

// startProc starts the binary with args and env in dir (the test's working
// directory when empty), appending stdout and stderr to logPath. The process
// is SIGKILLed (by its pid) in t.Cleanup if it still runs.
func startProc(t testing.TB, dir, logPath string, env []string, args ...string) *proc {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("open log file: %v", err)
	}
	fmt.Fprintf(logf, "=== %s start: %s %s\n", time.Now().Format(time.RFC3339Nano), binPath, strings.Join(args, " "))
	cmd := exec.Command(binPath, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", binPath, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Kill()
		}
		select {
		case <-p.done:
		case <-time.After(exitWait):
			t.Errorf("pid %d did not exit after SIGKILL", p.cmd.Process.Pid)
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process (by its pid).
func (p *proc) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("send %v to pid %d: %v", sig, p.cmd.Process.Pid, err)
	}
}

// wait waits up to d for the process to exit and returns its exit code.
func (p *proc) wait(t testing.TB, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("pid %d did not exit within %v", p.cmd.Process.Pid, d)
	}
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &ee):
		return ee.ExitCode() // -1 when killed by a signal
	default:
		t.Fatalf("wait for pid %d: %v", p.cmd.Process.Pid, p.err)
		return -1
	}
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

// dial returns a Messenger client for addr, closed in t.Cleanup. Reconnect
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
type node struct {
	id                         string
	raftAddr, grpcAddr, health string
	dataDir, cfgPath, logPath  string
	proc                       *proc
}

// cluster is a set of nodes sharing one static peer list.
type cluster struct {
	t     testing.TB
	nodes []*node
	byID  map[string]*node

	mu      sync.Mutex
	clients map[string]raftogramv1.MessengerClient
}

// newCluster writes YAML configs for n nodes (node1..nodeN) on free loopback
// ports into a temp dir. Nothing is started.
func newCluster(t testing.TB, n int) *cluster {
	t.Helper()
	dir := t.TempDir()
	addrs := freePorts(t, 3*n)
	c := &cluster{t: t, byID: map[string]*node{}, clients: map[string]raftogramv1.MessengerClient{}}
	for i := range n {
		id := fmt.Sprintf("node%d", i+1)
		nd := &node{
			id:       id,
			raftAddr: addrs[3*i],
			grpcAddr: addrs[3*i+1],
			health:   addrs[3*i+2],
			dataDir:  filepath.Join(dir, "data", id),
			cfgPath:  filepath.Join(dir, "config."+id+".yaml"),
			logPath:  filepath.Join(dir, id+".log"),
		}
		c.nodes = append(c.nodes, nd)
		c.byID[id] = nd
	}
	var peers strings.Builder
	for _, nd := range c.nodes {
		fmt.Fprintf(&peers, "    - node_id: %s\n      raft_addr: %s\n      grpc_addr: %s\n", nd.id, nd.raftAddr, nd.grpcAddr)
	}
	for _, nd := range c.nodes {
		cfg := fmt.Sprintf(`node_id: %s
raft_bind_addr: %s
grpc_bind_addr: %s
health_bind_addr: %s
data_dir: %s
cluster:
  peers:
%sraft:
  heartbeat_timeout: 300ms
  election_timeout: 300ms
  leader_lease_timeout: 150ms
  commit_timeout: 10ms
shutdown_timeout: 5s
log_level: debug
`, nd.id, nd.raftAddr, nd.grpcAddr, nd.health, nd.dataDir, peers.String())
		if err := os.WriteFile(nd.cfgPath, []byte(cfg), 0o644); err != nil {
			t.Fatalf("write config: %v", err)
		}
	}
	logs := make([]string, len(c.nodes))
	for i, nd := range c.nodes {
		logs[i] = nd.logPath
	}
	dumpLogsOnFailure(t, logs...)
	return c
}

// start starts the named nodes in the given order.
func (c *cluster) start(ids ...string) {
	c.t.Helper()
	for _, id := range ids {
		nd := c.byID[id]
		if nd.proc != nil && !nd.proc.exited() {
			c.t.Fatalf("%s is already running", id)
		}
		nd.proc = startProc(c.t, "", nd.logPath, testbin.BaseEnv(), "-config", nd.cfgPath, "-dev")
	}
}

// client returns the (cached) Messenger client of a node.
func (c *cluster) client(id string) raftogramv1.MessengerClient {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl, ok := c.clients[id]
	if !ok {
		cl = dial(c.t, c.byID[id].grpcAddr)
		c.clients[id] = cl
	}
	return cl
}

// stable checks, once, that among the named nodes exactly one is the leader
// and every other one is a follower whose leader_* fields name it with the
// addresses of the static config. It returns the leader and every health.
func (c *cluster) stable(ids []string) (*node, map[string]httpapi.Health, error) {
	hs := make(map[string]httpapi.Health, len(ids))
	var leader *node
	for _, id := range ids {
		nd := c.byID[id]
		h, err := testbin.GetHealth(nil, nd.health)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", id, err)
		}
		if h.NodeID != id {
			return nil, nil, fmt.Errorf("%s: /health node_id = %q", id, h.NodeID)
		}
		hs[id] = h
		if h.Role == "leader" || h.IsLeader {
			if h.Role != "leader" || !h.IsLeader {
				return nil, nil, fmt.Errorf("%s: inconsistent leader health %+v", id, h)
			}
			if leader != nil {
				return nil, nil, fmt.Errorf("two leaders: %s and %s", leader.id, id)
			}
			leader = nd
		}
	}
	if leader == nil {
		return nil, nil, fmt.Errorf("no leader yet: %+v", hs)
	}
	for _, id := range ids {
		h := hs[id]
		want := httpapi.Health{LeaderID: leader.id, LeaderRaftAddr: leader.raftAddr, LeaderGRPCAddr: leader.grpcAddr}
		got := httpapi.Health{LeaderID: h.LeaderID, LeaderRaftAddr: h.LeaderRaftAddr, LeaderGRPCAddr: h.LeaderGRPCAddr}
		if got != want {
			return nil, nil, fmt.Errorf("%s points at %+v, want %+v", id, got, want)
		}
		if id != leader.id && (h.Role != "follower" || h.IsLeader) {
			return nil, nil, fmt.Errorf("%s: role %q is_leader %v, want follower", id, h.Role, h.IsLeader)
		}
		if h.Term != hs[leader.id].Term {
			return nil, nil, fmt.Errorf("%s: term %d, leader's term %d", id, h.Term, hs[leader.id].Term)
		}
	}
	return leader, hs, nil
}

// waitStable polls /health of the named nodes until [cluster.stable] holds
// and returns the leader.
func (c *cluster) waitStable(ids ...string) *node {
	c.t.Helper()
	var leader *node
	eventually(c.t, electionWait, fmt.Sprintf("one leader among %v, the others following it", ids), func() error {
		l, _, err := c.stable(ids)
		leader = l
		return err
	})
	return leader
}

// ids returns every node id.
func (c *cluster) ids() []string {
	out := make([]string, len(c.nodes))
	for i, nd := range c.nodes {
		out[i] = nd.id
	}
	return out
}
