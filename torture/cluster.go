package torture

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/raftogram/raftogram/config"
	"github.com/raftogram/raftogram/httpapi"
	"github.com/raftogram/raftogram/internal/proccluster"
	"github.com/raftogram/raftogram/internal/testbin"
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

// Node is one raftogram process of the cluster (a [proccluster.Node]:
// addresses, files, start/kill/pause/terminate by pid, /health) with the
// torture's view of its log: watches, evidence counters and a tail.
type Node struct {
	*proccluster.Node
	c *Cluster

	mu       sync.Mutex
	watches  []*logWatch
	evidence map[string]int
	tail     logTail
}

// Cluster is a static raftogram cluster of real processes
// ([proccluster.Cluster]) whose Raft traffic runs through per-link proxies.
type Cluster struct {
	pc    *proccluster.Cluster
	Dir   string
	Nodes []*Node
	links map[[2]int]*Link
	start time.Time
	raft  RaftTuning
	sec   *Security // nil: plaintext and open

	amu       sync.Mutex
	anomalies []string
}

// NewCluster writes configs for n nodes under dir, each listing every
// other peer at the proxy of its link, and starts the link proxies. With
// sec set every node runs TLS and auth with its material (see [Security])
// and the harness's clients present it. Nothing is started.
func NewCluster(bin, dir string, n int, raft RaftTuning, sec *Security) (*Cluster, error) {
	c := &Cluster{Dir: dir, links: map[[2]int]*Link{}, start: time.Now(), raft: raft, sec: sec}
	var linkErr error
	pc, err := proccluster.New(proccluster.Options{
		Bin: bin, Dir: dir, Nodes: n,
		Configure: func(i int, cfg *config.Config) {
			cfg.Raft.HeartbeatTimeout = raft.HeartbeatTimeout
			cfg.Raft.ElectionTimeout = raft.ElectionTimeout
			cfg.Raft.LeaderLeaseTimeout = raft.LeaderLeaseTimeout
			cfg.Raft.CommitTimeout = raft.CommitTimeout
			cfg.Raft.SnapshotThreshold = raft.SnapshotThreshold
			cfg.Raft.SnapshotInterval = raft.SnapshotInterval
			cfg.Raft.TrailingLogs = raft.TrailingLogs
			cfg.Raft.ApplyTimeout = raft.ApplyTimeout
			cfg.LogLevel = "info"
			if sec != nil {
				sec.configure(i, cfg)
			}
			// Node i reaches peer j through the proxy of the link i->j.
			for j := range cfg.Cluster.Peers {
				if j == i {
					continue
				}
				l, err := newLink(i, j, cfg.Cluster.Peers[j].RaftAddr)
				if err != nil {
					linkErr = errors.Join(linkErr, err)
					continue
				}
				c.links[[2]int{i, j}] = l
				cfg.Cluster.Peers[j].RaftAddr = l.Addr()
			}
		},
		OnLine: func(pn *proccluster.Node, line string) { c.Nodes[pn.Index].onLine(line) },
		OnExit: func(pn *proccluster.Node, p *proccluster.Process) {
			if !p.Expected() {
				nd := c.Nodes[pn.Index]
				c.anomaly("%s (pid %d) exited on its own with code %d; last log lines:\n    %s",
					nd.ID, p.PID(), p.ExitCode(), strings.Join(nd.Tail(), "\n    "))
			}
		},
	})
	if err == nil {
		err = linkErr
	}
	if err != nil {
		c.closeLinks()
		return nil, err
	}
	c.pc = pc
	for _, pn := range pc.Nodes {
		c.Nodes = append(c.Nodes, &Node{Node: pn, c: c, evidence: map[string]int{}})
	}
	return c, nil
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
func (c *Cluster) Node(id string) *Node { return c.wrap(c.pc.Node(id)) }

// NodeByGRPC returns the node serving gRPC on addr, or nil.
func (c *Cluster) NodeByGRPC(addr string) *Node { return c.wrap(c.pc.NodeByGRPC(addr)) }

// wrap returns torture's node for the harness node pn (nil for nil).
func (c *Cluster) wrap(pn *proccluster.Node) *Node {
	if pn == nil {
		return nil
	}
	return c.Nodes[pn.Index]
}

// Start starts every given node (all when none is given). It returns the
// first node's error.
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

// Close kills every running node (continuing paused ones) and closes the
// proxies.
func (c *Cluster) Close() {
	c.pc.Close()
	c.closeLinks()
}

func (c *Cluster) closeLinks() {
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

// poll is [testbin.Poll] every [proccluster.PollInterval]: it calls cond
// until it returns nil, ctx ends or d passes, and returns the last error.
func poll(ctx context.Context, d time.Duration, cond func() error) error {
	return testbin.Poll(ctx, d, proccluster.PollInterval, cond)
}

// node returns the torture node of a harness node (nil for nil).
func (c *Cluster) node(pn *proccluster.Node) *Node {
	if pn == nil {
		return nil
	}
	return c.Nodes[pn.Index]
}

// Stable checks once that among the running, unpaused nodes exactly one
// leads and every other one follows it in the same term
// ([proccluster.Cluster.Stable]). It returns the leader and the health of
// each.
func (c *Cluster) Stable() (*Node, map[string]httpapi.Health, error) {
	l, hs, err := c.pc.Stable()
	return c.node(l), hs, err
}

// WaitStable polls [Cluster.Stable] for up to d.
func (c *Cluster) WaitStable(ctx context.Context, d time.Duration) (*Node, error) {
	l, err := c.pc.WaitStable(ctx, d)
	return c.node(l), err
}

// WaitConverged polls until every node runs, one leads, and all report the
// same applied_index, unchanged across two polls; it returns that index.
func (c *Cluster) WaitConverged(ctx context.Context, d time.Duration) (uint64, error) {
	return c.pc.WaitConverged(ctx, d)
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
func (c *Cluster) Restart(n *Node) error { return n.Start() }
