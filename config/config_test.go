package config

import (
	"errors"
	"io/fs"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// threePeers is the README's local three-node cluster.
var threePeers = Peers{
	{NodeID: "node1", RaftAddr: "127.0.0.1:7000", GRPCAddr: "127.0.0.1:9000"},
	{NodeID: "node2", RaftAddr: "127.0.0.1:7001", GRPCAddr: "127.0.0.1:9001"},
	{NodeID: "node3", RaftAddr: "127.0.0.1:7002", GRPCAddr: "127.0.0.1:9002"},
}

const threePeersLine = "node1=127.0.0.1:7000/127.0.0.1:9000,node2=127.0.0.1:7001/127.0.0.1:9001,node3=127.0.0.1:7002/127.0.0.1:9002"

// validConfig returns a valid three-node config for node1 with its own copy
// of the peer list, so tests may mutate it.
func validConfig() Config {
	c := Default()
	c.Cluster.Peers = append(Peers(nil), threePeers...)
	return c
}

func TestDefault(t *testing.T) {
	t.Parallel()
	want := Config{
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
		Limits: Limits{MaxPayloadBytes: 1048576, MaxMetadataBytes: 65536, MaxConnections: 4096, MaxStreamsPerConnection: 1024,
			MaxStreams: 16384, IdleConnectionTimeout: 5 * time.Minute, ChannelCreatesPerSecond: 500,
			MaxSubscriberBacklogBytes: 16 << 20, MaxFanoutWindowBytes: 256 << 20, MaxLogCacheBytes: 64 << 20,
			MaxPublishInflight: 256, MaxPublishInflightBytes: 8 << 20},
		TLS:                     TLS{ClientCerts: "verify_if_given", ReloadInterval: 10 * time.Second},
		Retention:               Retention{ExpireInterval: 5 * time.Second},
		ShutdownTimeout:         10 * time.Second,
		LogLevel:                "info",
		FollowerStreamHeartbeat: time.Second,
		FollowerStreamCutoff:    10 * time.Second,
		FanoutCoalesce:          25 * time.Millisecond,
		MinFreeBytes:            128 << 20,
		ReadyzMaxLag:            100,
	}
	if got := Default(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Default() = %+v\nwant %+v", got, want)
	}
	if err := Default().Validate(); err == nil || !strings.Contains(err.Error(), "cluster.peers is empty") {
		t.Fatalf("Default().Validate() = %v, want the empty-peers error", err)
	}
}

func TestValidateAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*Config)
	}{
		{"three nodes", func(*Config) {}},
		{"single node", func(c *Config) { c.Cluster.Peers = c.Cluster.Peers[:1] }},
		{"five nodes", func(c *Config) {
			c.Cluster.Peers = append(c.Cluster.Peers,
				Peer{NodeID: "node4", RaftAddr: "127.0.0.1:7003", GRPCAddr: "127.0.0.1:9003"},
				Peer{NodeID: "node5", RaftAddr: "127.0.0.1:7004", GRPCAddr: "127.0.0.1:9004"})
		}},
		{"wildcard and empty bind hosts", func(c *Config) {
			c.RaftBindAddr = "0.0.0.0:7000"
			c.GRPCBindAddr = ":9000"
			c.HealthBindAddr = "[::]:8080"
		}},
		{"host names and IPv6 peers", func(c *Config) {
			c.Cluster.Peers[1].RaftAddr = "node2.raftogram.svc.cluster.local:7000"
			c.Cluster.Peers[2].RaftAddr = "[::1]:7002"
		}},
		{"id edge cases", func(c *Config) {
			id := "A" + strings.Repeat("x._-", 15) + "yyy" // 64 chars
			c.NodeID = id
			c.Cluster.Peers[0].NodeID = id
			c.Cluster.Peers[1].NodeID = "9"
		}},
		{"limits at the bounds", func(c *Config) {
			c.Raft.MaxAppendEntries = 1024
			c.Limits.MaxPayloadBytes = 16 << 20
		}},
		{"minimums", func(c *Config) {
			c.Raft.MaxAppendEntries = 1
			c.Limits.MaxPayloadBytes = 1
			c.Raft.SnapshotThreshold = 1
			c.Raft.TrailingLogs = 0
			c.Raft.HeartbeatTimeout = 5 * time.Millisecond
			c.Raft.ElectionTimeout = 5 * time.Millisecond
			c.Raft.LeaderLeaseTimeout = 5 * time.Millisecond
			c.Raft.CommitTimeout = time.Millisecond
			c.Raft.SnapshotInterval = 5 * time.Millisecond
			c.Raft.ApplyTimeout = time.Nanosecond
			c.ShutdownTimeout = time.Nanosecond
		}},
		{"every log level", func(c *Config) { c.LogLevel = "error" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := validConfig()
			tt.mutate(&c)
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
		})
	}
	for _, l := range []string{"debug", "info", "warn", "error"} {
		c := validConfig()
		c.LogLevel = l
		if err := c.Validate(); err != nil {
			t.Errorf("log_level %q: Validate() = %v", l, err)
		}
	}
}

func TestValidateRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		// limits
		{"max_metadata_bytes too small", func(c *Config) { c.Limits.MaxMetadataBytes = 100 }, "limits.max_metadata_bytes must be 1024..16777216, got 100"},
		{"max_connections zero", func(c *Config) { c.Limits.MaxConnections = 0 }, "limits.max_connections must be positive, got 0"},
		{"max_streams negative", func(c *Config) { c.Limits.MaxStreams = -1 }, "limits.max_streams must be positive, got -1"},
		{"max_streams_per_connection zero", func(c *Config) { c.Limits.MaxStreamsPerConnection = 0 }, "limits.max_streams_per_connection must be positive"},
		{"idle_connection_timeout zero", func(c *Config) { c.Limits.IdleConnectionTimeout = 0 }, "limits.idle_connection_timeout must be positive"},
		{"channel_creates_per_second zero", func(c *Config) { c.Limits.ChannelCreatesPerSecond = 0 }, "limits.channel_creates_per_second must be positive"},
		{"max_subscriber_backlog_bytes below the payload", func(c *Config) { c.Limits.MaxSubscriberBacklogBytes = c.Limits.MaxPayloadBytes - 1 }, "limits.max_subscriber_backlog_bytes must be at least limits.max_payload_bytes (1048576), got 1048575"},
		{"max_fanout_window_bytes zero", func(c *Config) { c.Limits.MaxFanoutWindowBytes = 0 }, "limits.max_fanout_window_bytes must be positive"},
		{"max_log_cache_bytes negative", func(c *Config) { c.Limits.MaxLogCacheBytes = -1 }, "limits.max_log_cache_bytes must be positive"},
		{"max_publish_inflight zero", func(c *Config) { c.Limits.MaxPublishInflight = 0 }, "limits.max_publish_inflight must be positive"},
		{"max_publish_inflight_bytes negative", func(c *Config) { c.Limits.MaxPublishInflightBytes = -1 }, "limits.max_publish_inflight_bytes must be positive"},

		// tls
		{"tls cert without key and CA", func(c *Config) { c.TLS.CertFile = "node.pem" },
			"tls.ca_file is empty; tls needs ca_file, cert_file and key_file together"},
		{"tls without key", func(c *Config) { c.TLS.CertFile, c.TLS.CAFile = "node.pem", "ca.pem" },
			"tls.key_file is empty"},
		{"tls client_certs unknown", func(c *Config) { c.TLS.ClientCerts = "maybe" },
			`tls.client_certs "maybe" is unknown; use one of none, verify_if_given, require`},
		{"tls reload_interval zero", func(c *Config) { c.TLS.ReloadInterval = 0 }, "tls.reload_interval must be positive"},

		// cluster size
		{"two peers", func(c *Config) { c.Cluster.Peers = c.Cluster.Peers[:2] },
			"cluster.peers has 2 voters; a Raft cluster needs an odd number"},
		{"four peers", func(c *Config) {
			c.Cluster.Peers = append(c.Cluster.Peers, Peer{NodeID: "node4", RaftAddr: "127.0.0.1:7003", GRPCAddr: "127.0.0.1:9003"})
		}, "cluster.peers has 4 voters; a Raft cluster needs an odd number"},
		{"zero peers", func(c *Config) { c.Cluster.Peers = nil }, "cluster.peers is empty"},

		// node ids
		{"empty node_id", func(c *Config) { c.NodeID = "" }, "node_id is empty"},
		{"node_id not among peers", func(c *Config) { c.NodeID = "node9" },
			`node_id "node9" is not among cluster.peers ("node1", "node2", "node3")`},
		{"node_id with space", func(c *Config) { c.NodeID = "node 1"; c.Cluster.Peers[0].NodeID = "node 1" },
			`node_id "node 1" is invalid: it must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`},
		{"node_id leading dash", func(c *Config) { c.NodeID = "-node1" }, `node_id "-node1" is invalid`},
		{"node_id too long", func(c *Config) { c.NodeID = strings.Repeat("n", 65) }, `node_id "` + strings.Repeat("n", 65) + `" is invalid`},
		{"peer id invalid", func(c *Config) { c.Cluster.Peers[1].NodeID = "node/2" },
			`cluster.peers[1].node_id "node/2" is invalid: it must match`},
		{"peer id empty", func(c *Config) { c.Cluster.Peers[2].NodeID = "" }, "cluster.peers[2].node_id is empty"},
		{"duplicate peer id", func(c *Config) { c.Cluster.Peers[2].NodeID = "node1" },
			`cluster.peers[2].node_id "node1" duplicates cluster.peers[0].node_id`},

		// peer addresses
		{"duplicate raft_addr", func(c *Config) { c.Cluster.Peers[1].RaftAddr = "127.0.0.1:7000" },
			`cluster.peers[1].raft_addr "127.0.0.1:7000" duplicates cluster.peers[0].raft_addr`},
		{"duplicate grpc_addr", func(c *Config) { c.Cluster.Peers[2].GRPCAddr = "127.0.0.1:9001" },
			`cluster.peers[2].grpc_addr "127.0.0.1:9001" duplicates cluster.peers[1].grpc_addr`},
		{"grpc_addr equals a raft_addr", func(c *Config) { c.Cluster.Peers[1].GRPCAddr = "127.0.0.1:7000" },
			`cluster.peers[1].grpc_addr "127.0.0.1:7000" duplicates cluster.peers[0].raft_addr`},
		{"peer_grpc_addr duplicates another node's", func(c *Config) { c.Cluster.Peers[1].PeerGRPCAddr = "127.0.0.1:9000" },
			`cluster.peers[1].peer_grpc_addr "127.0.0.1:9000" duplicates cluster.peers[0].grpc_addr`},
		{"peer_grpc_addr unspecified", func(c *Config) { c.Cluster.Peers[0].PeerGRPCAddr = "0.0.0.0:9000" },
			`cluster.peers[0].peer_grpc_addr "0.0.0.0:9000" is invalid`},
		{"peer addr missing port", func(c *Config) { c.Cluster.Peers[0].RaftAddr = "127.0.0.1" },
			`cluster.peers[0].raft_addr "127.0.0.1" is invalid: want host:port: missing port in address`},
		{"peer addr empty", func(c *Config) { c.Cluster.Peers[0].GRPCAddr = "" },
			`cluster.peers[0].grpc_addr "" is invalid: want host:port`},
		{"peer addr port 0", func(c *Config) { c.Cluster.Peers[1].RaftAddr = "127.0.0.1:0" },
			`cluster.peers[1].raft_addr "127.0.0.1:0" is invalid: the port 0 is outside 1..65535`},
		{"peer addr port too big", func(c *Config) { c.Cluster.Peers[1].GRPCAddr = "127.0.0.1:65536" },
			`cluster.peers[1].grpc_addr "127.0.0.1:65536" is invalid: the port 65536 is outside 1..65535`},
		{"peer addr named port", func(c *Config) { c.Cluster.Peers[1].GRPCAddr = "127.0.0.1:grpc" },
			`cluster.peers[1].grpc_addr "127.0.0.1:grpc" is invalid: the port "grpc" is not a number`},
		{"peer addr negative port", func(c *Config) { c.Cluster.Peers[1].GRPCAddr = "127.0.0.1:-1" },
			`cluster.peers[1].grpc_addr "127.0.0.1:-1" is invalid: the port "-1" is not a number`},
		{"peer addr empty port", func(c *Config) { c.Cluster.Peers[1].GRPCAddr = "127.0.0.1:" },
			`cluster.peers[1].grpc_addr "127.0.0.1:" is invalid: the port is empty`},
		{"peer addr empty host", func(c *Config) { c.Cluster.Peers[2].RaftAddr = ":7002" },
			`cluster.peers[2].raft_addr ":7002" is invalid: the host is empty`},
		{"peer addr unspecified host", func(c *Config) { c.Cluster.Peers[2].RaftAddr = "0.0.0.0:7002" },
			`cluster.peers[2].raft_addr "0.0.0.0:7002" is invalid: the host is unspecified`},
		{"peer addr bad host", func(c *Config) { c.Cluster.Peers[2].RaftAddr = "bad host:7002" },
			`cluster.peers[2].raft_addr "bad host:7002" is invalid: the host "bad host" is neither an IP address nor a valid host name`},
		{"single node derived from wildcard bind", func(c *Config) {
			c.RaftBindAddr = "0.0.0.0:7000"
			c.Cluster.Peers = Peers{c.selfFromBindAddrs()}
		}, `list cluster.peers explicitly`},

		// bind addresses
		{"raft bind port 0", func(c *Config) { c.RaftBindAddr = "127.0.0.1:0" },
			`raft_bind_addr "127.0.0.1:0" is invalid: the port 0 is outside 1..65535`},
		{"grpc bind no port", func(c *Config) { c.GRPCBindAddr = "localhost" },
			`grpc_bind_addr "localhost" is invalid: want host:port`},
		{"health bind port too big", func(c *Config) { c.HealthBindAddr = "localhost:99999" },
			`health_bind_addr "localhost:99999" is invalid: the port 99999 is outside 1..65535`},
		{"health bind empty", func(c *Config) { c.HealthBindAddr = "" },
			`health_bind_addr "" is invalid`},
		{"wildcard bind port 0", func(c *Config) { c.GRPCBindAddr = ":0" },
			`grpc_bind_addr ":0" is invalid: the port 0 is outside 1..65535`},
		{"bind addrs collide", func(c *Config) { c.GRPCBindAddr = "127.0.0.1:7000" },
			`grpc_bind_addr "127.0.0.1:7000" collides with raft_bind_addr "127.0.0.1:7000"`},
		{"bind addrs collide via wildcard", func(c *Config) { c.HealthBindAddr = "0.0.0.0:9000" },
			`health_bind_addr "0.0.0.0:9000" collides with grpc_bind_addr "127.0.0.1:9000"`},

		// data_dir
		{"empty data_dir", func(c *Config) { c.DataDir = "" }, "data_dir is empty"},
		{"blank data_dir", func(c *Config) { c.DataDir = "  " }, "data_dir is empty"},

		// durations
		{"zero heartbeat", func(c *Config) { c.Raft.HeartbeatTimeout = 0 }, "raft.heartbeat_timeout must be positive, got 0s"},
		{"negative election", func(c *Config) { c.Raft.ElectionTimeout = -time.Second }, "raft.election_timeout must be positive, got -1s"},
		{"zero leader lease", func(c *Config) { c.Raft.LeaderLeaseTimeout = 0 }, "raft.leader_lease_timeout must be positive, got 0s"},
		{"zero commit", func(c *Config) { c.Raft.CommitTimeout = 0 }, "raft.commit_timeout must be positive, got 0s"},
		{"zero snapshot interval", func(c *Config) { c.Raft.SnapshotInterval = 0 }, "raft.snapshot_interval must be positive, got 0s"},
		{"negative apply", func(c *Config) { c.Raft.ApplyTimeout = -time.Millisecond }, "raft.apply_timeout must be positive, got -1ms"},
		{"zero shutdown", func(c *Config) { c.ShutdownTimeout = 0 }, "shutdown_timeout must be positive, got 0s"},
		{"zero stream heartbeat", func(c *Config) { c.FollowerStreamHeartbeat = 0 }, "follower_stream_heartbeat must be positive, got 0s"},
		{"negative stream cutoff", func(c *Config) { c.FollowerStreamCutoff = -time.Second }, "follower_stream_cutoff must be positive, got -1s"},
		{"negative fanout coalesce", func(c *Config) { c.FanoutCoalesce = -time.Millisecond }, "fanout_coalesce must be between 0 and 1s, got -1ms"},
		{"fanout coalesce too long", func(c *Config) { c.FanoutCoalesce = 2 * time.Second }, "fanout_coalesce must be between 0 and 1s, got 2s"},
		{"heartbeat below raft minimum", func(c *Config) {
			c.Raft.HeartbeatTimeout = time.Millisecond
			c.Raft.LeaderLeaseTimeout = time.Millisecond
		}, "raft.heartbeat_timeout must be at least 5ms (hashicorp/raft minimum), got 1ms"},
		{"commit below raft minimum", func(c *Config) { c.Raft.CommitTimeout = time.Microsecond },
			"raft.commit_timeout must be at least 1ms (hashicorp/raft minimum), got 1µs"},
		{"lease above heartbeat", func(c *Config) { c.Raft.LeaderLeaseTimeout = 2 * time.Second },
			"raft.leader_lease_timeout 2s must not exceed raft.heartbeat_timeout 300ms"},
		{"election below heartbeat", func(c *Config) {
			c.Raft.HeartbeatTimeout = time.Second
			c.Raft.ElectionTimeout = 900 * time.Millisecond
		}, "raft.election_timeout 900ms must not be below raft.heartbeat_timeout 1s"},

		// counts and sizes
		{"max_append_entries 0", func(c *Config) { c.Raft.MaxAppendEntries = 0 },
			"raft.max_append_entries must be between 1 and 1024, got 0"},
		{"max_append_entries 1025", func(c *Config) { c.Raft.MaxAppendEntries = 1025 },
			"raft.max_append_entries must be between 1 and 1024, got 1025"},
		{"snapshot_threshold 0", func(c *Config) { c.Raft.SnapshotThreshold = 0 },
			"raft.snapshot_threshold must be greater than 0"},
		{"max_payload_bytes 0", func(c *Config) { c.Limits.MaxPayloadBytes = 0 },
			"limits.max_payload_bytes must be between 1 and 16777216 (16 MiB), got 0"},
		{"max_payload_bytes negative", func(c *Config) { c.Limits.MaxPayloadBytes = -5 },
			"limits.max_payload_bytes must be between 1 and 16777216 (16 MiB), got -5"},
		{"max_payload_bytes too big", func(c *Config) { c.Limits.MaxPayloadBytes = 16<<20 + 1 },
			"limits.max_payload_bytes must be between 1 and 16777216 (16 MiB), got 16777217"},

		// log level
		{"unknown log level", func(c *Config) { c.LogLevel = "verbose" },
			`log_level "verbose" is unknown; use one of debug, info, warn, error`},
		{"upper-case log level", func(c *Config) { c.LogLevel = "INFO" }, `log_level "INFO" is unknown`},
		{"empty log level", func(c *Config) { c.LogLevel = "" }, `log_level "" is unknown`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := validConfig()
			tt.mutate(&c)
			err := c.Validate()
			if err == nil {
				t.Fatalf("Validate() = nil, want error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %q\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

func TestValidateJoinsAllProblems(t *testing.T) {
	t.Parallel()
	c := validConfig()
	c.DataDir = ""
	c.LogLevel = "loud"
	c.Raft.SnapshotThreshold = 0
	c.Cluster.Peers = c.Cluster.Peers[:2]
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want errors")
	}
	msg := err.Error()
	for _, want := range []string{
		"data_dir is empty",
		`log_level "loud" is unknown`,
		"raft.snapshot_threshold must be greater than 0",
		"cluster.peers has 2 voters",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("Validate() = %q\nmissing %q", msg, want)
		}
	}
	if n := len(strings.Split(msg, "\n")); n != 4 {
		t.Errorf("Validate() reported %d lines, want 4:\n%s", n, msg)
	}
}

func TestSelfAndPeer(t *testing.T) {
	t.Parallel()
	c := validConfig()
	c.NodeID = "node2"
	if got, want := c.Self(), threePeers[1]; got != want {
		t.Errorf("Self() = %+v, want %+v", got, want)
	}
	if p, ok := c.Peer("node3"); !ok || p != threePeers[2] {
		t.Errorf("Peer(node3) = %+v, %v; want %+v, true", p, ok, threePeers[2])
	}
	if p, ok := c.Peer("node9"); ok || p != (Peer{}) {
		t.Errorf("Peer(node9) = %+v, %v; want zero, false", p, ok)
	}
	c.NodeID = "ghost"
	if got := c.Self(); got != (Peer{}) {
		t.Errorf("Self() for absent node = %+v, want zero Peer", got)
	}
}

func TestLoadDistFile(t *testing.T) {
	t.Parallel()
	cfg, err := Load("../config.yaml.dist", true, map[string]string{})
	if err != nil {
		t.Fatalf("Load(config.yaml.dist) = %v", err)
	}
	if !reflect.DeepEqual(cfg.Cluster.Peers, threePeers) {
		t.Errorf("peers = %v, want %v", cfg.Cluster.Peers, threePeers)
	}
	want := Default()
	want.Cluster.Peers = threePeers
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("config.yaml.dist differs from the defaults plus three peers:\n got %+v\nwant %+v", cfg, want)
	}
	if self := cfg.Self(); self != threePeers[0] {
		t.Errorf("Self() = %+v, want %+v", self, threePeers[0])
	}
}

func TestLoadEnvOnly(t *testing.T) {
	t.Parallel()
	environ := map[string]string{
		"RAFTOGRAM_NODE_ID":                   "node3",
		"RAFTOGRAM_RAFT_BIND_ADDR":            "0.0.0.0:7002",
		"RAFTOGRAM_GRPC_BIND_ADDR":            "0.0.0.0:9002",
		"RAFTOGRAM_HEALTH_BIND_ADDR":          ":8082",
		"RAFTOGRAM_DATA_DIR":                  "/var/lib/raftogram",
		"RAFTOGRAM_CLUSTER_PEERS":             threePeersLine,
		"RAFTOGRAM_LOG_LEVEL":                 "warn",
		"RAFTOGRAM_SHUTDOWN_TIMEOUT":          "30s",
		"RAFTOGRAM_DEBUG_PPROF":               "true",
		"RAFTOGRAM_FORWARD_WRITES":            "true",
		"RAFTOGRAM_FOLLOWER_STREAM_HEARTBEAT": "250ms",
		"RAFTOGRAM_FOLLOWER_STREAM_CUTOFF":    "3s",
		"RAFTOGRAM_FANOUT_COALESCE":           "0s",
		"RAFTOGRAM_GRPC_REFLECTION":           "true",
		"RAFTOGRAM_MIN_FREE_BYTES":            "0",
		"RAFTOGRAM_READYZ_MAX_LAG":            "5000",
		"RAFTOGRAM_CONFIG":                    "/nonexistent/config.yaml", // read by main, ignored here
		"RAFTOGRAM_":                          "junk",                     // not a field: ignored
		"HOME":                                "/root",
	}
	path := filepath.Join(t.TempDir(), "config.yaml") // does not exist
	cfg, err := Load(path, false, environ)
	if err != nil {
		t.Fatalf("Load() = %v", err)
	}
	want := Default()
	want.NodeID = "node3"
	want.RaftBindAddr = "0.0.0.0:7002"
	want.GRPCBindAddr = "0.0.0.0:9002"
	want.HealthBindAddr = ":8082"
	want.DataDir = "/var/lib/raftogram"
	want.Cluster.Peers = threePeers
	want.LogLevel = "warn"
	want.ShutdownTimeout = 30 * time.Second
	want.DebugPprof = true
	want.ForwardWrites = true
	want.FollowerStreamHeartbeat = 250 * time.Millisecond
	want.FollowerStreamCutoff = 3 * time.Second
	want.FanoutCoalesce = 0
	want.GRPCReflection = true
	want.MinFreeBytes = 0
	want.ReadyzMaxLag = 5000
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("Load() =\n %+v\nwant\n %+v", cfg, want)
	}
	if cfg.Self() != threePeers[2] {
		t.Errorf("Self() = %+v", cfg.Self())
	}
}

func TestLoadEnvOverridesFile(t *testing.T) {
	t.Parallel()
	const file = "testdata/three_nodes.yaml"

	fromFile, err := Load(file, true, nil)
	if err != nil {
		t.Fatalf("Load(%s) = %v", file, err)
	}
	if fromFile.NodeID != "node2" || fromFile.DataDir != "./data/node2" || fromFile.Limits.MaxPayloadBytes != 4096 ||
		fromFile.LogLevel != "debug" || !reflect.DeepEqual(fromFile.Cluster.Peers, threePeers) {
		t.Fatalf("file values not loaded: %+v", fromFile)
	}

	fivePeers := "a=10.0.0.1:7000/10.0.0.1:9000,b=10.0.0.2:7000/10.0.0.2:9000,c=10.0.0.3:7000/10.0.0.3:9000," +
		"d=10.0.0.4:7000/10.0.0.4:9000,e=10.0.0.5:7000/10.0.0.5:9000"
	cfg, err := Load(file, true, map[string]string{
		"RAFTOGRAM_NODE_ID":                  "c",
		"RAFTOGRAM_DATA_DIR":                 "/data/c",
		"RAFTOGRAM_CLUSTER_PEERS":            fivePeers,
		"RAFTOGRAM_RAFT_HEARTBEAT_TIMEOUT":   "750ms",
		"RAFTOGRAM_RAFT_ELECTION_TIMEOUT":    "3s",
		"RAFTOGRAM_RAFT_MAX_APPEND_ENTRIES":  "64",
		"RAFTOGRAM_RAFT_SNAPSHOT_THRESHOLD":  "100",
		"RAFTOGRAM_LIMITS_MAX_PAYLOAD_BYTES": "65536",
		"RAFTOGRAM_LOG_LEVEL":                "", // set but empty: treated as unset
	})
	if err != nil {
		t.Fatalf("Load() = %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"node_id", cfg.NodeID, "c"},
		{"data_dir", cfg.DataDir, "/data/c"},
		{"peers", cfg.Cluster.Peers.String(), fivePeers},
		{"heartbeat", cfg.Raft.HeartbeatTimeout, 750 * time.Millisecond},
		{"election", cfg.Raft.ElectionTimeout, 3 * time.Second},
		{"max_append_entries", cfg.Raft.MaxAppendEntries, 64},
		{"snapshot_threshold", cfg.Raft.SnapshotThreshold, uint64(100)},
		{"max_payload", cfg.Limits.MaxPayloadBytes, 65536},
		{"log_level kept from file", cfg.LogLevel, "debug"},
		{"raft_bind_addr kept from file", cfg.RaftBindAddr, "127.0.0.1:7001"},
		{"leader lease kept from default", cfg.Raft.LeaderLeaseTimeout, 300 * time.Millisecond},
		{"self", cfg.Self(), Peer{NodeID: "c", RaftAddr: "10.0.0.3:7000", GRPCAddr: "10.0.0.3:9000"}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	want := Default()
	want.Cluster.Peers = Peers{{NodeID: "node1", RaftAddr: "127.0.0.1:7000", GRPCAddr: "127.0.0.1:9000"}}
	tests := []struct {
		name    string
		path    string
		environ map[string]string
	}{
		{"missing default file, nil env", filepath.Join(t.TempDir(), "config.yaml"), nil},
		{"missing default file, empty env", "does-not-exist.yaml", map[string]string{}},
		{"no path", "", map[string]string{"UNRELATED": "x"}},
		{"comment-only file", "testdata/empty.yaml", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := Load(tt.path, false, tt.environ)
			if err != nil {
				t.Fatalf("Load() = %v", err)
			}
			if !reflect.DeepEqual(cfg, want) {
				t.Fatalf("Load() = %+v\nwant %+v", cfg, want)
			}
			if cfg.NodeID != "node1" || cfg.DataDir != "./data/node1" || len(cfg.Cluster.Peers) != 1 {
				t.Fatalf("not the single-node default: %+v", cfg)
			}
		})
	}
}

func TestLoadSingleNodeFollowsEnvBindAddrs(t *testing.T) {
	t.Parallel()
	cfg, err := Load("", false, map[string]string{
		"RAFTOGRAM_NODE_ID":        "solo",
		"RAFTOGRAM_RAFT_BIND_ADDR": "10.1.2.3:7100",
		"RAFTOGRAM_GRPC_BIND_ADDR": "10.1.2.3:9100",
	})
	if err != nil {
		t.Fatalf("Load() = %v", err)
	}
	want := Peers{{NodeID: "solo", RaftAddr: "10.1.2.3:7100", GRPCAddr: "10.1.2.3:9100"}}
	if !reflect.DeepEqual(cfg.Cluster.Peers, want) {
		t.Fatalf("peers = %v, want %v", cfg.Cluster.Peers, want)
	}
}

// TestLoadIgnoresProcessEnvironment must not run in parallel: it uses t.Setenv.
func TestLoadIgnoresProcessEnvironment(t *testing.T) {
	t.Setenv("RAFTOGRAM_NODE_ID", "from-os")
	t.Setenv("RAFTOGRAM_LOG_LEVEL", "nonsense")
	cfg, err := Load("", false, nil)
	if err != nil {
		t.Fatalf("Load() = %v", err)
	}
	if cfg.NodeID != "node1" {
		t.Fatalf("NodeID = %q: the process environment leaked in", cfg.NodeID)
	}
}

func TestLoadFiles(t *testing.T) {
	t.Parallel()
	t.Run("partial file keeps defaults", func(t *testing.T) {
		t.Parallel()
		cfg, err := Load("testdata/partial.yaml", true, nil)
		if err != nil {
			t.Fatalf("Load() = %v", err)
		}
		want := Default()
		want.Raft.HeartbeatTimeout = 2 * time.Second
		want.Raft.ElectionTimeout = 3 * time.Second
		want.LogLevel = "warn"
		want.Cluster.Peers = Peers{want.selfFromBindAddrs()}
		if !reflect.DeepEqual(cfg, want) {
			t.Fatalf("Load() = %+v\nwant %+v", cfg, want)
		}
	})
	t.Run("peers as a one-line YAML string", func(t *testing.T) {
		t.Parallel()
		cfg, err := Load("testdata/peers_string.yaml", true, nil)
		if err != nil {
			t.Fatalf("Load() = %v", err)
		}
		want := "a=10.0.0.1:7000/10.0.0.1:9000,b=10.0.0.2:7000/10.0.0.2:9000,c=10.0.0.3:7000/10.0.0.3:9000"
		if got := cfg.Cluster.Peers.String(); got != want {
			t.Fatalf("peers = %q, want %q", got, want)
		}
	})
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	tests := []struct {
		name     string
		path     string
		explicit bool
		environ  map[string]string
		want     []string
		is       error
	}{
		{name: "missing explicit file", path: missing, explicit: true,
			want: []string{"config: read config file", missing}, is: fs.ErrNotExist},
		{name: "explicit empty path", path: "", explicit: true, want: []string{"config file path is empty"}},
		{name: "directory as file", path: "testdata", explicit: false, want: []string{`read config file "testdata"`}},
		{name: "unknown nested key", path: "testdata/unknown_key.yaml",
			want: []string{"testdata/unknown_key.yaml", "line 4", "bogus_key"}},
		{name: "unknown top-level key", path: "testdata/unknown_top_key.yaml",
			want: []string{"testdata/unknown_top_key.yaml", "line 2", "nodeid"}},
		{name: "syntax error", path: "testdata/bad_yaml.yaml", want: []string{`parse config file "testdata/bad_yaml.yaml"`}},
		{name: "two documents", path: "testdata/two_docs.yaml", want: []string{"line 2", "second YAML document"}},
		{name: "integer duration", path: "testdata/int_duration.yaml", want: []string{"line 2", "time.Duration"}},
		{name: "invalid file content", path: "testdata/even_peers.yaml", explicit: true,
			want: []string{`config file "testdata/even_peers.yaml"`, "cluster.peers has 2 voters; a Raft cluster needs an odd number"}},
		{name: "env makes it invalid", path: "testdata/three_nodes.yaml",
			environ: map[string]string{"RAFTOGRAM_NODE_ID": "node7"},
			want:    []string{`node_id "node7" is not among cluster.peers`}},
		{name: "env bad duration", path: "testdata/three_nodes.yaml",
			environ: map[string]string{"RAFTOGRAM_RAFT_HEARTBEAT_TIMEOUT": "soon"},
			want:    []string{`RAFTOGRAM_RAFT_HEARTBEAT_TIMEOUT="soon"`, "invalid duration"}},
		{name: "env bad int", environ: map[string]string{"RAFTOGRAM_LIMITS_MAX_PAYLOAD_BYTES": "1MiB"},
			want: []string{`RAFTOGRAM_LIMITS_MAX_PAYLOAD_BYTES="1MiB"`}},
		{name: "env negative uint", environ: map[string]string{"RAFTOGRAM_RAFT_TRAILING_LOGS": "-1"},
			want: []string{`RAFTOGRAM_RAFT_TRAILING_LOGS="-1"`}},
		{name: "env malformed peers", environ: map[string]string{
			"RAFTOGRAM_CLUSTER_PEERS": "node1=127.0.0.1:7000/127.0.0.1:9000,node2=127.0.0.1:7001"},
			want: []string{"RAFTOGRAM_CLUSTER_PEERS=", `peer entry 2 "node2=127.0.0.1:7001" has 0 "/" separators`}},
		{name: "env two peers", environ: map[string]string{
			"RAFTOGRAM_CLUSTER_PEERS": "node1=127.0.0.1:7000/127.0.0.1:9000,node2=127.0.0.1:7001/127.0.0.1:9001"},
			want: []string{"no config file", "cluster.peers has 2 voters"}},
		{name: "env port 0 bind", environ: map[string]string{"RAFTOGRAM_GRPC_BIND_ADDR": "127.0.0.1:0"},
			want: []string{`grpc_bind_addr "127.0.0.1:0" is invalid`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := Load(tt.path, tt.explicit, tt.environ)
			if err == nil {
				t.Fatalf("Load() = %+v, nil; want an error", cfg)
			}
			if !reflect.DeepEqual(cfg, Config{}) {
				t.Errorf("Load() returned a non-zero Config with the error: %+v", cfg)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Load() error = %q\nwant it to contain %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "config: ") {
				t.Errorf("error %q lacks the config: prefix", err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
		})
	}
}

func TestPeersRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		peers Peers
		line  string
	}{
		{"three", threePeers, threePeersLine},
		{"one", Peers{{NodeID: "solo", RaftAddr: "localhost:7000", GRPCAddr: "localhost:9000"}}, "solo=localhost:7000/localhost:9000"},
		{"ipv6 and host names", Peers{
			{NodeID: "a", RaftAddr: "[::1]:7000", GRPCAddr: "[fe80::1%eth0]:9000"},
			{NodeID: "b.2", RaftAddr: "raft-b.example.com:7000", GRPCAddr: "grpc-b.example.com:9000"},
			{NodeID: "C_3", RaftAddr: "10.0.0.3:7000", GRPCAddr: "10.0.0.3:9000"},
		}, "a=[::1]:7000/[fe80::1%eth0]:9000,b.2=raft-b.example.com:7000/grpc-b.example.com:9000,C_3=10.0.0.3:7000/10.0.0.3:9000"},
		{"peer gRPC addresses (containers)", Peers{
			{NodeID: "node1", RaftAddr: "node1:7000", GRPCAddr: "127.0.0.1:9000", PeerGRPCAddr: "node1:9000"},
			{NodeID: "node2", RaftAddr: "node2:7001", GRPCAddr: "127.0.0.1:9001"},
		}, "node1=node1:7000/127.0.0.1:9000/node1:9000,node2=node2:7001/127.0.0.1:9001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.peers.String(); got != tt.line {
				t.Fatalf("String() = %q, want %q", got, tt.line)
			}
			var back Peers
			if err := back.UnmarshalText([]byte(tt.line)); err != nil {
				t.Fatalf("UnmarshalText(%q) = %v", tt.line, err)
			}
			if !reflect.DeepEqual(back, tt.peers) {
				t.Fatalf("UnmarshalText(String()) = %v, want %v", back, tt.peers)
			}
		})
	}
}

func TestPeersUnmarshalText(t *testing.T) {
	t.Parallel()
	t.Run("whitespace is trimmed", func(t *testing.T) {
		t.Parallel()
		in := "  node1 = 127.0.0.1:7000 / 127.0.0.1:9000 ,\n\tnode2=127.0.0.1:7001/127.0.0.1:9001 , node3=127.0.0.1:7002/127.0.0.1:9002\n"
		var p Peers
		if err := p.UnmarshalText([]byte(in)); err != nil {
			t.Fatalf("UnmarshalText() = %v", err)
		}
		if !reflect.DeepEqual(p, threePeers) {
			t.Fatalf("UnmarshalText() = %v, want %v", p, threePeers)
		}
	})
	t.Run("empty text gives an empty list", func(t *testing.T) {
		t.Parallel()
		p := Peers{{NodeID: "x", RaftAddr: "a:1", GRPCAddr: "b:2"}}
		if err := p.UnmarshalText([]byte("  ")); err != nil || len(p) != 0 {
			t.Fatalf("UnmarshalText(blank) = %v, %v; want empty, nil", p, err)
		}
		if got := Peers(nil).String(); got != "" {
			t.Fatalf("empty String() = %q", got)
		}
	})

	malformed := []struct {
		in, want string
	}{
		{"node1", `peer entry 1 "node1" has no "="`},
		{"node1=127.0.0.1:7000/127.0.0.1:9000,node2", `peer entry 2 "node2" has no "="`},
		{"=127.0.0.1:7000/127.0.0.1:9000", `peer entry 1 "=127.0.0.1:7000/127.0.0.1:9000" has an empty node_id`},
		{"node1=127.0.0.1:7000", `peer entry 1 "node1=127.0.0.1:7000" has 0 "/" separators, need 1 or 2`},
		{"node1=a:1/b:2/c:3/d:4", `peer entry 1 "node1=a:1/b:2/c:3/d:4" has 3 "/" separators, need 1 or 2`},
		{"node1=a:1/b:2/ ", `peer entry 1 "node1=a:1/b:2/" has an empty peer_grpc_addr`},
		{"node1=/127.0.0.1:9000", `peer entry 1 "node1=/127.0.0.1:9000" has an empty raft_addr`},
		{"node1=127.0.0.1:7000/ ", `peer entry 1 "node1=127.0.0.1:7000/" has an empty grpc_addr`},
		{"node1=a:1/b:2,,node3=e:5/f:6", "peer entry 2 is empty"},
		{"node1=a:1/b:2,", "peer entry 2 is empty"},
		{",node1=a:1/b:2", "peer entry 1 is empty"},
		{"node1:127.0.0.1:7000:127.0.0.1:9000", `peer entry 1 "node1:127.0.0.1:7000:127.0.0.1:9000" has no "="`},
	}
	for _, tt := range malformed {
		t.Run("malformed "+tt.in, func(t *testing.T) {
			t.Parallel()
			p := Peers{{NodeID: "keep", RaftAddr: "a:1", GRPCAddr: "b:2"}}
			before := append(Peers(nil), p...)
			err := p.UnmarshalText([]byte(tt.in))
			if err == nil {
				t.Fatalf("UnmarshalText(%q) = nil, want error", tt.in)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("UnmarshalText(%q) = %q\nwant it to contain %q", tt.in, err, tt.want)
			}
			if !strings.Contains(err.Error(), "node_id=raft_addr/grpc_addr") {
				t.Errorf("error %q does not show the expected format", err)
			}
			if !reflect.DeepEqual(p, before) {
				t.Errorf("UnmarshalText modified the receiver on error: %v", p)
			}
		})
	}
}

// TestLoadEnvSecurity sets every tls and auth scalar by environment alone,
// including the variables whose Go field names repeat across sections
// (TLS.KeyFile and Auth.JWT.KeyFile, TLS.ClientCerts and Auth.ClientCerts).
func TestLoadEnvSecurity(t *testing.T) {
	t.Parallel()
	environ := map[string]string{
		"RAFTOGRAM_CLUSTER_PEERS":                       threePeersLine,
		"RAFTOGRAM_TLS_CA_FILE":                         "/secure/ca.pem",
		"RAFTOGRAM_TLS_CERT_FILE":                       "/secure/node1.pem",
		"RAFTOGRAM_TLS_KEY_FILE":                        "/secure/node1-key.pem",
		"RAFTOGRAM_TLS_CLIENT_CA_FILE":                  "/secure/clients.pem",
		"RAFTOGRAM_TLS_CLIENT_CERTS":                    "require",
		"RAFTOGRAM_TLS_HEALTH":                          "true",
		"RAFTOGRAM_TLS_RELOAD_INTERVAL":                 "3s",
		"RAFTOGRAM_AUTH_RULES_FILE":                     "/secure/rules.yaml",
		"RAFTOGRAM_AUTH_CLIENT_CERTS":                   "true",
		"RAFTOGRAM_AUTH_JWT_KEY_FILE":                   "/secure/jwt.pub",
		"RAFTOGRAM_AUTH_JWT_ALGORITHM":                  "EdDSA",
		"RAFTOGRAM_AUTH_JWT_ISSUER":                     "iss",
		"RAFTOGRAM_AUTH_JWT_AUDIENCE":                   "aud",
		"RAFTOGRAM_AUTH_JWT_PRINCIPAL_CLAIM":            "email",
		"RAFTOGRAM_AUTH_JWT_ROLES_CLAIM":                "groups",
		"RAFTOGRAM_LIMITS_MAX_STREAMS":                  "7",
		"RAFTOGRAM_LIMITS_IDLE_CONNECTION_TIMEOUT":      "1m",
		"RAFTOGRAM_LIMITS_MAX_SUBSCRIBER_BACKLOG_BYTES": "2097152",
		"RAFTOGRAM_LIMITS_MAX_FANOUT_WINDOW_BYTES":      "1000",
		"RAFTOGRAM_LIMITS_MAX_LOG_CACHE_BYTES":          "2000",
		"RAFTOGRAM_LIMITS_MAX_PUBLISH_INFLIGHT":         "64",
		"RAFTOGRAM_LIMITS_MAX_PUBLISH_INFLIGHT_BYTES":   "3000",
	}
	cfg, err := Load("", false, environ)
	if err != nil {
		t.Fatalf("Load() = %v", err)
	}
	wantTLS := TLS{CAFile: "/secure/ca.pem", CertFile: "/secure/node1.pem", KeyFile: "/secure/node1-key.pem",
		ClientCAFile: "/secure/clients.pem", ClientCerts: "require", Health: true, ReloadInterval: 3 * time.Second}
	if cfg.TLS != wantTLS {
		t.Errorf("TLS = %+v\nwant %+v", cfg.TLS, wantTLS)
	}
	wantJWT := JWT{VerifyKeyFile: "/secure/jwt.pub", Algorithm: "EdDSA", Issuer: "iss", Audience: "aud", PrincipalClaim: "email", RolesClaim: "groups"}
	if cfg.Auth.RulesFile != "/secure/rules.yaml" || !cfg.Auth.CertAuth || cfg.Auth.JWT != wantJWT {
		t.Errorf("Auth = %+v", cfg.Auth)
	}
	if cfg.Limits.MaxStreams != 7 || cfg.Limits.IdleConnectionTimeout != time.Minute || cfg.Limits.MaxSubscriberBacklogBytes != 2<<20 ||
		cfg.Limits.MaxFanoutWindowBytes != 1000 || cfg.Limits.MaxLogCacheBytes != 2000 ||
		cfg.Limits.MaxPublishInflight != 64 || cfg.Limits.MaxPublishInflightBytes != 3000 {
		t.Errorf("Limits = %+v", cfg.Limits)
	}
}
