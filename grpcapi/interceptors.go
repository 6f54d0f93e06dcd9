package grpcapi

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	middleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// The interceptor chain every gRPC call of a node runs through, outermost
// first:
//
//  1. per-RPC metrics (go-grpc-middleware's Prometheus provider) and
//     in-flight streams; acknowledged message writes;
//  2. the access log (log/slog), sampled;
//  3. panic recovery: a handler panic becomes codes.Internal and one ERROR
//     line with the stack, and the node keeps serving.
//
// Recovery is innermost, so the metrics and the access log see a panic as
// the Internal error the caller gets.
//
// Access log sampling (config access_log_sample_rate, 0..1): 0, the
// default, logs nothing. Above 0, a call that ended with a server fault
// (Unknown, Internal, DataLoss) is always logged, at WARN; any other call
// is logged at INFO with probability rate. Each line has method, code,
// latency, peer and, once authentication sets one (SetPrincipal), the
// principal.

// Metrics is what the interceptors report to (a *metrics.Metrics).
type Metrics interface {
	// UnaryInterceptor and StreamInterceptor count calls by method and
	// code and time them.
	UnaryInterceptor() grpc.UnaryServerInterceptor
	StreamInterceptor() grpc.StreamServerInterceptor
	// StreamStarted and StreamEnded bracket each streaming call.
	StreamStarted(service, method string)
	StreamEnded(service, method string)
	// WriteAcknowledged counts a message write answered OK after d.
	WriteAcknowledged(d time.Duration)
}

// InterceptorOptions configures Interceptors.
type InterceptorOptions struct {
	// Logger receives the access log and panic reports; nil discards them.
	Logger *slog.Logger
	// AccessLogSampleRate is the share (0..1) of calls the access log
	// records; 0 turns it off.
	AccessLogSampleRate float64
	// Metrics receives per-call measurements; nil records none.
	Metrics Metrics

	random func() float64 // [0,1); rand.Float64 when nil (tests set it)
}

// sendMessageMethod is the full name of the write raftogram_writes_total
// counts.
const sendMessageMethod = "/raftogram.v1.Messenger/SendMessage"

// Interceptors returns the server options that install the interceptor
// chain described above. Put them before ServerOptions' so they run
// outermost (chained interceptors run in the order they are added).
func Interceptors(opts InterceptorOptions) []grpc.ServerOption {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.random == nil {
		opts.random = rand.Float64
	}
	var unary []grpc.UnaryServerInterceptor
	var stream []grpc.StreamServerInterceptor
	if m := opts.Metrics; m != nil {
		unary = append(unary, m.UnaryInterceptor(), writesInterceptor(m))
		stream = append(stream, m.StreamInterceptor(), inflightInterceptor(m))
	}
	if opts.AccessLogSampleRate > 0 {
		al := accessLog{log: opts.Logger, rate: opts.AccessLogSampleRate, random: opts.random}
		unary = append(unary, al.unary)
		stream = append(stream, al.stream)
	}
	rec := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		method, _ := grpc.Method(ctx)
		opts.Logger.Error("grpc handler panicked; answered Internal", "method", method, "panic", p, "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	})
	unary = append(unary, recovery.UnaryServerInterceptor(rec))
	stream = append(stream, recovery.StreamServerInterceptor(rec))
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(unary...), grpc.ChainStreamInterceptor(stream...)}
}

// writesInterceptor reports every SendMessage this node answers OK to its
// caller. A write a follower forwarded is counted by that follower only.
func writesInterceptor(m Metrics) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if info.FullMethod != sendMessageMethod || forwarded(ctx) {
			return handler(ctx, req)
		}
		start := time.Now()
		resp, err := handler(ctx, req)
		if err == nil {
			m.WriteAcknowledged(time.Since(start))
		}
		return resp, err
	}
}

// inflightInterceptor brackets each stream with StreamStarted/StreamEnded.
func inflightInterceptor(m Metrics) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		service, method := splitMethod(info.FullMethod)
		m.StreamStarted(service, method)
		defer m.StreamEnded(service, method)
		return handler(srv, ss)
	}
}

// splitMethod splits "/pkg.Service/Method" into service and method.
func splitMethod(full string) (service, method string) {
	full = strings.TrimPrefix(full, "/")
	if i := strings.LastIndexByte(full, '/'); i >= 0 {
		return full[:i], full[i+1:]
	}
	return "unknown", full
}

// principalSlot carries the authenticated principal of a call from the
// interceptor that learns it back out to the access log.
type principalSlot struct{ name atomic.Pointer[string] }

type principalKey struct{}

// SetPrincipal records the authenticated principal of the call ctx belongs
// to, for the access log (authentication calls it). It does nothing when
// the access log is off.
func SetPrincipal(ctx context.Context, name string) {
	if s, ok := ctx.Value(principalKey{}).(*principalSlot); ok {
		s.name.Store(&name)
	}
}

// Principal returns the principal SetPrincipal recorded for the call ctx
// belongs to, or "" when none was.
func Principal(ctx context.Context) string {
	if s, ok := ctx.Value(principalKey{}).(*principalSlot); ok {
		if p := s.name.Load(); p != nil {
			return *p
		}
	}
	return ""
}

// accessLog writes one line per sampled call.
type accessLog struct {
	log    *slog.Logger
	rate   float64
	random func() float64
}

func (a accessLog) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	ctx = context.WithValue(ctx, principalKey{}, &principalSlot{})
	resp, err := handler(ctx, req)
	a.record(ctx, info.FullMethod, err, start)
	return resp, err
}

func (a accessLog) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	w := middleware.WrapServerStream(ss)
	w.WrappedContext = context.WithValue(ss.Context(), principalKey{}, &principalSlot{})
	err := handler(srv, w)
	a.record(w.WrappedContext, info.FullMethod, err, start)
	return err
}

// record logs the call if it is a server fault or sampled.
func (a accessLog) record(ctx context.Context, method string, err error, start time.Time) {
	code := status.Code(err)
	level := slog.LevelInfo
	switch code {
	case codes.Unknown, codes.Internal, codes.DataLoss:
		level = slog.LevelWarn
	default:
		if a.random() >= a.rate {
			return
		}
	}
	attrs := []slog.Attr{
		slog.String("method", method),
		slog.String("code", code.String()),
		slog.Duration("latency", time.Since(start)),
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		attrs = append(attrs, slog.String("peer", p.Addr.String()))
	}
	if p := Principal(ctx); p != "" {
		attrs = append(attrs, slog.String("principal", p))
	}
	a.log.LogAttrs(ctx, level, "grpc call", attrs...)
}
