package torture

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/raftogram/raftogram/httpapi"
	"github.com/raftogram/raftogram/internal/testbin"
)

// Timing bounds of the cluster driver.
const (
	exitWait     = 15 * time.Second
	pollInterval = 25 * time.Millisecond
)

// RaftTuning is the raft: section written into every node's config.
type RaftTuning struct {
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	SnapshotThreshold  uint64
	SnapshotInterval   time.Duration
	TrailingLogs       uint64
	ApplyTimeout       time.Duration
}

// DefaultRaftTuning is small enough that snapshots and log compaction
// happen every few hundred writes, so followers that fall behind catch up
// by snapshot install.
func DefaultRaftTuning() RaftTuning {
	return RaftTuning{
		HeartbeatTimeout:   500 * time.Millisecond,
		ElectionTimeout:    500 * time.Millisecond,
		LeaderLeaseTimeout: 250 * time.Millisecond,
		CommitTimeout:      10 * time.Millisecond,
		SnapshotThreshold:  400,
		SnapshotInterval:   time.Second,
		TrailingLogs:       200,
		ApplyTimeout:       5 * time.Second,
	}
}

// Node is one raftogram process of the cluster, with its addresses and
// files. Its Raft peers are reached through the cluster's links.
type Node struct {
	c     *Cluster
	Index int
	ID    string

	RaftAddr, GRPCAddr, HealthAddr string
	DataDir, CfgPath, LogPath      string

	mu       sync.Mutex
	proc     *process
	paused   bool
	starts   int
	watches  []*logWatch
	evidence map[string]int
	tail     logTail
}

// Cluster is a static raftogram cluster of real processes whose Raft
// traffic runs through per-link proxies.
type Cluster struct {
	bin   string
	Dir   string
	Nodes []*Node
	links map[[2]int]*Link
	start time.Time
	raft  RaftTuning

	amu       sync.Mutex
	anomalies []string
}

// NewCluster writes configs for n nodes under dir and starts the link
// proxies. Nothing is started.
func NewCluster(bin, dir string, n int, raft RaftTuning) (*Cluster, error) {
	c := &Cluster{bin: bin, Dir: dir, links: map[[2]int]*Link{}, start: time.Now(), raft: raft}
	addrs, err := testbin.FreePorts(3 * n)
	if err != nil {
		return nil, err
	}
	for i := range n {
		id := fmt.Sprintf("node%d", i+1)
		c.Nodes = append(c.Nodes, &Node{
			c: c, Index: i, ID: id,
			RaftAddr: addrs[3*i], GRPCAddr: addrs[3*i+1], HealthAddr: addrs[3*i+2],
			DataDir:  filepath.Join(dir, "data", id),
			CfgPath:  filepath.Join(dir, "config."+id+".yaml"),
			LogPath:  filepath.Join(dir, id+".log"),
			evidence: map[string]int{},
		})
	}
	for i, from := range c.Nodes {
		for j, to := range c.Nodes {
			if i == j {
				continue
			}
			l, err := newLink(i, j, to.RaftAddr)
			if err != nil {
				c.Close()
				return nil, err
			}
			c.links[[2]int{from.Index, to.Index}] = l
		}
	}
	for _, nd := range c.Nodes {
		if err := os.WriteFile(nd.CfgPath, []byte(c.config(nd)), 0o644); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// config is node nd's YAML: itself at its real Raft address, every other
// peer at the proxy of the link nd->peer.
func (c *Cluster) config(nd *Node) string {
	var peers strings.Builder
	for _, p := range c.Nodes {
		raftAddr := p.RaftAddr
		if p != nd {
			raftAddr = c.links[[2]int{nd.Index, p.Index}].Addr()
		}
		fmt.Fprintf(&peers, "    - node_id: %s\n      raft_addr: %s\n      grpc_addr: %s\n", p.ID, raftAddr, p.GRPCAddr)
	}
	r := c.raft
	return fmt.Sprintf(`# written by the torture harness
node_id: %s
raft_bind_addr: %s
grpc_bind_addr: %s
health_bind_addr: %s
data_dir: %s
cluster:
  peers:
%sraft:
  heartbeat_timeout: %s
  election_timeout: %s
  leader_lease_timeout: %s
  commit_timeout: %s
  snapshot_threshold: %d
  snapshot_interval: %s
  trailing_logs: %d
  apply_timeout: %s
shutdown_timeout: 5s
log_level: info
`, nd.ID, nd.RaftAddr, nd.GRPCAddr, nd.HealthAddr, nd.DataDir, peers.String(),
		r.HeartbeatTimeout, r.ElectionTimeout, r.LeaderLeaseTimeout, r.CommitTimeout,
		r.SnapshotThreshold, r.SnapshotInterval, r.TrailingLogs, r.ApplyTimeout)
}

func (c *Cluster) anomaly(format string, args ...any) {
	c.amu.Lock()
	defer c.amu.Unlock()
	c.anomalies = append(c.anomalies, fmt.Sprintf("%s +%s ", time.Now().Format("15:04:05.000"), c.since().Round(time.Millisecond))+fmt.Sprintf(format, args...))
}

// Anomalies returns the process-level anomalies seen so far: unexpected
// exits, panics in logs, unclean graceful stops.
func (c *Cluster) Anomalies() []string {
	c.amu.Lock()
	defer c.amu.Unlock()
	return append([]string(nil), c.anomalies...)
}

func (c *Cluster) since() time.Duration { return time.Since(c.start) }

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

// Start starts every given node (all when none is given).
func (c *Cluster) Start(nodes ...*Node) error {
	if len(nodes) == 0 {
		nodes = c.Nodes
	}
	for _, n := range nodes {
		if err := n.start(); err != nil {
			return err
		}
	}
	return nil
}

// Close kills every running node (continuing paused ones) and closes the
// proxies.
func (c *Cluster) Close() {
	for _, n := range c.Nodes {
		if n.Paused() {
			n.Continue()
		}
		n.Kill()
	}
	for _, l := range c.links {
		l.Close()
	}
}

// SetLink sets the state of the directed link from->to.
func (c *Cluster) SetLink(from, to *Node, s LinkState) {
	c.links[[2]int{from.Index, to.Index}].Set(s)
}

// HealLinks brings every link up.
func (c *Cluster) HealLinks() {
	for _, l := range c.links {
		l.Set(LinkUp)
	}
}

// CutLinks describes the links that are not up, e.g. "node1->node2(reset)".
func (c *Cluster) CutLinks() []string {
	var out []string
	for _, l := range c.links {
		if s := l.State(); s != LinkUp {
			out = append(out, fmt.Sprintf("%s->%s(%s)", c.Nodes[l.From].ID, c.Nodes[l.To].ID, s))
		}
	}
	return out
}

// Health fetches the node's /health ([testbin.GetHealth]); an error names
// the node.
func (n *Node) Health() (httpapi.Health, error) {
	h, err := testbin.GetHealth(nil, n.HealthAddr)
	if err != nil {
		return httpapi.Health{}, fmt.Errorf("%s: %w", n.ID, err)
	}
	return h, nil
}

// poll is [testbin.Poll] every pollInterval: it calls cond until it returns
// nil, ctx ends or d passes, and returns the last error.
func poll(ctx context.Context, d time.Duration, cond func() error) error {
	return testbin.Poll(ctx, d, pollInterval, cond)
}

// Stable checks once that among the running, unpaused nodes exactly one
// leads and every other one follows it in the same term. It returns the
// leader and the health of each.
func (c *Cluster) Stable() (*Node, map[string]httpapi.Health, error) {
	hs := map[string]httpapi.Health{}
	var leader *Node
	for _, n := range c.Nodes {
		if !n.Running() || n.Paused() {
			continue
		}
		h, err := n.Health()
		if err != nil {
			return nil, nil, err
		}
		hs[n.ID] = h
		if h.IsLeader {
			if leader != nil {
				return nil, nil, fmt.Errorf("two leaders: %s and %s", leader.ID, n.ID)
			}
			leader = n
		}
	}
	if leader == nil {
		return nil, nil, errors.New("no leader")
	}
	for id, h := range hs {
		if h.LeaderID != leader.ID || h.Term != hs[leader.ID].Term {
			return nil, nil, fmt.Errorf("%s follows %q in term %d; leader %s is in term %d", id, h.LeaderID, h.Term, leader.ID, hs[leader.ID].Term)
		}
	}
	return leader, hs, nil
}

// WaitStable polls [Cluster.Stable] for up to d.
func (c *Cluster) WaitStable(ctx context.Context, d time.Duration) (*Node, error) {
	var leader *Node
	err := poll(ctx, d, func() error {
		l, _, err := c.Stable()
		leader = l
		return err
	})
	return leader, err
}

// WaitConverged polls until every node runs, one leads, and all report the
// same applied_index, unchanged across two polls; it returns that index.
func (c *Cluster) WaitConverged(ctx context.Context, d time.Duration) (uint64, error) {
	var last uint64
	var lastOK bool
	var idx uint64
	err := poll(ctx, d, func() error {
		for _, n := range c.Nodes {
			if !n.Running() || n.Paused() {
				return fmt.Errorf("%s is not running", n.ID)
			}
		}
		_, hs, err := c.Stable()
		if err != nil {
			lastOK = false
			return err
		}
		var first uint64
		var firstSet bool
		for id, h := range hs {
			if !firstSet {
				first, firstSet = h.AppliedIndex, true
			} else if h.AppliedIndex != first {
				lastOK = false
				return fmt.Errorf("applied_index differs (%s at %d, another at %d)", id, h.AppliedIndex, first)
			}
		}
		if !lastOK || last != first {
			last, lastOK = first, true
			return fmt.Errorf("applied_index %d not yet stable", first)
		}
		idx = first
		return nil
	})
	return idx, err
}

// Leader returns the node that currently leads according to a stable view,
// waiting up to d.
func (c *Cluster) Leader(ctx context.Context, d time.Duration) (*Node, error) {
	return c.WaitStable(ctx, d)
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

// Restart starts a stopped node again.
func (c *Cluster) Restart(n *Node) error { return n.start() }
