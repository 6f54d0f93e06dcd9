// Package cluster owns the node's hashicorp/raft instance: its log and
// stable store (raft-boltdb), snapshot store and TCP transport, static
// bootstrap, writes through raft.Apply, linearizable read barriers, and the
// node's view of who leads.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/raftogram/raftogram/domain"
	"go.etcd.io/bbolt"
)

// File and directory names inside a node's data directory.
const (
	LogFileName     = "raft.db"   // raft-boltdb: the Raft log and stable store
	SnapshotDirName = "snapshots" // raft's file snapshot store
	retainSnapshots = 2
)

// Peer is one voting member of the static cluster.
type Peer struct {
	ID       string
	RaftAddr string // as other nodes dial it
	GRPCAddr string // as clients dial it
}

// Config configures a Node. Every duration and count must be valid for
// hashicorp/raft (see raft.ValidateConfig).
type Config struct {
	NodeID   string
	Peers    []Peer
	DataDir  string
	Listener net.Listener // bound Raft listener; the Node closes it
	// TLS, when set, makes the Raft transport mutual TLS between the
	// members of Peers only.
	TLS PeerTLS

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	MaxAppendEntries   int
	SnapshotThreshold  uint64
	SnapshotInterval   time.Duration
	TrailingLogs       uint64
	ApplyTimeout       time.Duration

	Logger *slog.Logger
	// Observer receives group-commit measurements; nil records none.
	Observer Observer
	// MaxLogCacheBytes bounds the recent log entries kept in memory
	// (config limits.max_log_cache_bytes); 64 MiB when 0.
	MaxLogCacheBytes int
}

// FSM is the state machine a Node drives (a *fsm.FSM).
type FSM interface {
	raft.BatchingFSM
	AppliedIndex() uint64
	// CommittedIndex is the last index committed to the FSM's storage (it
	// trails AppliedIndex while commits are deferred).
	CommittedIndex() uint64
	WaitApplied(ctx context.Context, index uint64) error
}

// Node is this process's member of the Raft cluster.
type Node struct {
	cfg   Config
	self  Peer
	peers map[raft.ServerID]Peer
	log   *slog.Logger

	raft      *raft.Raft
	raftPtr   atomic.Pointer[raft.Raft] // raft, for goroutines raft starts before NewRaft returns
	fsm       FSM
	store     *raftboltdb.BoltStore // the log and stable store
	logs      *logCache             // the log through a cache of recent entries
	trans     *raft.NetworkTransport
	stream    *streamLayer // the transport's, drained before the stores close
	observer  *raft.Observer
	compactMu sync.Mutex // one CompactLog at a time (compact.go)

	readyTerm atomic.Uint64 // the term whose first barrier has been applied
	barrierMu sync.Mutex
	lastTick  atomic.Int64 // UnixNano of the stall watcher's latest tick
	ledUntil  atomic.Int64 // UnixNano when this node last stopped leading

	leaderChanges atomic.Uint64 // leaders this node learned of (LeaderChanges)
	inflight      atomic.Int64  // group-commit entries in raft (EntriesInFlight)

	stopping atomic.Bool // set when Close starts

	liveMu sync.Mutex
	live   *liveRound // Liveness's latest probe of raft's main loop

	watchMu sync.Mutex
	watch   chan struct{} // closed on every role or leader change

	proposals   chan *proposal   // Apply → runBatcher
	reads       chan *readWaiter // ReadBarrier → runReads
	readRounds  atomic.Uint64    // confirmation rounds run
	batcherDone chan struct{}    // closed when runBatcher returns

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Open starts the Raft member: it opens the stores under cfg.DataDir,
// bootstraps the static cluster when the log is empty (a node with existing
// state never bootstraps again), and starts raft. It skips restoring the
// newest snapshot into the FSM when the FSM's projection already holds that
// index. It returns an error if a store cannot be opened or raft refuses the
// configuration.
func Open(ctx context.Context, cfg Config, fsm FSM) (*Node, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Node{cfg: cfg, fsm: fsm, log: log, peers: map[raft.ServerID]Peer{}, watch: make(chan struct{}), stop: make(chan struct{}),
		proposals: make(chan *proposal, maxBatchEvents), reads: make(chan *readWaiter, 1024), batcherDone: make(chan struct{})}
	var servers []raft.Server
	for _, p := range cfg.Peers {
		n.peers[raft.ServerID(p.ID)] = p
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.RaftAddr)})
	}
	self, ok := n.peers[raft.ServerID(cfg.NodeID)]
	if !ok {
		return nil, fmt.Errorf("cluster: node %q is not among the peers", cfg.NodeID)
	}
	n.self = self
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster: create data dir: %w", err)
	}
	if err := n.open(ctx, servers); err != nil {
		n.closeStores()
		return nil, err
	}
	return n, nil
}

func (n *Node) open(ctx context.Context, servers []raft.Server) error {
	cfg := n.cfg
	hlog := newHCLogger(n.log, n.expectedRaftError)
	if err := checkLogFile(filepath.Join(cfg.DataDir, LogFileName)); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	store, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(cfg.DataDir, LogFileName),
		BoltOptions: &bbolt.Options{Timeout: 5 * time.Second, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType},
	})
	if err != nil {
		return fmt.Errorf("cluster: open raft log %s: %w", filepath.Join(cfg.DataDir, LogFileName), err)
	}
	n.store = store
	// Recent entries are served from memory: the leader reads each one back
	// to replicate it, every node to apply it, and reads to find the last
	// applied entry.
	budget := cfg.MaxLogCacheBytes
	if budget <= 0 {
		budget = defaultLogCacheBytes
	}
	n.logs = newLogCache(store, budget)
	if cfg.Observer != nil {
		n.logs.observe = func(d time.Duration) {
			if n.leads() {
				n.observeStage(StageLogAppend, d)
			} else {
				n.observeStage(StageFollowerAppend, d)
			}
		}
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, retainSnapshots, hlog)
	if err != nil {
		return fmt.Errorf("cluster: open snapshot store: %w", err)
	}
	n.trans, n.stream, err = newTransport(cfg.Listener, n.self.RaftAddr, cfg.Peers, cfg.TLS, n.log, &raft.NetworkTransportConfig{
		MaxPool: 3, Timeout: 10 * time.Second, Logger: hlog,
	})
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = hlog
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.MaxAppendEntries = cfg.MaxAppendEntries
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	rc.BatchApplyCh = true
	rc.NoLegacyTelemetry = true
	rc.NoSnapshotRestoreOnStart, err = projectionHoldsSnapshot(snaps, n.fsm.AppliedIndex())
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if err := raft.ValidateConfig(rc); err != nil {
		return fmt.Errorf("cluster: raft config: %w", err)
	}

	existing, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		return fmt.Errorf("cluster: inspect raft state: %w", err)
	}
	if !existing {
		err := raft.BootstrapCluster(rc, store, store, snaps, n.trans, raft.Configuration{Servers: servers})
		if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return fmt.Errorf("cluster: bootstrap: %w", err)
		}
		n.log.Info("bootstrapped static cluster", "peers", len(servers))
	}

	obs := make(chan raft.Observation, 64)
	n.observer = raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.RaftState, raft.LeaderObservation:
			return true
		}
		return false
	})
	r, err := raft.NewRaft(rc, timedFSM{FSM: n.fsm, n: n}, n.logs, store, snaps, transport{NetworkTransport: n.trans, observe: n.observeReplicate})
	if err != nil {
		return fmt.Errorf("cluster: start raft: %w", err)
	}
	n.raft = r
	n.raftPtr.Store(r)
	r.RegisterObserver(n.observer)
	n.lastTick.Store(time.Now().UnixNano())
	n.wg.Add(4)
	go n.observe(obs)
	go n.runBatcher()
	go n.runReads()
	go n.watchStalls()
	n.log.Info("raft started", "raft_addr", n.self.RaftAddr,
		"applied_index", n.fsm.AppliedIndex(), "skip_snapshot_restore", rc.NoSnapshotRestoreOnStart)
	return nil
}

// projectionHoldsSnapshot reports whether the projection is at or past the
// newest snapshot, so raft need not restore it on start.
func projectionHoldsSnapshot(snaps raft.SnapshotStore, applied uint64) (bool, error) {
	list, err := snaps.List()
	if err != nil {
		return false, fmt.Errorf("list snapshots: %w", err)
	}
	return len(list) > 0 && applied >= list[0].Index, nil
}

// observe closes the watch channel on every role or leader change and runs
// the first barrier of a new leadership term eagerly.
func (n *Node) observe(obs chan raft.Observation) {
	defer n.wg.Done()
	wasLeader := false
	for {
		select {
		case <-n.stop:
			return
		case o := <-obs:
			switch d := o.Data.(type) {
			case raft.RaftState:
				n.log.Info("raft role changed", "role", strings.ToLower(d.String()), "term", n.raft.CurrentTerm())
				if wasLeader && d != raft.Leader {
					n.ledUntil.Store(time.Now().UnixNano())
				}
				wasLeader = d == raft.Leader
			case raft.LeaderObservation:
				if d.LeaderID != "" {
					n.leaderChanges.Add(1)
				}
				n.log.Info("raft leader changed", "leader_id", string(d.LeaderID), "leader_raft_addr", string(d.LeaderAddr))
			}
			if st, ok := o.Data.(raft.RaftState); ok && st == raft.Leader {
				term := n.raft.CurrentTerm()
				n.wg.Add(1)
				go func() {
					defer n.wg.Done()
					if err := n.ensureReady(term); err != nil {
						n.log.Debug("leadership barrier", "term", term, "error", err)
					}
				}()
			}
			n.watchMu.Lock()
			close(n.watch)
			n.watch = make(chan struct{})
			n.watchMu.Unlock()
		}
	}
}

// LeaderChanges returns how many times this node learned of a leader (a
// new one, or one known again after a spell without): its first election
// included.
func (n *Node) LeaderChanges() uint64 { return n.leaderChanges.Load() }

// Watch returns a channel that is closed at the next change of this node's
// role or of the known leader.
func (n *Node) Watch() <-chan struct{} {
	n.watchMu.Lock()
	defer n.watchMu.Unlock()
	return n.watch
}

// Close hands leadership to another voter when this node still leads
// ([Node.HandOff], bounded by ctx), then shuts raft down and closes its
// stores and transport. It is idempotent and returns the first error met
// while stopping (a failed hand-off is logged, not returned: the others
// elect a leader after their heartbeat timeout).
func (n *Node) Close(ctx context.Context) error {
	n.closeOnce.Do(func() {
		n.stopping.Store(true)
		if err := n.HandOff(ctx); err != nil {
			n.log.Warn("leadership transfer before shutdown failed", "error", err)
		}
		n.raft.DeregisterObserver(n.observer)
		close(n.stop)
		err := n.raft.Shutdown().Error()
		n.wg.Wait()
		if n.stream != nil && !n.stream.drain(5*time.Second) {
			n.log.Warn("raft connection handlers still running 5s after shutdown; closing the stores anyway")
		}
		n.closeErr = errors.Join(err, n.closeStores())
	})
	return n.closeErr
}

// handOffPause is the least pause between two leadership transfer
// attempts; handOffLeaderWait, in election timeouts, bounds the wait for
// the new leader after a transfer.
const (
	handOffPause      = 20 * time.Millisecond
	handOffLeaderWait = 5
)

// awaitNotLeader waits until this node does not lead or d passes; it
// returns ctx's error when ctx ends first.
func (n *Node) awaitNotLeader(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		watch := n.Watch()
		if n.raft.State() != raft.Leader {
			return nil
		}
		select {
		case <-watch:
		case <-t.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// HandOff prepares a graceful stop: when this node leads and has peers, it
// hands leadership to another voter and waits until it has heard from the
// new leader, so that every answer it gives from then on (NotLeader) names
// the leader and clients move there at once. The first attempt lets raft
// pick the most up-to-date follower; a failed attempt (raft's TimeoutNow
// may go out on a pooled connection to a peer that restarted since, and
// fail with EOF; raft drops that connection) is retried against each other
// voter in turn, until one succeeds or ctx ends. It returns nil when this
// node does not lead or the hand-off completed, else an error wrapping the
// last attempt's error and ctx's. After a failed attempt it gives
// leadership an election timeout to move before the next; it waits for
// the new leader at most five election timeouts.
func (n *Node) HandOff(ctx context.Context) error {
	n.stopping.Store(true) // raft's hand-over lines are not errors from here on
	if n.raft.State() != raft.Leader || len(n.peers) < 2 {
		return nil
	}
	start := time.Now()
	targets := n.handOffTargets()
	var lastErr error
	for attempt := 0; ; attempt++ {
		if n.raft.State() != raft.Leader {
			break
		}
		var f raft.Future
		target := "most up-to-date follower"
		if attempt == 0 {
			f = n.raft.LeadershipTransfer()
		} else {
			p := targets[(attempt-1)%len(targets)]
			target = p.ID
			f = n.raft.LeadershipTransferToServer(raft.ServerID(p.ID), raft.ServerAddress(p.RaftAddr))
		}
		err := awaitFuture(ctx, f)
		if err == nil || errors.Is(err, raft.ErrNotLeader) {
			break
		}
		lastErr = fmt.Errorf("transfer to %s: %w", target, err)
		n.log.Info("leadership transfer attempt failed", "attempt", attempt+1, "target", target, "error", err)
		// A timed-out attempt may still succeed (its TimeoutNow may be on
		// its way, or the target campaigning): give leadership an election
		// timeout to move before another attempt, which would race it.
		if err := n.awaitNotLeader(ctx, n.cfg.ElectionTimeout+handOffPause); err != nil {
			return fmt.Errorf("cluster: hand-off: %w (last attempt: %w)", err, lastErr)
		}
	}
	// Wait until the new leader has reached this node, so NotLeader
	// answers name it: within an election and a heartbeat when the
	// transfer worked (a few election timeouts on a loaded host), never
	// when its target stopped too.
	ctx, cancel := context.WithTimeout(ctx, handOffLeaderWait*n.cfg.ElectionTimeout)
	defer cancel()
	for {
		watch := n.Watch()
		if _, id := n.raft.LeaderWithID(); id != "" && id != raft.ServerID(n.cfg.NodeID) {
			n.log.Info("leadership transferred before shutdown", "leader_id", string(id), "took", time.Since(start).Round(time.Millisecond))
			return nil
		}
		select {
		case <-watch:
		case <-ctx.Done():
			err := fmt.Errorf("cluster: hand-off: new leader not heard from: %w", ctx.Err())
			if lastErr != nil {
				err = fmt.Errorf("%w (last attempt: %w)", err, lastErr)
			}
			return err
		}
	}
}

// handOffTargets returns the other voters, ordered by id.
func (n *Node) handOffTargets() []Peer {
	var out []Peer
	for _, p := range n.cfg.Peers {
		if p.ID != n.cfg.NodeID {
			out = append(out, p)
		}
	}
	return out
}

// awaitFuture returns f's error, or ctx's once it ends first (the future
// still resolves inside raft).
func awaitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (n *Node) closeStores() error {
	var errs []error
	if n.trans != nil {
		errs = append(errs, n.trans.Close())
	} else if n.cfg.Listener != nil {
		n.cfg.Listener.Close()
	}
	if n.store != nil {
		errs = append(errs, n.store.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cluster: close: %w", err)
	}
	return nil
}

// TransferLeadership asks raft to hand leadership to the most up-to-date
// follower and waits for the outcome. It returns a *domain.NotLeaderError
// when this node does not lead, or raft's error when the transfer failed.
func (n *Node) TransferLeadership() error {
	if n.raft.State() != raft.Leader {
		return n.NotLeader()
	}
	if err := n.raft.LeadershipTransfer().Error(); err != nil {
		return fmt.Errorf("cluster: leadership transfer: %w", err)
	}
	return nil
}

// Status is a point-in-time view of this node, as /health reports it.
type Status struct {
	NodeID         string
	Role           string // leader, follower, candidate or shutdown
	IsLeader       bool
	LeaderID       string
	LeaderRaftAddr string
	LeaderGRPCAddr string
	Term           uint64
	CommitIndex    uint64
	AppliedIndex   uint64 // last index applied to the projection
	CommittedIndex uint64 // last index committed to the projection's file
	LastLogIndex   uint64
	SnapshotIndex  uint64 // index of the newest snapshot this node holds
}

// Status returns this node's role, the leader it knows and its indexes.
func (n *Node) Status() Status {
	st := Status{
		NodeID:         n.cfg.NodeID,
		Role:           strings.ToLower(n.raft.State().String()),
		Term:           n.raft.CurrentTerm(),
		CommitIndex:    n.raft.CommitIndex(),
		AppliedIndex:   n.fsm.AppliedIndex(),
		CommittedIndex: n.fsm.CommittedIndex(),
		LastLogIndex:   n.raft.LastIndex(),
	}
	if idx, err := strconv.ParseUint(n.raft.Stats()["last_snapshot_index"], 10, 64); err == nil {
		st.SnapshotIndex = idx
	}
	st.IsLeader = st.Role == "leader"
	addr, id := n.raft.LeaderWithID()
	if id != "" {
		st.LeaderID = string(id)
		st.LeaderRaftAddr = string(addr)
		st.LeaderGRPCAddr = n.peers[id].GRPCAddr
	}
	return st
}

// TransferLeadershipTo hands leadership to the voter id, or to the most
// up-to-date follower when id is empty, and waits for the outcome. It
// returns nil at once when id names this node and it leads; a
// *domain.NotLeaderError when this node does not lead; an EINVALID
// *domain.Error when id is not a voter of the cluster; an EUNAVAILABLE one
// when raft could not complete the transfer.
func (n *Node) TransferLeadershipTo(id string) error {
	if n.raft.State() != raft.Leader {
		return n.NotLeader()
	}
	var f raft.Future
	switch p, ok := n.peers[raft.ServerID(id)]; {
	case id == "":
		f = n.raft.LeadershipTransfer()
	case !ok:
		return domain.Errorf(domain.EINVALID, "node %q is not a member of the cluster", id)
	case id == n.cfg.NodeID:
		return nil
	default:
		f = n.raft.LeadershipTransferToServer(raft.ServerID(id), raft.ServerAddress(p.RaftAddr))
	}
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return n.NotLeader()
		}
		return domain.Errorf(domain.EUNAVAILABLE, "leadership transfer failed: %v; retry", err)
	}
	return nil
}

// NodeID returns this node's id.
func (n *Node) NodeID() string { return n.cfg.NodeID }

// LeaderCommitIndex returns the leader's commit index as this node knows it
// (raft's commit index, which followers learn from the leader), or 0 while
// no leader is known.
func (n *Node) LeaderCommitIndex() uint64 {
	if _, id := n.raft.LeaderWithID(); id == "" {
		return 0
	}
	return n.raft.CommitIndex()
}

// LastContact returns when this node last heard from a leader: zero while
// it leads and when it never has.
func (n *Node) LastContact() time.Time {
	if n.raft.State() == raft.Leader {
		return time.Time{}
	}
	return n.raft.LastContact()
}

// LastLeaderContact returns when this node last knew itself connected to a
// leader: now while it leads, otherwise the later of raft's last contact
// from a leader and the moment this node stopped leading (zero when
// neither happened).
func (n *Node) LastLeaderContact() time.Time {
	if n.raft.State() == raft.Leader {
		return time.Now()
	}
	t := n.raft.LastContact()
	if led := n.ledUntil.Load(); led != 0 && time.Unix(0, led).After(t) {
		t = time.Unix(0, led)
	}
	return t
}

// IsLeader reports whether this node currently believes it leads in term.
func (n *Node) IsLeader(term uint64) bool {
	return n.raft.State() == raft.Leader && n.raft.CurrentTerm() == term
}

// Term returns the current Raft term.
func (n *Node) Term() uint64 { return n.raft.CurrentTerm() }

// NotLeader returns the error for a request this node cannot serve because
// it does not lead, naming the leader when one is known.
func (n *Node) NotLeader() *domain.NotLeaderError {
	_, id := n.raft.LeaderWithID()
	if id == "" || id == raft.ServerID(n.cfg.NodeID) {
		return &domain.NotLeaderError{}
	}
	return &domain.NotLeaderError{LeaderID: string(id), LeaderGRPCAddr: n.peers[id].GRPCAddr}
}
