// Package config loads and validates the configuration of one raftogram node.
//
// A node is configured from three layers, later layers winning:
//
//  1. built-in defaults ([Default]);
//  2. an optional YAML file (config.yaml by default, or the file named with
//     -config / RAFTOGRAM_CONFIG), decoded strictly: an unknown key is an
//     error naming the key and its line;
//  3. RAFTOGRAM_* environment variables, e.g. RAFTOGRAM_NODE_ID,
//     RAFTOGRAM_RAFT_HEARTBEAT_TIMEOUT, RAFTOGRAM_LIMITS_MAX_PAYLOAD_BYTES,
//     RAFTOGRAM_CLUSTER_PEERS.
//
// Environment variables are parsed by github.com/caarlos0/env/v11. Following
// that library, a variable that is set to the empty string is treated exactly
// like an unset one: it does not override the file or the default (so an empty
// value cannot be used to clear a setting).
//
// Durations use Go syntax ("500ms", "1s", "2m") both in YAML and in the
// environment. The peer list uses, in the environment (and optionally as a
// YAML string), the one-line format described on [Peers].
//
// When no peer list is given at all, the node runs as a single-voter cluster
// whose only peer is itself: {node_id, raft_bind_addr, grpc_bind_addr}.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"gopkg.in/yaml.v3"
)

// envPrefix is the prefix shared by every environment variable read by [Load].
const envPrefix = "RAFTOGRAM_"

// Peer is one voting member of the static cluster.
type Peer struct {
	// NodeID is the Raft server ID of the member; it must match
	// ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$.
	NodeID string `yaml:"node_id"`
	// RaftAddr is the host:port other members dial for Raft traffic.
	RaftAddr string `yaml:"raft_addr"`
	// GRPCAddr is the host:port clients dial for the Messenger gRPC API:
	// what /health and NotLeader hints name as the leader's address, and
	// what the other nodes dial too unless PeerGRPCAddr is set.
	GRPCAddr string `yaml:"grpc_addr"`
	// PeerGRPCAddr is the host:port the other nodes dial for this node's
	// gRPC (write forwarding, read indexes, the cluster view, free-space
	// polls) when it differs from the one clients use: containers whose gRPC
	// port is published on the host (clients use 127.0.0.1:9000, nodes
	// node1:9000). Optional; empty means GRPCAddr.
	PeerGRPCAddr string `yaml:"peer_grpc_addr,omitempty"`
}

// PeerDialAddr returns the address other nodes dial for p's gRPC:
// PeerGRPCAddr, or GRPCAddr when that is empty.
func (p Peer) PeerDialAddr() string {
	if p.PeerGRPCAddr != "" {
		return p.PeerGRPCAddr
	}
	return p.GRPCAddr
}

// Cluster describes the static cluster membership.
type Cluster struct {
	// Peers is every voting member, this node included.
	// YAML: cluster.peers; env: RAFTOGRAM_CLUSTER_PEERS (one-line format, see
	// [Peers]). Default: empty, which Load replaces with this node alone.
	Peers Peers `yaml:"peers" env:"PEERS"`
}

// Raft holds hashicorp/raft tuning knobs. YAML section raft:, environment
// variables RAFTOGRAM_RAFT_*.
type Raft struct {
	// HeartbeatTimeout: follower timeout without leader contact before it
	// starts an election. YAML raft.heartbeat_timeout,
	// env RAFTOGRAM_RAFT_HEARTBEAT_TIMEOUT, default 300ms.
	HeartbeatTimeout time.Duration `yaml:"heartbeat_timeout" env:"HEARTBEAT_TIMEOUT"`
	// ElectionTimeout: candidate timeout without a leader. YAML
	// raft.election_timeout, env RAFTOGRAM_RAFT_ELECTION_TIMEOUT, default
	// 300ms.
	ElectionTimeout time.Duration `yaml:"election_timeout" env:"ELECTION_TIMEOUT"`
	// LeaderLeaseTimeout: how long a leader stays leader without reaching a
	// quorum. YAML raft.leader_lease_timeout,
	// env RAFTOGRAM_RAFT_LEADER_LEASE_TIMEOUT, default 300ms.
	LeaderLeaseTimeout time.Duration `yaml:"leader_lease_timeout" env:"LEADER_LEASE_TIMEOUT"`
	// CommitTimeout: the longest the leader waits before sending an
	// AppendEntries without new entries. YAML raft.commit_timeout,
	// env RAFTOGRAM_RAFT_COMMIT_TIMEOUT, default 20ms.
	CommitTimeout time.Duration `yaml:"commit_timeout" env:"COMMIT_TIMEOUT"`
	// MaxAppendEntries: maximum log entries per AppendEntries request (1..1024).
	// YAML raft.max_append_entries, env RAFTOGRAM_RAFT_MAX_APPEND_ENTRIES,
	// default 256.
	MaxAppendEntries int `yaml:"max_append_entries" env:"MAX_APPEND_ENTRIES"`
	// SnapshotThreshold: minimum new log entries since the last snapshot
	// before another one is taken (> 0). YAML raft.snapshot_threshold,
	// env RAFTOGRAM_RAFT_SNAPSHOT_THRESHOLD, default 8192.
	SnapshotThreshold uint64 `yaml:"snapshot_threshold" env:"SNAPSHOT_THRESHOLD"`
	// SnapshotInterval: how often the threshold is checked. YAML
	// raft.snapshot_interval, env RAFTOGRAM_RAFT_SNAPSHOT_INTERVAL, default 2m.
	SnapshotInterval time.Duration `yaml:"snapshot_interval" env:"SNAPSHOT_INTERVAL"`
	// TrailingLogs: log entries kept after a snapshot so slow followers can
	// catch up without a snapshot install. YAML raft.trailing_logs,
	// env RAFTOGRAM_RAFT_TRAILING_LOGS, default 10240.
	TrailingLogs uint64 `yaml:"trailing_logs" env:"TRAILING_LOGS"`
	// ApplyTimeout: how long a write waits for its log entry to be committed
	// and applied. YAML raft.apply_timeout, env RAFTOGRAM_RAFT_APPLY_TIMEOUT,
	// default 10s.
	ApplyTimeout time.Duration `yaml:"apply_timeout" env:"APPLY_TIMEOUT"`
}

// Limits holds request limits. YAML section limits:, environment variables
// RAFTOGRAM_LIMITS_*.
type Limits struct {
	// MaxPayloadBytes: largest accepted message payload in bytes
	// (1..16777216). YAML limits.max_payload_bytes,
	// env RAFTOGRAM_LIMITS_MAX_PAYLOAD_BYTES, default 1048576 (1 MiB).
	MaxPayloadBytes int `yaml:"max_payload_bytes" env:"MAX_PAYLOAD_BYTES"`
	// MaxMetadataBytes: largest gRPC metadata (headers) a call may send.
	// YAML limits.max_metadata_bytes, env RAFTOGRAM_LIMITS_MAX_METADATA_BYTES,
	// default 65536.
	MaxMetadataBytes int `yaml:"max_metadata_bytes" env:"MAX_METADATA_BYTES"`
	// MaxConnections: open gRPC connections a node accepts at once; more
	// wait in the listen backlog. YAML limits.max_connections,
	// env RAFTOGRAM_LIMITS_MAX_CONNECTIONS, default 4096.
	MaxConnections int `yaml:"max_connections" env:"MAX_CONNECTIONS"`
	// MaxStreamsPerConnection: concurrent calls (streams) on one gRPC
	// connection. YAML limits.max_streams_per_connection,
	// env RAFTOGRAM_LIMITS_MAX_STREAMS_PER_CONNECTION, default 1024.
	MaxStreamsPerConnection int `yaml:"max_streams_per_connection" env:"MAX_STREAMS_PER_CONNECTION"`
	// MaxStreams: concurrent Subscribe and Publish streams on the node
	// (each Publish stream holds at most max_publish_inflight_bytes); one more is
	// refused with ResourceExhausted. YAML limits.max_streams,
	// env RAFTOGRAM_LIMITS_MAX_STREAMS, default 16384.
	MaxStreams int `yaml:"max_streams" env:"MAX_STREAMS"`
	// IdleConnectionTimeout: a gRPC connection without calls, or an HTTP
	// keep-alive connection, is closed after this long. YAML
	// limits.idle_connection_timeout,
	// env RAFTOGRAM_LIMITS_IDLE_CONNECTION_TIMEOUT, default 5m.
	IdleConnectionTimeout time.Duration `yaml:"idle_connection_timeout" env:"IDLE_CONNECTION_TIMEOUT"`
	// ChannelCreatesPerSecond: CreateChannel calls a node accepts per
	// second (a token bucket holding as many); more are refused with
	// ResourceExhausted. YAML limits.channel_creates_per_second,
	// env RAFTOGRAM_LIMITS_CHANNEL_CREATES_PER_SECOND, default 500.
	ChannelCreatesPerSecond int `yaml:"channel_creates_per_second" env:"CHANNEL_CREATES_PER_SECOND"`
	// MaxSubscriberBacklogBytes: payload bytes committed to a channel after
	// the last message a Subscribe stream has sent (not counting the latest
	// commit) beyond which the stream ends with ResourceExhausted and the
	// client resumes by sequence (at least max_payload_bytes). YAML
	// limits.max_subscriber_backlog_bytes,
	// env RAFTOGRAM_LIMITS_MAX_SUBSCRIBER_BACKLOG_BYTES, default 16777216.
	MaxSubscriberBacklogBytes int `yaml:"max_subscriber_backlog_bytes" env:"MAX_SUBSCRIBER_BACKLOG_BYTES"`
	// MaxFanoutWindowBytes: payload bytes the fan-out windows of all
	// subscribed channels hold together; beyond it the least recently
	// written windows are emptied (their streams read SQLite). YAML
	// limits.max_fanout_window_bytes,
	// env RAFTOGRAM_LIMITS_MAX_FANOUT_WINDOW_BYTES, default 268435456.
	MaxFanoutWindowBytes int `yaml:"max_fanout_window_bytes" env:"MAX_FANOUT_WINDOW_BYTES"`
	// MaxLogCacheBytes: bytes of recent Raft log entries kept in memory
	// (the rest are read from raft.db). YAML limits.max_log_cache_bytes,
	// env RAFTOGRAM_LIMITS_MAX_LOG_CACHE_BYTES, default 67108864.
	MaxLogCacheBytes int `yaml:"max_log_cache_bytes" env:"MAX_LOG_CACHE_BYTES"`
	// MaxPublishInflight: requests a Publish stream may have read and not
	// yet answered; the node stops reading the stream while it has this
	// many. YAML limits.max_publish_inflight,
	// env RAFTOGRAM_LIMITS_MAX_PUBLISH_INFLIGHT, default 256.
	MaxPublishInflight int `yaml:"max_publish_inflight" env:"MAX_PUBLISH_INFLIGHT"`
	// MaxPublishInflightBytes: payload bytes of the read and unanswered
	// requests of one Publish stream at which the node stops reading it
	// (one request is always admitted when none is pending). YAML
	// limits.max_publish_inflight_bytes,
	// env RAFTOGRAM_LIMITS_MAX_PUBLISH_INFLIGHT_BYTES, default 8388608.
	MaxPublishInflightBytes int `yaml:"max_publish_inflight_bytes" env:"MAX_PUBLISH_INFLIGHT_BYTES"`
}

// TLS configures transport security. YAML section tls:, environment
// variables RAFTOGRAM_TLS_*. It is off while ca_file, cert_file and
// key_file are all empty; setting any of them turns it on and requires all
// three. On, the Raft port speaks mutual TLS with the configured peers only
// (their certificates must chain to ca_file and carry their node_id as a
// DNS SAN or common name), the gRPC port serves TLS, and the node's own calls
// to its peers' gRPC ports use its certificate. The files are re-read when
// they change (polled every reload_interval) and on SIGHUP.
type TLS struct {
	// CAFile: PEM file of the cluster CA. YAML tls.ca_file,
	// env RAFTOGRAM_TLS_CA_FILE.
	CAFile string `yaml:"ca_file" env:"CA_FILE"`
	// CertFile and KeyFile: this node's certificate chain and private key
	// (PEM). YAML tls.cert_file / tls.key_file, env RAFTOGRAM_TLS_CERT_FILE
	// / RAFTOGRAM_TLS_KEY_FILE.
	CertFile string `yaml:"cert_file" env:"CERT_FILE"`
	KeyFile  string `yaml:"key_file" env:"KEY_FILE"`
	// ClientCAFile: PEM file of the CA(s) that sign client certificates on
	// the gRPC port, in addition to the cluster CA. YAML tls.client_ca_file,
	// env RAFTOGRAM_TLS_CLIENT_CA_FILE, default empty (the cluster CA only).
	ClientCAFile string `yaml:"client_ca_file" env:"CLIENT_CA_FILE"`
	// ClientCerts: whether gRPC clients must present a certificate: "none"
	// (never asked), "verify_if_given" (checked when presented) or
	// "require". YAML tls.client_certs, env RAFTOGRAM_TLS_CLIENT_CERTS,
	// default "verify_if_given".
	ClientCerts string `yaml:"client_certs" env:"CLIENT_CERTS"`
	// Health serves the health listener (/health and the other HTTP
	// endpoints) over TLS too. YAML tls.health, env RAFTOGRAM_TLS_HEALTH,
	// default false.
	Health bool `yaml:"health" env:"HEALTH"`
	// ReloadInterval: how often the files are checked for changes. YAML
	// tls.reload_interval, env RAFTOGRAM_TLS_RELOAD_INTERVAL, default 10s.
	ReloadInterval time.Duration `yaml:"reload_interval" env:"RELOAD_INTERVAL"`
}

// Enabled reports whether any of the TLS files is configured.
func (t TLS) Enabled() bool { return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" }

// The accepted tls.client_certs values.
const (
	ClientCertsNone          = "none"
	ClientCertsVerifyIfGiven = "verify_if_given"
	ClientCertsRequire       = "require"
)

// Auth configures who may call the gRPC API and what they may do. YAML
// section auth:, environment variables RAFTOGRAM_AUTH_* (the scalar keys;
// tokens, roles and principals come from YAML, here or in rules_file). It
// is off while no way to authenticate is configured (no tokens, no
// rules_file, no jwt.key_file, client_certs false); on, every call must
// authenticate (Unauthenticated otherwise) and is authorized against the
// roles and principals (PermissionDenied). Auth needs tls: tokens must not
// travel in clear, and peers prove they are peers with their certificates.
type Auth struct {
	// RulesFile: a YAML file holding tokens, roles and principals in the
	// shape of this section; they add to the ones here and are re-read
	// when the file changes and on SIGHUP. YAML auth.rules_file,
	// env RAFTOGRAM_AUTH_RULES_FILE.
	RulesFile string `yaml:"rules_file" env:"RULES_FILE"`
	// CertAuth: a verified client certificate authenticates its holder;
	// the principal is the certificate's first DNS/URI/email SAN, else its
	// subject common name. YAML auth.client_certs,
	// env RAFTOGRAM_AUTH_CLIENT_CERTS, default false.
	CertAuth bool `yaml:"client_certs" env:"CLIENT_CERTS"`
	// JWT: bearer tokens that are JWTs signed with a configured key.
	JWT JWT `yaml:"jwt" envPrefix:"JWT_"`
	// Tokens: static bearer tokens, stored as hashes.
	Tokens []Token `yaml:"tokens,omitempty"`
	// Roles: named sets of permissions.
	Roles map[string]Grant `yaml:"roles,omitempty"`
	// Principals: permissions (and roles) per principal name.
	Principals map[string]Grant `yaml:"principals,omitempty"`
}

// Enabled reports whether any way to authenticate is configured.
func (a Auth) Enabled() bool {
	return a.RulesFile != "" || a.CertAuth || a.JWT.VerifyKeyFile != "" || len(a.Tokens) > 0
}

// JWT configures JWT bearer tokens. YAML auth.jwt, env RAFTOGRAM_AUTH_JWT_*.
type JWT struct {
	// VerifyKeyFile: the verification key: for HS256 the shared secret (the
	// file's bytes, surrounding whitespace trimmed), for RS256 and EdDSA one
	// or more PEM public keys (a token verifies with any: keys rotate by
	// adding the new one, then removing the old). Reloaded when it changes
	// (polled every tls.reload_interval) and on SIGHUP. YAML
	// auth.jwt.key_file, env RAFTOGRAM_AUTH_JWT_KEY_FILE.
	VerifyKeyFile string `yaml:"key_file" env:"KEY_FILE"`
	// Algorithm: HS256, RS256 or EdDSA; tokens signed otherwise are
	// refused. YAML auth.jwt.algorithm, env RAFTOGRAM_AUTH_JWT_ALGORITHM.
	Algorithm string `yaml:"algorithm" env:"ALGORITHM"`
	// Issuer and Audience, when set, must match the iss and aud claims.
	// exp is required; nbf is honoured. YAML auth.jwt.issuer /
	// auth.jwt.audience, env RAFTOGRAM_AUTH_JWT_ISSUER / _AUDIENCE.
	Issuer   string `yaml:"issuer" env:"ISSUER"`
	Audience string `yaml:"audience" env:"AUDIENCE"`
	// PrincipalClaim (default "sub") and RolesClaim (default "roles", a
	// list of strings) name the claims the principal and its roles come
	// from. YAML auth.jwt.principal_claim / roles_claim.
	PrincipalClaim string `yaml:"principal_claim" env:"PRINCIPAL_CLAIM"`
	RolesClaim     string `yaml:"roles_claim" env:"ROLES_CLAIM"`
}

// Token is a static bearer token: whoever presents the token whose SHA-256
// is SHA256 (hex) is Principal, with Roles.
type Token struct {
	Principal string   `yaml:"principal"`
	SHA256    string   `yaml:"sha256"`
	Roles     []string `yaml:"roles"`
}

// Grant is a set of permissions. Channel lists hold channel ids or glob
// patterns (path.Match syntax: "*" matches any id, "room-*" a prefix).
type Grant struct {
	// Roles whose permissions this grant includes (principals only).
	Roles []string `yaml:"roles"`
	// Create: channels the holder may create.
	Create []string `yaml:"create"`
	// Publish: channels the holder may send messages to.
	Publish []string `yaml:"publish"`
	// Read: channels the holder may read, list and subscribe to.
	Read []string `yaml:"read"`
	// Admin: cluster operations (the Admin service).
	Admin bool `yaml:"admin"`
	// Impersonate: may send with an author_id other than its principal.
	Impersonate bool `yaml:"impersonate"`
}

// Config is the complete configuration of one node.
type Config struct {
	// NodeID is this node's Raft server ID; it must appear in Cluster.Peers.
	// YAML node_id, env RAFTOGRAM_NODE_ID, default "node1".
	NodeID string `yaml:"node_id" env:"NODE_ID"`
	// RaftBindAddr is the host:port the Raft transport listens on.
	// YAML raft_bind_addr, env RAFTOGRAM_RAFT_BIND_ADDR, default "127.0.0.1:7000".
	RaftBindAddr string `yaml:"raft_bind_addr" env:"RAFT_BIND_ADDR"`
	// GRPCBindAddr is the host:port the Messenger gRPC server listens on.
	// YAML grpc_bind_addr, env RAFTOGRAM_GRPC_BIND_ADDR, default "127.0.0.1:9000".
	GRPCBindAddr string `yaml:"grpc_bind_addr" env:"GRPC_BIND_ADDR"`
	// HealthBindAddr is the host:port of the HTTP health endpoints.
	// YAML health_bind_addr, env RAFTOGRAM_HEALTH_BIND_ADDR, default "127.0.0.1:8080".
	HealthBindAddr string `yaml:"health_bind_addr" env:"HEALTH_BIND_ADDR"`
	// DataDir holds the Raft log, stable store, snapshots and the state
	// database. YAML data_dir, env RAFTOGRAM_DATA_DIR, default "./data/node1".
	DataDir string `yaml:"data_dir" env:"DATA_DIR"`
	// Cluster is the static membership. YAML cluster:, env RAFTOGRAM_CLUSTER_*.
	Cluster Cluster `yaml:"cluster" envPrefix:"CLUSTER_"`
	// Raft is the consensus tuning. YAML raft:, env RAFTOGRAM_RAFT_*.
	Raft Raft `yaml:"raft" envPrefix:"RAFT_"`
	// Limits are the request limits. YAML limits:, env RAFTOGRAM_LIMITS_*.
	Limits Limits `yaml:"limits" envPrefix:"LIMITS_"`
	// TLS is transport security, off by default. YAML tls:,
	// env RAFTOGRAM_TLS_*.
	TLS TLS `yaml:"tls" envPrefix:"TLS_"`
	// Auth is authentication and authorization, off by default. YAML
	// auth:, env RAFTOGRAM_AUTH_*.
	Auth Auth `yaml:"auth" envPrefix:"AUTH_"`
	// Retention is the default history limits of new channels and the
	// expiry settings. YAML retention:, env RAFTOGRAM_RETENTION_*.
	Retention Retention `yaml:"retention" envPrefix:"RETENTION_"`
	// ShutdownTimeout bounds graceful shutdown. YAML shutdown_timeout,
	// env RAFTOGRAM_SHUTDOWN_TIMEOUT, default 10s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout" env:"SHUTDOWN_TIMEOUT"`
	// LogLevel is one of debug, info, warn, error (lower case).
	// YAML log_level, env RAFTOGRAM_LOG_LEVEL, default "info".
	LogLevel string `yaml:"log_level" env:"LOG_LEVEL"`
	// DebugPprof serves Go's runtime profiles under /debug/pprof/ on the
	// health listener. YAML debug_pprof, env RAFTOGRAM_DEBUG_PPROF,
	// default false.
	DebugPprof bool `yaml:"debug_pprof" env:"DEBUG_PPROF"`
	// ForwardWrites makes a follower forward CreateChannel and SendMessage
	// to the leader and return its answer, and relay Publish streams to it,
	// instead of answering NotLeader.
	// YAML forward_writes, env RAFTOGRAM_FORWARD_WRITES, default false.
	ForwardWrites bool `yaml:"forward_writes" env:"FORWARD_WRITES"`
	// FollowerStreamHeartbeat is how often an idle Subscribe stream that
	// asked for a consistency level gets a heartbeat chunk (no messages,
	// the node's applied index and the leader's commit index).
	// YAML follower_stream_heartbeat, env RAFTOGRAM_FOLLOWER_STREAM_HEARTBEAT,
	// default 1s.
	FollowerStreamHeartbeat time.Duration `yaml:"follower_stream_heartbeat" env:"FOLLOWER_STREAM_HEARTBEAT"`
	// FollowerStreamCutoff is how long a node may go without contact with a
	// leader before its consistency-level Subscribe streams end with
	// Unavailable. YAML follower_stream_cutoff,
	// env RAFTOGRAM_FOLLOWER_STREAM_CUTOFF, default 10s.
	FollowerStreamCutoff time.Duration `yaml:"follower_stream_cutoff" env:"FOLLOWER_STREAM_CUTOFF"`
	// FanoutCoalesce is the least time between two wake-ups of a channel's
	// Subscribe streams on this node: commits within it are sent as one
	// chunk per stream (a commit after a quiet spell at least this long is
	// sent at once). 0 wakes the streams at every commit.
	// YAML fanout_coalesce, env RAFTOGRAM_FANOUT_COALESCE, default 25ms.
	FanoutCoalesce time.Duration `yaml:"fanout_coalesce" env:"FANOUT_COALESCE"`
	// AccessLogSampleRate is the share (0..1) of gRPC calls the access log
	// records (calls ending Unknown, Internal or DataLoss always are while
	// it is above 0); 0 turns the access log off. YAML
	// access_log_sample_rate, env RAFTOGRAM_ACCESS_LOG_SAMPLE_RATE,
	// default 0.
	AccessLogSampleRate float64 `yaml:"access_log_sample_rate" env:"ACCESS_LOG_SAMPLE_RATE"`
	// GRPCReflection serves gRPC server reflection on the gRPC port, so
	// `grpcurl host:port list` works without proto files.
	// YAML grpc_reflection, env RAFTOGRAM_GRPC_REFLECTION, default false.
	GRPCReflection bool `yaml:"grpc_reflection" env:"GRPC_REFLECTION"`
	// MinFreeBytes is the free-space alarm's threshold, like etcd's space
	// quota: while any node's data_dir has fewer bytes available, the
	// leader refuses writes with ResourceExhausted and that node reports
	// not ready; writes resume by themselves once space returns. 0 turns
	// the alarm off. YAML min_free_bytes, env RAFTOGRAM_MIN_FREE_BYTES,
	// default 134217728 (128 MiB).
	MinFreeBytes uint64 `yaml:"min_free_bytes" env:"MIN_FREE_BYTES"`
	// ReadyzMaxLag is how many log entries a node's applied index may trail
	// the leader's commit index while GET /readyz calls it ready.
	// YAML readyz_max_lag, env RAFTOGRAM_READYZ_MAX_LAG, default 100.
	ReadyzMaxLag uint64 `yaml:"readyz_max_lag" env:"READYZ_MAX_LAG"`
}

// Retention holds the node-wide retention settings. The leader applies them
// (they travel in the log), so give every node the same values. YAML section
// retention:, environment variables RAFTOGRAM_RETENTION_*.
type Retention struct {
	// MaxMessages, MaxAge and MaxBytes are the limits of a channel created
	// without a retention of its own (0: no limit; max_age at least 1s).
	// A channel's own retention (CreateChannel, UpdateChannel) replaces all
	// three. YAML retention.max_messages / max_age / max_bytes, env
	// RAFTOGRAM_RETENTION_MAX_MESSAGES / _MAX_AGE / _MAX_BYTES, default 0.
	MaxMessages uint64        `yaml:"max_messages" env:"MAX_MESSAGES"`
	MaxAge      time.Duration `yaml:"max_age" env:"MAX_AGE"`
	MaxBytes    uint64        `yaml:"max_bytes" env:"MAX_BYTES"`
	// DedupHorizon is how long after its message was created a
	// client_message_id keeps answering with its original sequence once
	// retention removed the message (while the message is held it always
	// does); 0 keeps dedup rows forever. YAML retention.dedup_horizon, env
	// RAFTOGRAM_RETENTION_DEDUP_HORIZON, default 0.
	DedupHorizon time.Duration `yaml:"dedup_horizon" env:"DEDUP_HORIZON"`
	// ExpireInterval is how often the leader checks for messages past
	// their channel's max_age (and dedup rows past the horizon) and, when
	// there are any, proposes their removal. YAML retention.expire_interval,
	// env RAFTOGRAM_RETENTION_EXPIRE_INTERVAL, default 5s.
	ExpireInterval time.Duration `yaml:"expire_interval" env:"EXPIRE_INTERVAL"`
}

// Default returns the built-in defaults: a node "node1" with Raft on
// 127.0.0.1:7000, gRPC on 127.0.0.1:9000, health on 127.0.0.1:8080, data in
// ./data/node1 and the Raft/limit defaults documented on [Raft] and [Limits].
// Cluster.Peers is empty (Load fills it with the node itself when nothing else
// provides a peer list), so Default().Validate() reports "cluster.peers is
// empty". It never fails.
func Default() Config {
	return Config{
		NodeID:         "node1",
		RaftBindAddr:   "127.0.0.1:7000",
		GRPCBindAddr:   "127.0.0.1:9000",
		HealthBindAddr: "127.0.0.1:8080",
		DataDir:        "./data/node1",
		Raft: Raft{
			HeartbeatTimeout:   300 * time.Millisecond,
			ElectionTimeout:    300 * time.Millisecond,
			LeaderLeaseTimeout: 300 * time.Millisecond,
			CommitTimeout:      20 * time.Millisecond,
			MaxAppendEntries:   256,
			SnapshotThreshold:  8192,
			SnapshotInterval:   2 * time.Minute,
			TrailingLogs:       10240,
			ApplyTimeout:       10 * time.Second,
		},
		Limits: Limits{
			MaxPayloadBytes:           1 << 20,
			MaxMetadataBytes:          64 << 10,
			MaxConnections:            4096,
			MaxStreamsPerConnection:   1024,
			MaxStreams:                16384,
			IdleConnectionTimeout:     5 * time.Minute,
			ChannelCreatesPerSecond:   500,
			MaxSubscriberBacklogBytes: 16 << 20,
			MaxFanoutWindowBytes:      256 << 20,
			MaxLogCacheBytes:          64 << 20,
			MaxPublishInflight:        256,
			MaxPublishInflightBytes:   8 << 20,
		},
		TLS: TLS{
			ClientCerts:    ClientCertsVerifyIfGiven,
			ReloadInterval: 10 * time.Second,
		},
		Retention:               Retention{ExpireInterval: 5 * time.Second},
		ShutdownTimeout:         10 * time.Second,
		LogLevel:                "info",
		FollowerStreamHeartbeat: time.Second,
		FanoutCoalesce:          25 * time.Millisecond,
		FollowerStreamCutoff:    10 * time.Second,
		MinFreeBytes:            128 << 20,
		ReadyzMaxLag:            100,
	}
}

// Load builds the node configuration and returns it validated.
//
// It starts from [Default], overlays the YAML file at path, then overlays the
// RAFTOGRAM_* variables found in environ (never the process environment: pass
// env.ToMap(os.Environ()) or similar; a nil map means "no variables"), then,
// if no peer list was given, sets Cluster.Peers to this node alone
// ({NodeID, RaftBindAddr, GRPCBindAddr}), and finally calls [Config.Validate].
//
// A missing file is an error only when explicit is true (the user named it
// with -config or RAFTOGRAM_CONFIG); with explicit false a missing file is
// skipped, so a container can be configured by environment alone. An empty
// path with explicit false means "no file".
//
// Errors (all prefixed "config:" and naming the file, all wrapping the cause
// with %w):
//   - the file cannot be read (errors.Is(err, fs.ErrNotExist) when it is
//     missing and explicit);
//   - the file is not valid YAML, has an unknown key (the message names the
//     key and its line), has a value of the wrong type, or holds more than one
//     YAML document;
//   - an environment variable cannot be parsed (the message names the variable
//     and its value; malformed RAFTOGRAM_CLUSTER_PEERS entries are named too);
//   - the merged configuration fails [Config.Validate] (every problem listed).
//
// On error the returned Config is the zero value.
func Load(path string, explicit bool, environ map[string]string) (Config, error) {
	cfg := Default()

	source := "no config file"
	if path == "" {
		if explicit {
			return Config{}, errors.New("config: the config file path is empty")
		}
	} else {
		data, err := os.ReadFile(path)
		switch {
		case err == nil:
			if err := decodeYAML(data, &cfg); err != nil {
				return Config{}, fmt.Errorf("config: parse config file %q: %w", path, err)
			}
			source = fmt.Sprintf("config file %q", path)
		case errors.Is(err, fs.ErrNotExist) && !explicit:
			source = fmt.Sprintf("no config file (%q not found)", path)
		default:
			return Config{}, fmt.Errorf("config: read config file %q: %w", path, err)
		}
	}

	if err := applyEnv(&cfg, environ); err != nil {
		return Config{}, fmt.Errorf("config: invalid %s* environment (with %s):\n%w", envPrefix, source, err)
	}

	if len(cfg.Cluster.Peers) == 0 {
		cfg.Cluster.Peers = Peers{cfg.selfFromBindAddrs()}
	}

	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("config: invalid configuration (%s plus %s* environment):\n%w", source, envPrefix, err)
	}
	return cfg, nil
}

// selfFromBindAddrs is the implicit single-node peer list entry.
func (c Config) selfFromBindAddrs() Peer {
	return Peer{NodeID: c.NodeID, RaftAddr: c.RaftBindAddr, GRPCAddr: c.GRPCBindAddr}
}

// decodeYAML strictly decodes a single YAML document onto cfg. An empty file
// (or one holding only comments) leaves cfg untouched.
func decodeYAML(data []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return err
		}
		return fmt.Errorf("line %d: a second YAML document is not allowed; put the whole configuration in one document", extra.Line)
	}
	return nil
}

// envVarByField maps each env-tagged Config field name (Go field names are
// unique across the nested structs) to its full environment variable name,
// e.g. "HeartbeatTimeout" -> "RAFTOGRAM_RAFT_HEARTBEAT_TIMEOUT".
var envVarByField = collectEnvVars(reflect.TypeFor[Config](), envPrefix, map[string]string{})

func collectEnvVars(t reflect.Type, prefix string, into map[string]string) map[string]string {
	for i := range t.NumField() {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("env"), ","); name != "" && name != "-" {
			if prev, dup := into[f.Name]; dup {
				panic(fmt.Sprintf("config: field name %s is used by %s and %s; env errors name variables by field, so rename one", f.Name, prev, prefix+name))
			}
			into[f.Name] = prefix + name
			continue
		}
		if f.Type.Kind() == reflect.Struct {
			collectEnvVars(f.Type, prefix+f.Tag.Get("envPrefix"), into)
		}
	}
	return into
}

// applyEnv overlays the known RAFTOGRAM_* variables of environ onto cfg.
//
// Only variables that name a Config field are handed to the env library (and
// never a nil map, which would make the library read the process
// environment). This keeps unrelated variables such as RAFTOGRAM_CONFIG, and
// odd ones such as a bare "RAFTOGRAM_RAFT_", from being interpreted.
func applyEnv(cfg *Config, environ map[string]string) error {
	filtered := make(map[string]string)
	for _, key := range envVarByField {
		if v, ok := environ[key]; ok {
			filtered[key] = v
		}
	}
	if len(filtered) == 0 {
		return nil
	}

	err := env.ParseWithOptions(cfg, env.Options{Prefix: envPrefix, Environment: filtered})
	if err == nil {
		return nil
	}
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	errs := make([]error, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			if key, ok := envVarByField[pe.Name]; ok {
				errs = append(errs, fmt.Errorf("%s=%q: %w", key, filtered[key], pe.Err))
				continue
			}
		}
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}
