package grpcapi

import (
	"context"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

// Budgets bound what clients may hold on a node (config limits.*), so a
// hostile or careless client meets a limit instead of exhausting memory.
type Budgets struct {
	// MaxMetadataBytes caps a call's metadata (headers).
	MaxMetadataBytes int
	// MaxStreamsPerConnection caps concurrent calls on one connection.
	MaxStreamsPerConnection int
	// MaxStreams caps concurrent server-streaming calls on the node
	// (Subscribe, Publish, health Watch).
	MaxStreams int
	// IdleConnectionTimeout closes a connection without calls.
	IdleConnectionTimeout time.Duration
	// ChannelCreatesPerSecond is the node's CreateChannel rate (and burst).
	ChannelCreatesPerSecond int
	// Now is the clock of the rate limit; time.Now when nil.
	Now func() time.Time
}

// ServerOptions returns the grpc.Server options enforcing b. They replace
// the keepalive parameters of [ServerOptions] (same ping settings, plus the
// idle timeout), so pass them after it.
func (b Budgets) ServerOptions() []grpc.ServerOption {
	now := b.Now
	if now == nil {
		now = time.Now
	}
	streams := make(chan struct{}, b.MaxStreams)
	creates := &tokenBucket{rate: float64(b.ChannelCreatesPerSecond), burst: float64(b.ChannelCreatesPerSecond), now: now}
	return []grpc.ServerOption{
		grpc.MaxHeaderListSize(uint32(b.MaxMetadataBytes)),
		grpc.MaxConcurrentStreams(uint32(b.MaxStreamsPerConnection)),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: keepaliveTime, Timeout: keepaliveTimeout, MaxConnectionIdle: b.IdleConnectionTimeout}),
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if strings.HasSuffix(info.FullMethod, "/CreateChannel") && !creates.take() {
				return nil, status.Errorf(codes.ResourceExhausted, "too many channels created on this node: at most %d per second (limits.channel_creates_per_second); retry later", b.ChannelCreatesPerSecond)
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if !info.IsServerStream {
				return h(srv, ss)
			}
			select {
			case streams <- struct{}{}:
				defer func() { <-streams }()
				return h(srv, ss)
			default:
				return status.Errorf(codes.ResourceExhausted, "too many streams on this node: at most %d (limits.max_streams); retry later or on another node", b.MaxStreams)
			}
		}),
	}
}

// tokenBucket is a rate limit: rate tokens per second, at most burst held.
type tokenBucket struct {
	rate, burst float64
	now         func() time.Time

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// take spends a token and reports whether there was one.
func (t *tokenBucket) take() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if t.last.IsZero() {
		t.tokens = t.burst
	} else {
		t.tokens = min(t.burst, t.tokens+now.Sub(t.last).Seconds()*t.rate)
	}
	t.last = now
	if t.tokens < 1 {
		return false
	}
	t.tokens--
	return true
}
