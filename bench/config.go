package bench

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/raftogram/raftogram/client"
	"google.golang.org/grpc"
)

// Workloads.
const (
	// WorkloadSend: every op is a SendMessage to a random channel.
	WorkloadSend = "send"
	// WorkloadRead: every op is a ReadHistory of ReadLimit messages at a
	// random offset of a channel preloaded with History messages.
	WorkloadRead = "read"
	// WorkloadSubscribe: Subscribers streams follow the channels while the
	// clients send (usually at a -rate); every delivery is checked and timed.
	WorkloadSubscribe = "subscribe"
	// WorkloadMixed: the clients send and read (ReadFraction of the ops are
	// reads) while Subscribers follow the channels.
	WorkloadMixed = "mixed"
	// WorkloadPublish: every client is a client.Publisher keeping Inflight
	// messages in flight on one Publish stream, each to a random channel;
	// an op is one message, from PublishAsync to its acknowledgement.
	WorkloadPublish = "publish"
)

// Workloads lists the workload names.
var Workloads = []string{WorkloadSend, WorkloadRead, WorkloadSubscribe, WorkloadMixed, WorkloadPublish}

// DefaultInflight is Config.Inflight's default: the server's default
// Publish window (limits.max_publish_inflight).
const DefaultInflight = 256

// stampBytes is the size of the send timestamp at the start of a payload.
const stampBytes = 8

// Config is one run.
type Config struct {
	Addrs    []string      // gRPC addresses of the nodes; any one will do
	Workload string        // one of Workloads
	Clients  int           // concurrent clients (goroutines) issuing ops
	Conns    int           // gRPC connections per node that the clients and subscribers share
	Channels int           // channels the ops are spread over (uniformly at random)
	Payload  int           // payload bytes per message
	Duration time.Duration // measured window (ignored when N > 0)
	N        int64         // measured ops in total; overrides Duration when > 0
	Warmup   time.Duration // unmeasured time before the measured window
	Rate     float64       // total ops/s over all clients; 0 = closed loop

	Label         string // copied to the result
	ChannelPrefix string // channel ids are <prefix>-<i>; empty = bench-<time>-<random>

	Subscribers  int     // subscribe/mixed: streams; 0 = one per channel
	History      int     // read/mixed: messages preloaded per channel
	ReadLimit    int     // messages asked per ReadHistory
	ReadFraction float64 // mixed: share of the clients' ops that are reads
	Inflight     int     // publish: messages each client keeps in flight; 0 = DefaultInflight
	// Consistency is the level of reads and subscriptions: "leader" (the
	// default: the leader serves them all), "linearizable", "at-least" or
	// "local"; at every level but leader they are spread round-robin over
	// the nodes.
	Consistency string

	AttemptTimeout time.Duration // one RPC attempt
	OpTimeout      time.Duration // one op including its retries; then it counts as failed
	DrainTimeout   time.Duration // subscribe/mixed: how long to wait for subscribers after the last send
	SetupTimeout   time.Duration // finding the leader, creating channels, preloading, subscribing

	ServerPIDs []int // server processes whose CPU use is reported (Linux)
	// MetricsURLs are the nodes' /metrics URLs, scraped at the start and
	// end of the measured window for the write-stage breakdown (stages.go).
	MetricsURLs []string

	Progress         io.Writer     // a line per ProgressInterval; nil = none
	ProgressInterval time.Duration // default 1s

	DialOptions []grpc.DialOption // added to the client's (tests dial over bufconn)
}

// DefaultConfig is the configuration `raftogram bench` starts from.
func DefaultConfig() Config {
	return Config{
		Addrs:            []string{"127.0.0.1:9000", "127.0.0.1:9001", "127.0.0.1:9002"},
		Workload:         WorkloadSend,
		Clients:          64,
		Conns:            1,
		Channels:         64,
		Payload:          128,
		Duration:         10 * time.Second,
		Warmup:           2 * time.Second,
		History:          1000,
		ReadLimit:        100,
		ReadFraction:     0.5,
		Consistency:      "leader",
		AttemptTimeout:   10 * time.Second,
		OpTimeout:        30 * time.Second,
		DrainTimeout:     30 * time.Second,
		SetupTimeout:     2 * time.Minute,
		ProgressInterval: time.Second,
	}
}

// maxChannelIDLen is the server's limit on channel ids.
const maxChannelIDLen = 128

// Normalize checks cfg and fills in what is derived from the rest: the
// channel prefix when empty, one subscriber per channel for the subscribe
// and mixed workloads when Subscribers is 0, and the default timeouts. It
// is idempotent; Run calls it.
func (cfg *Config) Normalize() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(cfg.Addrs) == 0 {
		bad("no addresses")
	}
	switch cfg.Workload {
	case WorkloadSend, WorkloadRead, WorkloadSubscribe, WorkloadMixed, WorkloadPublish:
	default:
		bad("unknown workload %q (want send, read, subscribe, mixed or publish)", cfg.Workload)
	}
	switch {
	case cfg.Inflight < 0:
		bad("inflight must not be negative, got %d", cfg.Inflight)
	case cfg.Inflight == 0:
		cfg.Inflight = DefaultInflight
	}
	if cfg.Clients < 1 {
		bad("clients must be at least 1, got %d", cfg.Clients)
	}
	if cfg.Conns < 1 {
		bad("conns must be at least 1, got %d", cfg.Conns)
	}
	if cfg.Channels < 1 {
		bad("channels must be at least 1, got %d", cfg.Channels)
	}
	if cfg.Payload < 0 {
		bad("payload must not be negative, got %d", cfg.Payload)
	}
	if cfg.N < 0 {
		bad("n must not be negative, got %d", cfg.N)
	}
	if cfg.N == 0 && cfg.Duration <= 0 {
		bad("duration must be positive (or set n), got %v", cfg.Duration)
	}
	if cfg.Warmup < 0 {
		bad("warmup must not be negative, got %v", cfg.Warmup)
	}
	if cfg.Rate < 0 || math.IsNaN(cfg.Rate) || math.IsInf(cfg.Rate, 0) {
		bad("rate must be a non-negative number, got %v", cfg.Rate)
	}
	if cfg.Subscribers < 0 {
		bad("subscribers must not be negative, got %d", cfg.Subscribers)
	}
	if cfg.History < 0 {
		bad("history must not be negative, got %d", cfg.History)
	}
	if cfg.ReadLimit < 1 || cfg.ReadLimit > 1000 {
		bad("read limit must be 1..1000, got %d", cfg.ReadLimit)
	}
	if cfg.ReadFraction < 0 || cfg.ReadFraction > 1 || math.IsNaN(cfg.ReadFraction) {
		bad("read fraction must be within 0..1, got %v", cfg.ReadFraction)
	}
	if cfg.Consistency == "" {
		cfg.Consistency = "leader"
	}
	if c, err := client.ParseConsistency(cfg.Consistency); err != nil || c == client.ConsistencyDefault {
		bad("unknown consistency %q (want leader, linearizable, at-least or local)", cfg.Consistency)
	}
	if cfg.Workload == WorkloadRead && cfg.History < 1 {
		bad("the read workload needs history >= 1 (messages preloaded per channel)")
	}
	subscribing := cfg.Workload == WorkloadSubscribe || cfg.Workload == WorkloadMixed
	if subscribing && cfg.Payload < stampBytes {
		bad("the %s workload needs payload >= %d bytes (the send time travels in the payload)", cfg.Workload, stampBytes)
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"attempt timeout", &cfg.AttemptTimeout, 10 * time.Second},
		{"op timeout", &cfg.OpTimeout, 30 * time.Second},
		{"drain timeout", &cfg.DrainTimeout, 30 * time.Second},
		{"setup timeout", &cfg.SetupTimeout, 2 * time.Minute},
		{"progress interval", &cfg.ProgressInterval, time.Second},
	} {
		switch {
		case *d.v == 0:
			*d.v = d.def
		case *d.v < 0:
			bad("%s must be positive, got %v", d.name, *d.v)
		}
	}
	if cfg.ChannelPrefix == "" {
		cfg.ChannelPrefix = DefaultChannelPrefix(time.Now())
	}
	if err := checkChannelPrefix(cfg.ChannelPrefix, cfg.Channels); err != nil {
		errs = append(errs, err)
	}
	if subscribing && cfg.Subscribers == 0 {
		cfg.Subscribers = cfg.Channels
	}
	if !subscribing {
		cfg.Subscribers = 0
	}
	if cfg.Conns > cfg.Clients && cfg.Conns > cfg.Subscribers {
		cfg.Conns = max(cfg.Clients, cfg.Subscribers)
	}
	return errors.Join(errs...)
}

// DefaultChannelPrefix is bench-<UTC time>-<random hex>, so reruns against
// the same cluster never share channels.
func DefaultChannelPrefix(now time.Time) string {
	return "bench-" + now.UTC().Format("20060102T150405") + "-" + randomHex(3)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// checkChannelPrefix checks that <prefix>-<i> is a valid channel id for
// every i < channels: 1-128 characters of [A-Za-z0-9._:-].
func checkChannelPrefix(prefix string, channels int) error {
	for i := 0; i < len(prefix); i++ {
		c := prefix[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return fmt.Errorf("channel prefix %q has a character outside [A-Za-z0-9._:-] at byte %d", prefix, i)
		}
	}
	if n := len(channelID(prefix, max(channels-1, 0))); n > maxChannelIDLen {
		return fmt.Errorf("channel prefix %q is too long: channel ids would be %d bytes, the maximum is %d", prefix, n, maxChannelIDLen)
	}
	return nil
}

func channelID(prefix string, i int) string { return fmt.Sprintf("%s-%d", prefix, i) }

// consistency is cfg.Consistency as the client's level (LeaderOnly when
// unknown; Normalize rejects unknown names).
func (cfg *Config) consistency() client.Consistency {
	c, err := client.ParseConsistency(cfg.Consistency)
	if err != nil || c == client.ConsistencyDefault {
		return client.LeaderOnly
	}
	return c
}
