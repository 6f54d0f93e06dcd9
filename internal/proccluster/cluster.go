// Package proccluster runs a static raftogram cluster of real processes,
// the one harness the end-to-end tests (e2e), the fault-injection tool
// (torture) and the container tests (e2e/docker) build on, the way etcd's
// robustness tests build on its e2e framework.
//
// [New] writes each node's configuration by marshalling a [config.Config]
// (loopback ports from [testbin.FreePorts], fast Raft timings, a data
// directory per node) and [Node] starts, kills, pauses (SIGSTOP), resumes
// and restarts the node's process by its pid and reads its GET /health.
// [OneLeader] and [Converged] judge a set of /health answers; the cluster
// waits on them with [Cluster.WaitStable] and [Cluster.WaitConverged], and
// the docker tests apply them to containers. Every RPC goes through the
// public client package ([Cluster.Client]).
package proccluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/raftogram/raftogram/client"
	"github.com/raftogram/raftogram/config"
	"github.com/raftogram/raftogram/httpapi"
	"github.com/raftogram/raftogram/internal/testbin"
	"gopkg.in/yaml.v3"
)

// PollInterval is how often the Wait methods ask /health.
const PollInterval = 25 * time.Millisecond

// Options configures [New].
type Options struct {
	// Bin is the raftogram binary ([testbin.BuildBinary]). Required.
	Bin string
	// Dir holds data/<id>, config.<id>.yaml and <id>.log. Required.
	Dir string
	// Nodes is the number of voters, node1..nodeN; 0 means 3.
	Nodes int
	// Configure, when set, adjusts node i's configuration before it is
	// written. It sees the harness's defaults ([Defaults]) with the node's
	// addresses, data_dir and the peer list (every peer at its real
	// addresses) filled in, and may change anything, the peers' raft_addr
	// included (torture routes them through proxies).
	Configure func(i int, cfg *config.Config)
	// Args are the binary's arguments after "-config <file>"; nil means
	// ["-dev"] (log as text, version dev).
	Args []string
	// OnLine, when set, sees every line a node prints (see ProcessOptions).
	OnLine func(n *Node, line string)
	// OnExit, when set, is called once a node's process has exited and its
	// output is in the log (p.Expected() tells a requested stop from a crash).
	OnExit func(n *Node, p *Process)
}

// Defaults returns the configuration every node starts from: config.Default
// with Raft timings fast enough for tests (300 ms heartbeat and election
// timeouts, 150 ms lease, 10 ms commit timeout), a 5 s shutdown_timeout
// and debug logs.
func Defaults() config.Config {
	cfg := config.Default()
	cfg.Raft.HeartbeatTimeout = 300 * time.Millisecond
	cfg.Raft.ElectionTimeout = 300 * time.Millisecond
	cfg.Raft.LeaderLeaseTimeout = 150 * time.Millisecond
	cfg.Raft.CommitTimeout = 10 * time.Millisecond
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.LogLevel = "debug"
	return cfg
}

// Cluster is a static raftogram cluster of real processes. Its methods are
// safe for concurrent use.
type Cluster struct {
	opts  Options
	Dir   string
	Nodes []*Node
}

// Node is one member: its addresses, files and written configuration, and
// its current process.
type Node struct {
	c     *Cluster
	Index int
	ID    string

	RaftAddr, GRPCAddr, HealthAddr string // where it listens
	DataDir, CfgPath, LogPath      string
	// Config is the configuration written to CfgPath.
	Config config.Config

	mu     sync.Mutex
	proc   *Process
	paused bool
	starts int
}

// New picks loopback ports for o.Nodes nodes and writes their
// configurations under o.Dir (creating it). Nothing is started. It returns
// an error when Bin or Dir is empty, no port can be picked or a file
// cannot be written.
func New(o Options) (*Cluster, error) {
	if o.Bin == "" || o.Dir == "" {
		return nil, errors.New("proccluster: Options.Bin and Options.Dir are required")
	}
	if o.Nodes <= 0 {
		o.Nodes = 3
	}
	if o.Args == nil {
		o.Args = []string{"-dev"}
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("proccluster: %w", err)
	}
	addrs, err := testbin.FreePorts(3 * o.Nodes)
	if err != nil {
		return nil, fmt.Errorf("proccluster: %w", err)
	}
	c := &Cluster{opts: o, Dir: o.Dir}
	var peers config.Peers
	for i := range o.Nodes {
		id := fmt.Sprintf("node%d", i+1)
		n := &Node{
			c: c, Index: i, ID: id,
			RaftAddr: addrs[3*i], GRPCAddr: addrs[3*i+1], HealthAddr: addrs[3*i+2],
			DataDir: filepath.Join(o.Dir, "data", id),
			CfgPath: filepath.Join(o.Dir, "config."+id+".yaml"),
			LogPath: filepath.Join(o.Dir, id+".log"),
		}
		c.Nodes = append(c.Nodes, n)
		peers = append(peers, config.Peer{NodeID: id, RaftAddr: n.RaftAddr, GRPCAddr: n.GRPCAddr})
	}
	for _, n := range c.Nodes {
		cfg := Defaults()
		cfg.NodeID = n.ID
		cfg.RaftBindAddr, cfg.GRPCBindAddr, cfg.HealthBindAddr = n.RaftAddr, n.GRPCAddr, n.HealthAddr
		cfg.DataDir = n.DataDir
		cfg.Cluster.Peers = append(config.Peers(nil), peers...)
		if o.Configure != nil {
			o.Configure(n.Index, &cfg)
		}
		if err := WriteConfig(n.CfgPath, cfg); err != nil {
			return nil, err
		}
		n.Config = cfg
	}
	return c, nil
}

// WriteConfig writes cfg as the YAML file path, marshalled with yaml.v3 so
// every key is the one config.Load reads. It returns the marshalling or
// write error.
func WriteConfig(path string, cfg config.Config) error {
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("proccluster: marshal config: %w", err)
	}
	b = append([]byte("# written by the test harness (internal/proccluster)\n"), b...)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("proccluster: %w", err)
	}
	return nil
}

// Node returns the node with the given id, or nil.
func (c *Cluster) Node(id string) *Node {
	for _, n := range c.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// NodeByGRPC returns the node serving gRPC on addr, or nil.
func (c *Cluster) NodeByGRPC(addr string) *Node {
	for _, n := range c.Nodes {
		if n.GRPCAddr == addr {
			return n
		}
	}
	return nil
}

// GRPCAddrs returns every node's gRPC address, node1 first.
func (c *Cluster) GRPCAddrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.GRPCAddr
	}
	return out
}

// Client returns a client.Client for every node of the cluster (cfg.Addrs
// is set to [Cluster.GRPCAddrs]); close it when done. It returns
// client.New's error.
func (c *Cluster) Client(ctx context.Context, cfg client.Config) (*client.Client, error) {
	cfg.Addrs = c.GRPCAddrs()
	return client.New(ctx, cfg)
}

// Start starts the given nodes in order (every node when none is given).
// It returns the first node's error ([Node.Start]).
func (c *Cluster) Start(nodes ...*Node) error {
	if len(nodes) == 0 {
		nodes = c.Nodes
	}
	for _, n := range nodes {
		if err := n.Start(); err != nil {
			return err
		}
	}
	return nil
}

// Close kills every running node, continuing paused ones first, and waits
// for their exits. It returns the errors of those that would not die.
func (c *Cluster) Close() error {
	var errs []error
	for _, n := range c.Nodes {
		if err := n.Kill(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Start starts the node's process with its config file. It returns an
// error when it already runs or cannot be started.
func (n *Node) Start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil && !n.proc.Exited() {
		return fmt.Errorf("%s is already running (pid %d)", n.ID, n.proc.PID())
	}
	o := n.c.opts
	po := ProcessOptions{Bin: o.Bin, Args: append([]string{"-config", n.CfgPath}, o.Args...), Env: testbin.BaseEnv(), LogPath: n.LogPath}
	if o.OnLine != nil {
		po.OnLine = func(line string) { o.OnLine(n, line) }
	}
	p, err := StartProcess(po)
	if err != nil {
		return fmt.Errorf("%s: %w", n.ID, err)
	}
	n.proc, n.paused = p, false
	n.starts++
	if o.OnExit != nil {
		go func() {
			<-p.Done()
			o.OnExit(n, p)
		}()
	}
	return nil
}

// Process returns the node's latest process, nil if it was never started.
func (n *Node) Process() *Process {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc
}

// Starts returns how many times the node was started.
func (n *Node) Starts() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.starts
}

// Running reports whether the node's process is alive (it may be paused).
func (n *Node) Running() bool {
	p := n.Process()
	return p != nil && !p.Exited()
}

// Paused reports whether the node was paused and not yet continued.
func (n *Node) Paused() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.paused
}

// Signal sends sig to the running process ([Process.Signal]). It returns
// an error when the node is not running or the signal fails.
func (n *Node) Signal(sig syscall.Signal) error {
	p := n.Process()
	if p == nil || p.Exited() {
		return fmt.Errorf("%s is not running", n.ID)
	}
	if err := p.Signal(sig); err != nil {
		return fmt.Errorf("%s: %w", n.ID, err)
	}
	return nil
}

// Wait waits up to d for the node's process to exit and returns its exit
// code ([Process.Wait]). It returns an error when the node was never
// started or still runs after d.
func (n *Node) Wait(d time.Duration) (int, error) {
	p := n.Process()
	if p == nil {
		return -2, fmt.Errorf("%s was never started", n.ID)
	}
	code, err := p.Wait(d)
	if err != nil {
		return code, fmt.Errorf("%s: %w", n.ID, err)
	}
	return code, nil
}

// Kill sends SIGKILL (and SIGCONT to a paused node) and waits for the exit.
// It returns nil when the node does not run, or an error when the process
// would not die.
func (n *Node) Kill() error {
	p := n.Process()
	if p == nil || p.Exited() {
		return nil
	}
	n.setPaused(false)
	if err := p.Kill(); err != nil {
		return fmt.Errorf("%s: %w", n.ID, err)
	}
	return nil
}

// Terminate stops the node gracefully (SIGTERM, a paused node continued:
// a leader hands leadership over first) and returns its exit code. It
// returns 0 and nil when the node does not run; an error when it did not
// exit within [ExitWait] (it is then killed).
func (n *Node) Terminate() (int, error) {
	p := n.Process()
	if p == nil || p.Exited() {
		return 0, nil
	}
	n.setPaused(false)
	code, err := p.Terminate()
	if err != nil {
		return code, fmt.Errorf("%s: %w", n.ID, err)
	}
	return code, nil
}

// Pause sends SIGSTOP. It returns an error when the node is not running.
func (n *Node) Pause() error {
	p := n.Process()
	if p == nil || p.Exited() {
		return fmt.Errorf("%s is not running", n.ID)
	}
	n.setPaused(true)
	return p.Signal(syscall.SIGSTOP)
}

// Continue sends SIGCONT to a paused node. It returns nil when the node
// does not run.
func (n *Node) Continue() error {
	n.setPaused(false)
	p := n.Process()
	if p == nil || p.Exited() {
		return nil
	}
	return p.Signal(syscall.SIGCONT)
}

func (n *Node) setPaused(v bool) {
	n.mu.Lock()
	n.paused = v
	n.mu.Unlock()
}

// Restart starts a stopped node again with its data ([Node.Start]).
func (n *Node) Restart() error { return n.Start() }

// Wipe removes the node's data directory. It returns an error when the
// node still runs or the removal fails.
func (n *Node) Wipe() error {
	if n.Running() {
		return fmt.Errorf("wipe %s: still running", n.ID)
	}
	return os.RemoveAll(n.DataDir)
}

// Health fetches the node's GET /health ([testbin.GetHealth]) and checks it
// answers as this node; an error names the node.
func (n *Node) Health() (httpapi.Health, error) {
	h, err := testbin.GetHealth(nil, n.HealthAddr)
	if err != nil {
		return httpapi.Health{}, fmt.Errorf("%s: %w", n.ID, err)
	}
	if h.NodeID != n.ID {
		return httpapi.Health{}, fmt.Errorf("%s: /health answers as node %q", n.ID, h.NodeID)
	}
	return h, nil
}

// OneLeader checks a set of /health answers, keyed by node id: exactly one
// node leads (role leader and is_leader), every other one is a follower
// that names it as leader, with the leader's gRPC address, in the leader's
// term. It returns the leader's id, or an error describing what is not so
// yet (with every answer, [Describe]).
func OneLeader(hs map[string]httpapi.Health) (string, error) {
	leader := ""
	for id, h := range hs {
		if h.Role == "leader" || h.IsLeader {
			if h.Role != "leader" || !h.IsLeader {
				return "", fmt.Errorf("%s: inconsistent leader health: %s", id, Describe(hs))
			}
			if leader != "" {
				return "", fmt.Errorf("two leaders, %s and %s: %s", leader, id, Describe(hs))
			}
			leader = id
		}
	}
	if leader == "" {
		return "", fmt.Errorf("no leader: %s", Describe(hs))
	}
	lh := hs[leader]
	for id, h := range hs {
		if id != leader && h.Role != "follower" {
			return "", fmt.Errorf("%s is %s, not a follower: %s", id, h.Role, Describe(hs))
		}
		if h.LeaderID != leader || h.LeaderGRPCAddr != lh.LeaderGRPCAddr || h.Term != lh.Term {
			return "", fmt.Errorf("%s follows %q at %q in term %d; %s leads at %q in term %d: %s",
				id, h.LeaderID, h.LeaderGRPCAddr, h.Term, leader, lh.LeaderGRPCAddr, lh.Term, Describe(hs))
		}
	}
	return leader, nil
}

// Converged checks that the /health answers agree on one leader
// ([OneLeader]) and that every node has applied the same index, at least
// min. It returns that index, or an error saying what differs.
func Converged(hs map[string]httpapi.Health, min uint64) (uint64, error) {
	if _, err := OneLeader(hs); err != nil {
		return 0, err
	}
	var idx uint64
	first := true
	for _, h := range hs {
		if first {
			idx, first = h.AppliedIndex, false
		} else if h.AppliedIndex != idx {
			return 0, fmt.Errorf("applied_index differs: %s", Describe(hs))
		}
	}
	if idx < min {
		return 0, fmt.Errorf("applied_index %d < %d: %s", idx, min, Describe(hs))
	}
	return idx, nil
}

// Describe renders /health answers in node id order, one bracket each.
func Describe(hs map[string]httpapi.Health) string {
	ids := make([]string, 0, len(hs))
	for id := range hs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var b strings.Builder
	for _, id := range ids {
		h := hs[id]
		fmt.Fprintf(&b, "[%s %s term=%d leader=%q applied=%d commit=%d] ", id, h.Role, h.Term, h.LeaderID, h.AppliedIndex, h.CommitIndex)
	}
	return strings.TrimSpace(b.String())
}

// Up returns the nodes that run and are not paused.
func (c *Cluster) Up() []*Node {
	var out []*Node
	for _, n := range c.Nodes {
		if n.Running() && !n.Paused() {
			out = append(out, n)
		}
	}
	return out
}

// Healths asks /health of each given node (every node that is up when
// none is given). It returns the first node's error.
func (c *Cluster) Healths(nodes ...*Node) (map[string]httpapi.Health, error) {
	if len(nodes) == 0 {
		nodes = c.Up()
	}
	hs := make(map[string]httpapi.Health, len(nodes))
	for _, n := range nodes {
		h, err := n.Health()
		if err != nil {
			return nil, err
		}
		hs[n.ID] = h
	}
	return hs, nil
}

// Stable checks once that among the given nodes (every node that is up
// when none is given) exactly one leads and the others follow it
// ([OneLeader]), and that each names the leader at the addresses the
// configurations give: the Raft address the leader advertises (its own
// peer entry) and the gRPC address the node's own peer list holds. It
// returns the leader and every answer.
func (c *Cluster) Stable(nodes ...*Node) (*Node, map[string]httpapi.Health, error) {
	hs, err := c.Healths(nodes...)
	if err != nil {
		return nil, nil, err
	}
	if len(hs) == 0 {
		return nil, nil, errors.New("no node is up")
	}
	id, err := OneLeader(hs)
	if err != nil {
		return nil, nil, err
	}
	leader := c.Node(id)
	raftAddr := peerOf(leader.Config, id).RaftAddr
	for vid, h := range hs {
		grpcAddr := peerOf(c.Node(vid).Config, id).GRPCAddr
		if h.LeaderRaftAddr != raftAddr || h.LeaderGRPCAddr != grpcAddr {
			return nil, nil, fmt.Errorf("%s names leader %s at raft %q grpc %q, want %q, %q",
				vid, id, h.LeaderRaftAddr, h.LeaderGRPCAddr, raftAddr, grpcAddr)
		}
	}
	return leader, hs, nil
}

// peerOf returns the entry for id in cfg's peer list (zero when absent).
func peerOf(cfg config.Config, id string) config.Peer {
	for _, p := range cfg.Cluster.Peers {
		if p.NodeID == id {
			return p
		}
	}
	return config.Peer{}
}

// WaitStable polls [Cluster.Stable] every [PollInterval] until it holds,
// ctx ends or d passes, and returns the leader or the last error.
func (c *Cluster) WaitStable(ctx context.Context, d time.Duration, nodes ...*Node) (*Node, error) {
	var leader *Node
	err := testbin.Poll(ctx, d, PollInterval, func() error {
		l, _, err := c.Stable(nodes...)
		leader = l
		return err
	})
	return leader, err
}

// WaitConverged polls until every node runs unpaused, one leads, and all
// report the same applied_index, unchanged across two polls; it returns
// that index, or the last error once ctx ends or d passes.
func (c *Cluster) WaitConverged(ctx context.Context, d time.Duration) (uint64, error) {
	var last, idx uint64
	lastOK := false
	err := testbin.Poll(ctx, d, PollInterval, func() error {
		if up := c.Up(); len(up) != len(c.Nodes) {
			lastOK = false
			return fmt.Errorf("only %d of %d nodes are up", len(up), len(c.Nodes))
		}
		_, hs, err := c.Stable()
		if err == nil {
			idx, err = Converged(hs, 0)
		}
		if err != nil {
			lastOK = false
			return err
		}
		if !lastOK || last != idx {
			last, lastOK = idx, true
			return fmt.Errorf("applied_index %d not yet seen twice", idx)
		}
		return nil
	})
	return idx, err
}

// Followers returns the nodes other than leader.
func (c *Cluster) Followers(leader *Node) []*Node {
	var out []*Node
	for _, n := range c.Nodes {
		if n != leader {
			out = append(out, n)
		}
	}
	return out
}
