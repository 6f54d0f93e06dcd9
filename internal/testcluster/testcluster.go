// Package testcluster runs a raftogram cluster of real nodes inside the test
// process: each node is a [server.Server] opened on loopback ports with its
// own data directory and fast Raft timings. Tests of other packages (the
// client, the CLI) drive it through the nodes' gRPC addresses and stop and
// restart nodes to inject failures.
//
// [Start] is the usual entry point: it ties the cluster to a test, fails the
// test on any error and stops every node when the test ends. [New] does the
// same without a testing.TB (for TestMain and examples); its methods that
// would fail a test panic instead.
package testcluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/raftogram/raftogram/cluster"
	"github.com/raftogram/raftogram/config"
	"github.com/raftogram/raftogram/internal/testbin"
	"github.com/raftogram/raftogram/server"
)

// Wait bounds of the convenience methods.
const (
	LeaderWait    = 20 * time.Second // a single agreed leader is elected
	ConvergeWait  = 20 * time.Second // every running node holds the same state
	pollInterval  = 20 * time.Millisecond
	shutdownLimit = 5 * time.Second
)

// Tune adjusts one node's configuration before it starts; it sees the
// harness's defaults (fast Raft timings, loopback addresses, data_dir in the
// cluster's directory) and may change anything.
type Tune func(*config.Config)

// Options configures [New].
type Options struct {
	// Nodes is the number of voting nodes (node1..nodeN); 0 means 3.
	Nodes int
	// Dir holds the nodes' data directories. Empty: a new temporary
	// directory that Close removes.
	Dir string
	// Tunes are applied to every node's config in order.
	Tunes []Tune
}

// Cluster is a running in-process cluster. Its methods may be called from
// several goroutines, except the ones that fail a test (Leader, Stop,
// Restart, Converged), which belong to the test's goroutine.
type Cluster struct {
	tb     testing.TB // nil when made by New
	dir    string
	ownDir bool

	mu      sync.Mutex
	cfgs    []config.Config
	servers []*server.Server // nil while a node is stopped
	logs    []*testbin.Buffer
}

// Start starts an n-node cluster for tb ([New] with n and tunes) and waits
// for a single agreed leader. The nodes' data lives in tb.TempDir(); every
// node is stopped in tb.Cleanup, and the nodes' logs are printed when the
// test failed. Any error fails the test.
func Start(tb testing.TB, n int, tunes ...Tune) *Cluster {
	tb.Helper()
	c, err := New(context.Background(), Options{Nodes: n, Dir: tb.TempDir(), Tunes: tunes})
	if err != nil {
		tb.Fatalf("testcluster: %v", err)
	}
	c.tb = tb
	tb.Cleanup(func() {
		if err := c.Close(); err != nil {
			tb.Errorf("testcluster: close: %v", err)
		}
		if tb.Failed() {
			for i := range c.cfgs {
				tb.Logf("--- log of %s ---\n%s", c.cfgs[i].NodeID, c.Log(i))
			}
		}
	})
	c.Leader()
	return c
}

// New binds loopback ports for every node, writes their configs and opens
// every node. It does not wait for a leader ([Cluster.WaitLeader]). It
// returns an error when a port cannot be bound, a tuned config is invalid or
// a node fails to open; the nodes already opened are then closed.
func New(ctx context.Context, opts Options) (*Cluster, error) {
	n := opts.Nodes
	if n == 0 {
		n = 3
	}
	c := &Cluster{dir: opts.Dir}
	if c.dir == "" {
		d, err := os.MkdirTemp("", "raftogram-testcluster-")
		if err != nil {
			return nil, fmt.Errorf("testcluster: %w", err)
		}
		c.dir, c.ownDir = d, true
	}
	listeners := make([]server.Listeners, n)
	var peers config.Peers
	for i := range n {
		var ls server.Listeners
		var err error
		for _, dst := range []*net.Listener{&ls.Raft, &ls.GRPC, &ls.HTTP} {
			if *dst, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
				break
			}
		}
		listeners[i] = ls
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			c.removeDir()
			return nil, fmt.Errorf("testcluster: listen: %w", err)
		}
		peers = append(peers, config.Peer{NodeID: fmt.Sprintf("node%d", i+1), RaftAddr: ls.Raft.Addr().String(), GRPCAddr: ls.GRPC.Addr().String()})
	}
	for i := range n {
		cfg := config.Default()
		cfg.NodeID = peers[i].NodeID
		cfg.RaftBindAddr = peers[i].RaftAddr
		cfg.GRPCBindAddr = peers[i].GRPCAddr
		cfg.HealthBindAddr = listeners[i].HTTP.Addr().String()
		cfg.DataDir = filepath.Join(c.dir, cfg.NodeID)
		cfg.Cluster.Peers = peers
		// Short enough for quick elections, long enough that a loaded
		// machine running the race detector does not depose leaders.
		cfg.Raft.HeartbeatTimeout = 500 * time.Millisecond
		cfg.Raft.ElectionTimeout = 500 * time.Millisecond
		cfg.Raft.LeaderLeaseTimeout = 300 * time.Millisecond
		cfg.Raft.CommitTimeout = 10 * time.Millisecond
		cfg.ShutdownTimeout = shutdownLimit
		cfg.LogLevel = "debug"
		for _, f := range opts.Tunes {
			f(&cfg)
		}
		if err := cfg.Validate(); err != nil {
			for _, l := range listeners {
				l.Close()
			}
			c.removeDir()
			return nil, fmt.Errorf("testcluster: %s: %w", cfg.NodeID, err)
		}
		c.cfgs = append(c.cfgs, cfg)
		c.logs = append(c.logs, &testbin.Buffer{})
		c.servers = append(c.servers, nil)
	}
	for i := range n {
		if err := c.open(ctx, i, listeners[i]); err != nil {
			for _, l := range listeners[i+1:] {
				l.Close()
			}
			return nil, errors.Join(err, c.Close())
		}
	}
	return c, nil
}

func (c *Cluster) open(ctx context.Context, i int, ls server.Listeners) error {
	log := slog.New(slog.NewTextHandler(c.logs[i], &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := server.Open(ctx, c.cfgs[i], ls, log)
	if err != nil {
		return fmt.Errorf("testcluster: open %s: %w", c.cfgs[i].NodeID, err)
	}
	c.mu.Lock()
	c.servers[i] = s
	c.mu.Unlock()
	return nil
}

func (c *Cluster) removeDir() {
	if c.ownDir {
		os.RemoveAll(c.dir)
	}
}

// Close stops every running node gracefully and removes the data directory
// when New created it. It returns the nodes' errors from stopping, joined.
// It is idempotent.
func (c *Cluster) Close() error {
	var errs []error
	for i := range c.cfgs {
		if c.Server(i) != nil {
			errs = append(errs, c.StopNode(i))
		}
	}
	c.removeDir()
	return errors.Join(errs...)
}

// Len returns the number of nodes, running or not.
func (c *Cluster) Len() int { return len(c.cfgs) }

// Addrs returns the gRPC address of every node, in node order (node1 first),
// whether it runs or not.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.cfgs))
	for i, cfg := range c.cfgs {
		out[i] = cfg.GRPCBindAddr
	}
	return out
}

// Addr returns node i's gRPC address.
func (c *Cluster) Addr(i int) string { return c.cfgs[i].GRPCBindAddr }

// NodeID returns node i's id (node1 for i = 0).
func (c *Cluster) NodeID(i int) string { return c.cfgs[i].NodeID }

// Config returns node i's configuration.
func (c *Cluster) Config(i int) config.Config { return c.cfgs[i] }

// Index returns the position of the node with the given id or gRPC address,
// or -1.
func (c *Cluster) Index(idOrAddr string) int {
	for i, cfg := range c.cfgs {
		if cfg.NodeID == idOrAddr || cfg.GRPCBindAddr == idOrAddr {
			return i
		}
	}
	return -1
}

// Server returns node i's server, or nil while it is stopped.
func (c *Cluster) Server(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.servers[i]
}

// Log returns everything node i has logged (all its runs).
func (c *Cluster) Log(i int) string { return c.logs[i].String() }

// StopNode stops node i gracefully ([server.Server.Close]); a leader hands
// over leadership first. It returns the node's error from stopping, or an
// error when it is not running.
func (c *Cluster) StopNode(i int) error {
	c.mu.Lock()
	s := c.servers[i]
	c.servers[i] = nil
	c.mu.Unlock()
	if s == nil {
		return fmt.Errorf("testcluster: %s is not running", c.cfgs[i].NodeID)
	}
	if err := s.Close(); err != nil {
		return fmt.Errorf("testcluster: stop %s: %w", c.cfgs[i].NodeID, err)
	}
	return nil
}

// StartNode starts stopped node i again on its addresses and data. It
// returns an error when it runs already, an address cannot be bound or the
// node fails to open.
func (c *Cluster) StartNode(ctx context.Context, i int) error {
	if c.Server(i) != nil {
		return fmt.Errorf("testcluster: %s is already running", c.cfgs[i].NodeID)
	}
	ls, err := server.Listen(c.cfgs[i])
	if err != nil {
		return fmt.Errorf("testcluster: %w", err)
	}
	return c.open(ctx, i, ls)
}

// statuses returns the status of every node, nil for a stopped one.
func (c *Cluster) statuses() []*cluster.Status {
	out := make([]*cluster.Status, len(c.cfgs))
	for i := range c.cfgs {
		if s := c.Server(i); s != nil {
			st := s.Node().Status()
			out[i] = &st
		}
	}
	return out
}

// AgreedLeader checks once that exactly one running node leads and every
// running node names it, and returns the leader's position. It returns an
// error describing the disagreement otherwise.
func (c *Cluster) AgreedLeader() (int, error) {
	sts := c.statuses()
	leader := -1
	for i, st := range sts {
		if st == nil || !st.IsLeader {
			continue
		}
		if leader >= 0 {
			return -1, fmt.Errorf("two leaders: %s and %s", c.cfgs[leader].NodeID, c.cfgs[i].NodeID)
		}
		leader = i
	}
	if leader < 0 {
		return -1, errors.New("no leader")
	}
	for i, st := range sts {
		if st != nil && st.LeaderID != c.cfgs[leader].NodeID {
			return -1, fmt.Errorf("%s names leader %q, not %s", c.cfgs[i].NodeID, st.LeaderID, c.cfgs[leader].NodeID)
		}
	}
	return leader, nil
}

// WaitLeader polls until [Cluster.AgreedLeader] holds or ctx ends, and
// returns the leader's position; on ctx's end it returns the last
// disagreement joined with ctx's error.
func (c *Cluster) WaitLeader(ctx context.Context) (int, error) {
	var leader int
	err := poll(ctx, func() error {
		var err error
		leader, err = c.AgreedLeader()
		return err
	})
	return leader, err
}

// WaitConverged polls until every running node has applied the same index
// and holds the same projection content, or ctx ends (the last difference
// joined with ctx's error).
func (c *Cluster) WaitConverged(ctx context.Context) error {
	return poll(ctx, func() error {
		var want string
		var wantIdx uint64
		first := ""
		for i := range c.cfgs {
			s := c.Server(i)
			if s == nil {
				continue
			}
			d, err := s.Store().Digest(ctx)
			if err != nil {
				return err
			}
			idx := s.Store().AppliedIndex()
			if first == "" {
				first, want, wantIdx = c.cfgs[i].NodeID, d, idx
				continue
			}
			if d != want || idx != wantIdx {
				return fmt.Errorf("%s at index %d differs from %s at index %d", c.cfgs[i].NodeID, idx, first, wantIdx)
			}
		}
		return nil
	})
}

func poll(ctx context.Context, cond func() error) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testcluster: %w: %w", err, ctx.Err())
		case <-t.C:
		}
	}
}

// fatal fails the cluster's test, or panics for a cluster made by New.
func (c *Cluster) fatal(err error) {
	if c.tb == nil {
		panic(err)
	}
	c.tb.Helper()
	c.tb.Fatal(err)
}

// Leader waits up to [LeaderWait] for a single agreed leader and returns
// its position; it fails the test (panics without one) otherwise.
func (c *Cluster) Leader() int {
	if c.tb != nil {
		c.tb.Helper()
	}
	ctx, cancel := context.WithTimeout(context.Background(), LeaderWait)
	defer cancel()
	l, err := c.WaitLeader(ctx)
	if err != nil {
		c.fatal(fmt.Errorf("a single agreed leader: %w", err))
	}
	return l
}

// Stop stops node i gracefully ([Cluster.StopNode]), failing the test on
// error.
func (c *Cluster) Stop(i int) {
	if c.tb != nil {
		c.tb.Helper()
	}
	if err := c.StopNode(i); err != nil {
		c.fatal(err)
	}
}

// Restart starts stopped node i again ([Cluster.StartNode]), failing the
// test on error.
func (c *Cluster) Restart(i int) {
	if c.tb != nil {
		c.tb.Helper()
	}
	if err := c.StartNode(context.Background(), i); err != nil {
		c.fatal(err)
	}
}

// Converged waits up to [ConvergeWait] until every running node holds the
// same state ([Cluster.WaitConverged]), failing the test otherwise.
func (c *Cluster) Converged() {
	if c.tb != nil {
		c.tb.Helper()
	}
	ctx, cancel := context.WithTimeout(context.Background(), ConvergeWait)
	defer cancel()
	if err := c.WaitConverged(ctx); err != nil {
		c.fatal(fmt.Errorf("converged projections: %w", err))
	}
}
