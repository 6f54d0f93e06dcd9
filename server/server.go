// Package server assembles one raftogram node from its configuration: the
// SQLite projection, the FSM, the Raft member, the gRPC Messenger API and
// the HTTP health endpoint, and stops them in order.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	peerv1 "github.com/raftogram/raftogram/api/proto/raftogram/peer/v1"
	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/auth"
	"github.com/raftogram/raftogram/cluster"
	"github.com/raftogram/raftogram/config"
	"github.com/raftogram/raftogram/domain"
	"github.com/raftogram/raftogram/fanout"
	"github.com/raftogram/raftogram/fsm"
	"github.com/raftogram/raftogram/grpcapi"
	"github.com/raftogram/raftogram/httpapi"
	"github.com/raftogram/raftogram/internal/certs"
	"github.com/raftogram/raftogram/internal/diskspace"
	"github.com/raftogram/raftogram/internal/window"
	"github.com/raftogram/raftogram/metrics"
	"github.com/raftogram/raftogram/projection"
	"github.com/raftogram/raftogram/retention"
	"golang.org/x/net/netutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"
)

// TmpDirName is the directory under data_dir for snapshot copies in flight.
const TmpDirName = "tmp"

// Listeners are the bound sockets a node serves on.
type Listeners struct {
	Raft, GRPC, HTTP net.Listener
}

// Listen binds the three addresses of cfg. It returns an error naming the
// address that could not be bound, after closing the ones that were.
func Listen(cfg config.Config) (Listeners, error) {
	var ls Listeners
	var err error
	for _, b := range []struct {
		dst  *net.Listener
		addr string
		what string
	}{{&ls.Raft, cfg.RaftBindAddr, "raft_bind_addr"}, {&ls.GRPC, cfg.GRPCBindAddr, "grpc_bind_addr"}, {&ls.HTTP, cfg.HealthBindAddr, "health_bind_addr"}} {
		if *b.dst, err = net.Listen("tcp", b.addr); err != nil {
			ls.Close()
			return Listeners{}, fmt.Errorf("listen on %s %s: %w", b.what, b.addr, err)
		}
	}
	return ls, nil
}

// Close closes every non-nil listener.
func (ls Listeners) Close() {
	for _, l := range []net.Listener{ls.Raft, ls.GRPC, ls.HTTP} {
		if l != nil {
			l.Close()
		}
	}
}

// Server is one running raftogram node.
type Server struct {
	cfg    config.Config
	log    *slog.Logger
	ls     Listeners
	store  *projection.Store
	node   *cluster.Node
	api    *grpcapi.Server
	admin  *grpcapi.Admin
	grpc   *grpc.Server
	http   *http.Server
	certs  *certs.Store        // nil without tls
	policy *auth.Policy        // nil without auth
	authn  *auth.Authenticator // nil without auth

	stopWatch context.CancelFunc

	health *grpcapi.Health      // grpc.health.v1.Health
	space  *grpcapi.SpacePoller // the free-space alarm's measurements and peer polls
	peers  *grpcapi.Peers       // the one pool of gRPC connections to the other nodes

	serveErr chan error
	wg       sync.WaitGroup
	stopOnce sync.Once
	stopErr  error

	stopWindow context.CancelFunc // stops the status window's sampler
}

// Option adjusts how Open builds a node.
type Option func(*options)

type options struct{ version string }

// WithVersion sets the build version the node reports (Admin.GetNodeStatus).
func WithVersion(v string) Option { return func(o *options) { o.version = v } }

// Open opens the projection and starts the Raft member and both servers on
// ls. The gRPC server serves the Messenger, Admin and Peer services,
// grpc.health.v1.Health, and server reflection when configured. The
// listeners belong to the Server from then on. It returns an error if any
// part fails to start, after stopping the parts that started.
func Open(ctx context.Context, cfg config.Config, ls Listeners, log *slog.Logger, opts ...Option) (*Server, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	log = log.With("node_id", cfg.NodeID)
	s := &Server{cfg: cfg, log: log, ls: ls, serveErr: make(chan error, 2)}
	if err := checkWritable(cfg.DataDir); err != nil {
		ls.Close()
		return nil, err
	}
	warnIfExposed(cfg, log)
	var err error
	if s.certs, err = loadTLS(cfg, log); err != nil {
		ls.Close()
		return nil, err
	}
	var guard []grpc.ServerOption
	if s.policy, s.authn, guard, err = loadAuth(cfg, s.certs, log); err != nil {
		ls.Close()
		return nil, err
	}
	m, err := metrics.New()
	if err != nil {
		ls.Close()
		return nil, err
	}
	store, err := openProjection(ctx, filepath.Join(cfg.DataDir, projection.FileName), log, m)
	if err != nil {
		ls.Close()
		return nil, err
	}
	s.store = store
	hub := fanout.New(grpcapi.EncodeMessage, fanout.WithObserver(m),
		fanout.WithMaxBacklog(int64(cfg.Limits.MaxSubscriberBacklogBytes)), fanout.WithMaxWindowBytes(int64(cfg.Limits.MaxFanoutWindowBytes)),
		fanout.WithCoalesce(cfg.FanoutCoalesce))
	f, err := fsm.New(store, hub, filepath.Join(cfg.DataDir, TmpDirName), log)
	if err != nil {
		ls.Close()
		store.Close()
		return nil, err
	}
	peers := make([]cluster.Peer, len(cfg.Cluster.Peers))
	for i, p := range cfg.Cluster.Peers {
		peers[i] = cluster.Peer{ID: p.NodeID, RaftAddr: p.RaftAddr, GRPCAddr: p.GRPCAddr}
	}
	rc := cfg.Raft
	s.node, err = cluster.Open(ctx, cluster.Config{
		NodeID: cfg.NodeID, Peers: peers, DataDir: cfg.DataDir, Listener: netutil.LimitListener(ls.Raft, raftMaxConnections),
		HeartbeatTimeout: rc.HeartbeatTimeout, ElectionTimeout: rc.ElectionTimeout,
		LeaderLeaseTimeout: rc.LeaderLeaseTimeout, CommitTimeout: rc.CommitTimeout,
		MaxAppendEntries: rc.MaxAppendEntries, SnapshotThreshold: rc.SnapshotThreshold,
		SnapshotInterval: rc.SnapshotInterval, TrailingLogs: rc.TrailingLogs, ApplyTimeout: rc.ApplyTimeout,
		Logger: log, TLS: peerTLS(s.certs), Observer: m, MaxLogCacheBytes: cfg.Limits.MaxLogCacheBytes,
	}, f)
	if err != nil {
		ls.GRPC.Close()
		ls.HTTP.Close()
		store.Close()
		return nil, err
	}
	alarm := diskspace.New(diskspace.Options{NodeID: cfg.NodeID, Dir: cfg.DataDir, MinFree: cfg.MinFreeBytes})
	// One pool of gRPC connections to the other nodes for forwarding, read
	// indexes, the cluster view and the free-space polls; closed last.
	s.peers = grpcapi.NewPeers(peerCredentials(cfg, s.certs), peerRoutes(cfg))
	s.space = grpcapi.StartSpacePoller(alarm, s.node, cfg.NodeID, spacePeers(cfg), cfg.ForwardWrites, s.peers, log)
	apiOpts := grpcapi.Options{
		MaxPayloadBytes: cfg.Limits.MaxPayloadBytes, Logger: log, Version: o.version,
		ForwardWrites: cfg.ForwardWrites, StreamHeartbeat: cfg.FollowerStreamHeartbeat, StreamCutoff: cfg.FollowerStreamCutoff,
		Peers:                     s.peers,
		Space:                     alarm,
		MaxSubscriberBacklogBytes: int64(cfg.Limits.MaxSubscriberBacklogBytes),
		DefaultRetention: domain.Retention{MaxMessages: cfg.Retention.MaxMessages, MaxAge: cfg.Retention.MaxAge,
			MaxBytes: cfg.Retention.MaxBytes},
		MaxPublishInflight:      cfg.Limits.MaxPublishInflight,
		MaxPublishInflightBytes: cfg.Limits.MaxPublishInflightBytes,
	}
	s.api = grpcapi.New(s.node, store, hub, apiOpts)
	// Interceptors, outermost first: metrics, access log and panic recovery
	// (they see every call), the decode guard, the budgets, then auth next
	// to the handler.
	grpcOpts := grpcapi.Interceptors(grpcapi.InterceptorOptions{Logger: log, AccessLogSampleRate: cfg.AccessLogSampleRate, Metrics: m})
	grpcOpts = append(grpcOpts, grpcapi.ServerOptions(cfg.Limits.MaxPayloadBytes)...)
	grpcOpts = append(grpcOpts, budgets(cfg.Limits).ServerOptions()...)
	grpcOpts = append(grpcOpts, grpcTLSOption(cfg, s.certs)...)
	s.grpc = grpc.NewServer(append(grpcOpts, guard...)...)
	raftogramv1.RegisterMessengerServer(s.grpc, s.api)
	// The status window (writes/s, p99, subscribers, leader changes over the
	// last minute) samples the node's Prometheus registry; the metrics
	// package registers the node's collectors in this same registry.
	reg := m.Registry()
	recent := window.New(reg, windowInterval, time.Minute, log)
	s.admin = grpcapi.NewAdmin(s.node, store, recent, apiOpts)
	raftogramv1.RegisterAdminServer(s.grpc, s.admin)
	peerv1.RegisterPeerServer(s.grpc, grpcapi.NewPeer(s.node, apiOpts))
	s.health = grpcapi.NewHealth(s.node, apiOpts)
	s.health.Register(s.grpc)
	if cfg.GRPCReflection {
		reflection.Register(s.grpc)
	}
	m.InitializeRPCs(s.grpc)
	m.Watch(metrics.Sources{Raft: s.node, Projection: store, Fanout: hub, DataDir: cfg.DataDir})
	s.http = &http.Server{Handler: httpapi.Handler(s.node, httpapi.Options{
		Pprof: cfg.DebugPprof, Cluster: s.admin, Metrics: m.Handler(),
		Live: s.node, Projection: store, Space: alarm, ReadyMaxLag: cfg.ReadyzMaxLag,
	}), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: cfg.Limits.IdleConnectionTimeout, MaxHeaderBytes: httpMaxHeaderBytes}

	var wctx context.Context
	wctx, s.stopWindow = context.WithCancel(context.Background())
	expirer := retention.New(s.node, store, retention.Options{Interval: cfg.Retention.ExpireInterval,
		DedupHorizon: cfg.Retention.DedupHorizon, Logger: log})
	s.wg.Add(4)
	go func() {
		defer s.wg.Done()
		recent.Run(wctx)
	}()
	go func() {
		defer s.wg.Done()
		expirer.Run(wctx)
	}()
	go func() {
		defer s.wg.Done()
		if err := s.grpc.Serve(netutil.LimitListener(ls.GRPC, cfg.Limits.MaxConnections)); err != nil {
			s.serveErr <- fmt.Errorf("grpc server: %w", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		if err := s.http.Serve(healthListener(cfg, s.certs, ls.HTTP)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.serveErr <- fmt.Errorf("health server: %w", err)
		}
	}()
	var watchCtx context.Context
	watchCtx, s.stopWatch = context.WithCancel(context.Background())
	s.watchFiles(watchCtx)
	log.Info("node serving", "grpc_addr", ls.GRPC.Addr().String(), "health_addr", ls.HTTP.Addr().String(),
		"raft_addr", ls.Raft.Addr().String(), "data_dir", cfg.DataDir)
	return s, nil
}

// windowInterval is how often the status window samples the registry.
const windowInterval = 5 * time.Second

// peerRoutes maps the gRPC address of every peer that has a distinct
// peer_grpc_addr to it: what this node dials to reach that peer.
func peerRoutes(cfg config.Config) map[string]string {
	routes := map[string]string{}
	for _, p := range cfg.Cluster.Peers {
		if p.PeerDialAddr() != p.GRPCAddr {
			routes[p.GRPCAddr] = p.PeerDialAddr()
		}
	}
	return routes
}

// spacePeers is every peer's id and gRPC address, for the free-space polls.
func spacePeers(cfg config.Config) []grpcapi.PeerAddr {
	out := make([]grpcapi.PeerAddr, len(cfg.Cluster.Peers))
	for i, p := range cfg.Cluster.Peers {
		out[i] = grpcapi.PeerAddr{ID: p.NodeID, GRPCAddr: p.GRPCAddr}
	}
	return out
}

// projectionCommitDelay is how long applied entries may wait in the
// projection's open transaction before a commit (projection.Options). Reads
// that need them commit at once, so it bounds only how much work a crash
// makes raft replay, how stale a sqlite3 look at the file may be, and how
// many batches share one commit's page writes (each commit holds Apply up
// while it writes them). 250 ms against 100 ms: +10 % writes/s, -25 % p99
// and -10 % CPU per write at 64 clients × 64 channels (docs/performance.md).
const projectionCommitDelay = 250 * time.Millisecond

// openProjection opens the node's projection. A corrupt one is moved aside
// and replaced by an empty one: the projection is derived state, and raft
// rebuilds it from the newest snapshot and the log on start.
func openProjection(ctx context.Context, path string, log *slog.Logger, obs projection.Observer) (*projection.Store, error) {
	opts := projection.Options{Logger: log, CommitDelay: projectionCommitDelay, Observer: obs}
	store, err := projection.Open(ctx, path, opts)
	if !errors.Is(err, projection.ErrCorrupt) {
		return store, err
	}
	moved, qerr := projection.Quarantine(path, time.Now().UTC().Format("20060102T150405Z"))
	if qerr != nil {
		return nil, errors.Join(err, qerr)
	}
	log.Error("projection failed its integrity check; moved aside, rebuilding from the Raft snapshot and log",
		"error", err, "moved_to", moved)
	return projection.Open(ctx, path, opts)
}

// checkWritable creates dir if needed and proves this process can create
// files in it, so a wrong volume owner fails with a message that says so
// rather than as an obscure SQLite error.
func checkWritable(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("data_dir %s cannot be created (running as uid %d): %w", dir, os.Getuid(), err)
	}
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("data_dir %s is not writable (running as uid %d): %w", dir, os.Getuid(), err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// Node returns the node's Raft member.
func (s *Server) Node() *cluster.Node { return s.node }

// Store returns the node's projection.
func (s *Server) Store() *projection.Store { return s.store }

// Run blocks until ctx ends or a server fails, then stops the node. It
// returns the serving error, if any, joined with any error from stopping.
func (s *Server) Run(ctx context.Context) error {
	var err error
	select {
	case <-ctx.Done():
	case err = <-s.serveErr:
		s.log.Error("server failed; stopping", "error", err)
	}
	return errors.Join(err, s.Close())
}

// Close stops the node in order: Subscribe streams end with Unavailable,
// a leader hands over leadership while it still answers (so its NotLeader
// answers send clients to the new leader at once), in-flight calls finish
// (bounded by shutdown_timeout), raft stops, then the health endpoint and
// the projection close. It is idempotent.
func (s *Server) Close() error {
	s.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
		defer cancel()
		s.log.Info("shutting down")
		s.stopWatch()
		s.health.Shutdown()
		s.api.Shutdown()
		if err := s.node.HandOff(ctx); err != nil {
			s.log.Warn("leadership transfer before shutdown failed", "error", err)
		}
		stopped := make(chan struct{})
		go func() { s.grpc.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-ctx.Done():
			s.log.Warn("in-flight calls outlived shutdown_timeout; closing them")
			s.grpc.Stop()
			<-stopped
		}
		var errs []error
		errs = append(errs, s.api.Close(), s.space.Close())
		s.stopWindow()
		errs = append(errs, s.node.Close(ctx))
		if err := s.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("health server shutdown: %w", err))
		}
		errs = append(errs, s.admin.Close(), s.peers.Close()) // after the status page's last /cluster
		s.wg.Wait()
		errs = append(errs, s.store.Close())
		s.stopErr = errors.Join(errs...)
		s.log.Info("stopped", "error", s.stopErr)
	})
	return s.stopErr
}
