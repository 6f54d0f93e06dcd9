package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// nodeIDPattern is the accepted shape of node_id and of every peer id.
const nodeIDPattern = `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`

// maxPayloadLimit is the largest value accepted for limits.max_payload_bytes
// (16 MiB).
const maxPayloadLimit = 16 << 20

// maxFanoutCoalesce bounds fanout_coalesce: a longer wait would be a delay,
// not a coalescing window.
const maxFanoutCoalesce = time.Second

var (
	nodeIDRe   = regexp.MustCompile(nodeIDPattern)
	hostnameRe = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?$`)
)

// logLevels are the accepted log_level values, in display order.
var logLevels = []string{"debug", "info", "warn", "error"}

// Validate checks c without touching the disk or the network and returns nil
// when it is usable, otherwise every problem found joined with errors.Join
// (one line each, naming the YAML key and the offending value). It reports:
//
//   - node_id empty, not matching ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$, or not
//     among cluster.peers;
//   - cluster.peers empty, or holding an even number of voters;
//   - a peer id that is empty, malformed or duplicated;
//   - a peer raft_addr/grpc_addr that is not host:port with a numeric port in
//     1..65535, has an empty or unspecified (0.0.0.0, ::) host, or repeats
//     another peer address (raft or grpc);
//   - a bind address (raft/grpc/health) that is not host:port with a numeric
//     port in 1..65535 (an empty host or 0.0.0.0/:: is fine), or that
//     collides with another bind address;
//   - an empty data_dir;
//   - a non-positive duration (raft.* timeouts and intervals,
//     shutdown_timeout, follower_stream_heartbeat, follower_stream_cutoff),
//     or Raft timings hashicorp/raft would refuse
//     (heartbeat/election/leader-lease/snapshot interval below 5ms, commit
//     timeout below 1ms, leader_lease_timeout above heartbeat_timeout,
//     election_timeout below heartbeat_timeout);
//   - fanout_coalesce outside 0..1s;
//   - raft.max_append_entries outside 1..1024, raft.snapshot_threshold 0;
//   - limits.max_payload_bytes outside 1..16777216, max_metadata_bytes
//     outside 1024..16777216, a non-positive max_connections,
//     max_streams_per_connection, max_streams, channel_creates_per_second,
//     max_fanout_window_bytes, max_log_cache_bytes or
//     idle_connection_timeout; max_subscriber_backlog_bytes below
//     max_payload_bytes;
//   - log_level other than debug, info, warn, error;
//   - tls: some but not all of ca_file, cert_file, key_file set;
//     client_certs other than none, verify_if_given, require; a
//     non-positive reload_interval;
//   - auth on without tls, auth.client_certs with tls.client_certs none,
//     an unknown auth.jwt.algorithm, roles or principals without a way to
//     authenticate (the rules themselves are checked by package auth);
//   - access_log_sample_rate outside 0..1.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}

	// node_id
	switch {
	case c.NodeID == "":
		add("node_id is empty")
	case !nodeIDRe.MatchString(c.NodeID):
		add("node_id %q is invalid: it must match %s", c.NodeID, nodeIDPattern)
	}

	// cluster.peers
	peers := c.Cluster.Peers
	switch n := len(peers); {
	case n == 0:
		add("cluster.peers is empty; at least one voter (this node) is required")
	case n%2 == 0:
		add("cluster.peers has %d voters; a Raft cluster needs an odd number", n)
	}
	ids := make(map[string]int, len(peers))
	addrs := make(map[string]string, 2*len(peers)) // address -> "cluster.peers[i].raft_addr"
	for i, p := range peers {
		field := fmt.Sprintf("cluster.peers[%d]", i)
		switch {
		case p.NodeID == "":
			add("%s.node_id is empty", field)
		case !nodeIDRe.MatchString(p.NodeID):
			add("%s.node_id %q is invalid: it must match %s", field, p.NodeID, nodeIDPattern)
		default:
			if j, dup := ids[p.NodeID]; dup {
				add("%s.node_id %q duplicates cluster.peers[%d].node_id", field, p.NodeID, j)
			} else {
				ids[p.NodeID] = i
			}
		}
		checks := []struct{ key, value string }{
			{field + ".raft_addr", p.RaftAddr},
			{field + ".grpc_addr", p.GRPCAddr},
		}
		if p.PeerGRPCAddr != "" && p.PeerGRPCAddr != p.GRPCAddr {
			checks = append(checks, struct{ key, value string }{field + ".peer_grpc_addr", p.PeerGRPCAddr})
		}
		for _, a := range checks {
			if err := checkAddr(a.value, false); err != nil {
				hint := ""
				if len(peers) == 1 && p.NodeID == c.NodeID && isUnspecifiedErr(err) {
					hint = " (the single-node peer list is derived from the bind addresses; list cluster.peers explicitly with a dialable address)"
				}
				add("%s %q is invalid: %v%s", a.key, a.value, err, hint)
				continue
			}
			if other, dup := addrs[a.value]; dup {
				add("%s %q duplicates %s", a.key, a.value, other)
				continue
			}
			addrs[a.value] = a.key
		}
	}
	if c.NodeID != "" && len(peers) > 0 {
		if _, ok := c.Peer(c.NodeID); !ok {
			known := make([]string, len(peers))
			for i, p := range peers {
				known[i] = strconv.Quote(p.NodeID)
			}
			add("node_id %q is not among cluster.peers (%s)", c.NodeID, strings.Join(known, ", "))
		}
	}

	// bind addresses
	type bind struct{ key, value, host, port string }
	var binds []bind
	for _, b := range []struct{ key, value string }{
		{"raft_bind_addr", c.RaftBindAddr},
		{"grpc_bind_addr", c.GRPCBindAddr},
		{"health_bind_addr", c.HealthBindAddr},
	} {
		if err := checkAddr(b.value, true); err != nil {
			add("%s %q is invalid: %v", b.key, b.value, err)
			continue
		}
		host, port, _ := net.SplitHostPort(b.value)
		for _, o := range binds {
			if o.port == port && (o.host == host || isWildcard(o.host) || isWildcard(host)) {
				add("%s %q collides with %s %q", b.key, b.value, o.key, o.value)
			}
		}
		binds = append(binds, bind{b.key, b.value, host, port})
	}

	// data_dir
	if strings.TrimSpace(c.DataDir) == "" {
		add("data_dir is empty")
	}

	// durations
	r := c.Raft
	for _, d := range []struct {
		key string
		val time.Duration
		min time.Duration // hashicorp/raft minimum, 0 if none
	}{
		{"raft.heartbeat_timeout", r.HeartbeatTimeout, 5 * time.Millisecond},
		{"raft.election_timeout", r.ElectionTimeout, 5 * time.Millisecond},
		{"raft.leader_lease_timeout", r.LeaderLeaseTimeout, 5 * time.Millisecond},
		{"raft.commit_timeout", r.CommitTimeout, time.Millisecond},
		{"raft.snapshot_interval", r.SnapshotInterval, 5 * time.Millisecond},
		{"raft.apply_timeout", r.ApplyTimeout, 0},
		{"shutdown_timeout", c.ShutdownTimeout, 0},
		{"follower_stream_heartbeat", c.FollowerStreamHeartbeat, 0},
		{"follower_stream_cutoff", c.FollowerStreamCutoff, 0},
		{"retention.expire_interval", c.Retention.ExpireInterval, 0},
	} {
		switch {
		case d.val <= 0:
			add("%s must be positive, got %s", d.key, d.val)
		case d.val < d.min:
			add("%s must be at least %s (hashicorp/raft minimum), got %s", d.key, d.min, d.val)
		}
	}
	if c.FanoutCoalesce < 0 || c.FanoutCoalesce > maxFanoutCoalesce {
		add("fanout_coalesce must be between 0 and %s, got %s", maxFanoutCoalesce, c.FanoutCoalesce)
	}
	if r.HeartbeatTimeout > 0 && r.LeaderLeaseTimeout > r.HeartbeatTimeout {
		add("raft.leader_lease_timeout %s must not exceed raft.heartbeat_timeout %s", r.LeaderLeaseTimeout, r.HeartbeatTimeout)
	}
	if r.ElectionTimeout > 0 && r.ElectionTimeout < r.HeartbeatTimeout {
		add("raft.election_timeout %s must not be below raft.heartbeat_timeout %s", r.ElectionTimeout, r.HeartbeatTimeout)
	}

	// retention: the same rules as a channel's own (domain.ValidateRetention)
	if a := c.Retention.MaxAge; a < 0 || a > 0 && a < time.Second {
		add("retention.max_age must be 0 (no limit) or at least 1s, got %s", a)
	}
	if c.Retention.MaxMessages > math.MaxInt64 || c.Retention.MaxBytes > math.MaxInt64 {
		add("retention.max_messages and retention.max_bytes must be at most %d", int64(math.MaxInt64))
	}
	if c.Retention.DedupHorizon < 0 {
		add("retention.dedup_horizon must not be negative, got %s", c.Retention.DedupHorizon)
	}

	// counts and sizes
	if r.MaxAppendEntries < 1 || r.MaxAppendEntries > 1024 {
		add("raft.max_append_entries must be between 1 and 1024, got %d", r.MaxAppendEntries)
	}
	if r.SnapshotThreshold == 0 {
		add("raft.snapshot_threshold must be greater than 0, got 0")
	}
	if c.Limits.MaxPayloadBytes < 1 || c.Limits.MaxPayloadBytes > maxPayloadLimit {
		add("limits.max_payload_bytes must be between 1 and %d (16 MiB), got %d", maxPayloadLimit, c.Limits.MaxPayloadBytes)
	}

	// log_level
	valid := false
	for _, l := range logLevels {
		if c.LogLevel == l {
			valid = true
			break
		}
	}
	if !valid {
		add("log_level %q is unknown; use one of %s", c.LogLevel, strings.Join(logLevels, ", "))
	}

	// limits beyond the payload
	if v := c.Limits.MaxMetadataBytes; v < 1024 || v > 16<<20 {
		add("limits.max_metadata_bytes must be 1024..16777216, got %d", v)
	}
	for _, l := range []struct {
		key string
		v   int
	}{{"max_connections", c.Limits.MaxConnections}, {"max_streams_per_connection", c.Limits.MaxStreamsPerConnection},
		{"max_streams", c.Limits.MaxStreams}, {"channel_creates_per_second", c.Limits.ChannelCreatesPerSecond},
		{"max_fanout_window_bytes", c.Limits.MaxFanoutWindowBytes}, {"max_log_cache_bytes", c.Limits.MaxLogCacheBytes},
		{"max_publish_inflight", c.Limits.MaxPublishInflight}, {"max_publish_inflight_bytes", c.Limits.MaxPublishInflightBytes}} {
		if l.v <= 0 {
			add("limits.%s must be positive, got %d", l.key, l.v)
		}
	}
	if v := c.Limits.MaxSubscriberBacklogBytes; v < c.Limits.MaxPayloadBytes {
		add("limits.max_subscriber_backlog_bytes must be at least limits.max_payload_bytes (%d), got %d", c.Limits.MaxPayloadBytes, v)
	}
	if c.Limits.IdleConnectionTimeout <= 0 {
		add("limits.idle_connection_timeout must be positive, got %s", c.Limits.IdleConnectionTimeout)
	}

	// tls: all or nothing, so a half-configured node never runs open.
	if t := c.TLS; t.Enabled() {
		for _, f := range []struct{ key, v string }{{"tls.ca_file", t.CAFile}, {"tls.cert_file", t.CertFile}, {"tls.key_file", t.KeyFile}} {
			if f.v == "" {
				add("%s is empty; tls needs ca_file, cert_file and key_file together", f.key)
			}
		}
	}
	switch c.TLS.ClientCerts {
	case ClientCertsNone, ClientCertsVerifyIfGiven, ClientCertsRequire:
	default:
		add("tls.client_certs %q is unknown; use one of %s, %s, %s", c.TLS.ClientCerts, ClientCertsNone, ClientCertsVerifyIfGiven, ClientCertsRequire)
	}
	if c.TLS.ReloadInterval <= 0 {
		add("tls.reload_interval must be positive, got %s", c.TLS.ReloadInterval)
	}

	// auth: never without tls (fail closed).
	if a := c.Auth; a.Enabled() {
		if !c.TLS.Enabled() {
			add("auth needs tls: set tls.ca_file, tls.cert_file and tls.key_file (tokens must not travel in clear, and peers prove who they are with their certificates)")
		}
		if c.TLS.ClientCerts == ClientCertsNone {
			add("auth needs tls.client_certs verify_if_given or require, not none: peers prove who they are with their certificates")
		}
		if a.JWT.VerifyKeyFile != "" {
			switch a.JWT.Algorithm {
			case "HS256", "RS256", "EdDSA":
			default:
				add("auth.jwt.algorithm %q is unknown; use HS256, RS256 or EdDSA", a.JWT.Algorithm)
			}
		}
	} else if len(c.Auth.Roles) > 0 || len(c.Auth.Principals) > 0 {
		add("auth.roles and auth.principals need a way to authenticate: auth.tokens, auth.rules_file, auth.jwt.key_file or auth.client_certs")
	}
	if r := c.AccessLogSampleRate; !(r >= 0 && r <= 1) {
		add("access_log_sample_rate must be between 0 and 1, got %v", r)
	}

	return errors.Join(errs...)
}

// Self returns this node's entry in Cluster.Peers (the one whose NodeID is
// c.NodeID), or the zero Peer when there is none.
func (c Config) Self() Peer {
	p, _ := c.Peer(c.NodeID)
	return p
}

// Peer returns the member of Cluster.Peers with the given id and true, or the
// zero Peer and false when no member has that id.
func (c Config) Peer(id string) (Peer, bool) {
	for _, p := range c.Cluster.Peers {
		if p.NodeID == id {
			return p, true
		}
	}
	return Peer{}, false
}

// errUnspecifiedHost marks a peer address whose host cannot be dialed.
var errUnspecifiedHost = errors.New("the host is unspecified (0.0.0.0 or ::), which other nodes cannot dial")

func isUnspecifiedErr(err error) bool { return errors.Is(err, errUnspecifiedHost) }

// isWildcard reports whether a bind host listens on every interface.
func isWildcard(host string) bool {
	if host == "" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsUnspecified()
}

// checkAddr checks that addr is host:port with a numeric port in 1..65535
// and a plausible host. Bind addresses may have an empty or unspecified host;
// peer (dial) addresses may not.
func checkAddr(addr string, bind bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port: %w", unwrapAddrErr(err))
	}
	if port == "" {
		return errors.New("the port is empty; want host:port with a port in 1..65535")
	}
	n, err := strconv.ParseUint(port, 10, 32)
	if err != nil {
		return fmt.Errorf("the port %q is not a number", port)
	}
	if n < 1 || n > 65535 {
		return fmt.Errorf("the port %d is outside 1..65535", n)
	}
	if host == "" {
		if bind {
			return nil
		}
		return errors.New("the host is empty; peers need a dialable host")
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.IsUnspecified() && !bind {
			return errUnspecifiedHost
		}
		return nil
	}
	if len(host) > 253 || !hostnameRe.MatchString(host) {
		return fmt.Errorf("the host %q is neither an IP address nor a valid host name", host)
	}
	return nil
}

// unwrapAddrErr drops the address echo from *net.AddrError (the caller already
// quotes the address).
func unwrapAddrErr(err error) error {
	var ae *net.AddrError
	if errors.As(err, &ae) {
		return errors.New(ae.Err)
	}
	return err
}
