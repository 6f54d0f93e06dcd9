package grpcapi

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// panicky is a Messenger whose SendMessage panics for author "boom" and
// whose Subscribe always panics; otherwise SendMessage answers OK, naming
// principal "alice" for author "alice".
type panicky struct {
	raftogramv1.UnimplementedMessengerServer
}

func (panicky) SendMessage(ctx context.Context, req *raftogramv1.SendMessageRequest) (*raftogramv1.SendMessageResponse, error) {
	switch req.GetAuthorId() {
	case "boom":
		panic("handler exploded")
	case "alice":
		SetPrincipal(ctx, "alice")
	case "refuse":
		return nil, status.Error(codes.InvalidArgument, "no")
	case "fault":
		return nil, status.Error(codes.Internal, "disk on fire")
	}
	return &raftogramv1.SendMessageResponse{Sequence: 1, Deduplicated: proto.Bool(false)}, nil
}

func (panicky) Subscribe(*raftogramv1.SubscribeRequest, grpc.ServerStreamingServer[raftogramv1.SubscribeChunk]) error {
	panic("stream exploded")
}

// fakeMetrics records what the interceptors report.
type fakeMetrics struct {
	mu       sync.Mutex
	writes   int
	streams  map[string]int // current in-flight streams by service/method
	maxOpen  int
	calls    int // calls seen by the per-RPC interceptors
	lastCode codes.Code
}

func (m *fakeMetrics) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		resp, err := h(ctx, req)
		m.mu.Lock()
		m.calls++
		m.lastCode = status.Code(err)
		m.mu.Unlock()
		return resp, err
	}
}

func (m *fakeMetrics) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		err := h(srv, ss)
		m.mu.Lock()
		m.calls++
		m.lastCode = status.Code(err)
		m.mu.Unlock()
		return err
	}
}

func (m *fakeMetrics) StreamStarted(service, method string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.streams[service+"/"+method]++
	m.maxOpen = max(m.maxOpen, m.streams[service+"/"+method])
}

func (m *fakeMetrics) StreamEnded(service, method string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.streams[service+"/"+method]--
}

func (m *fakeMetrics) WriteAcknowledged(time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writes++
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serveIntercepted serves panicky with Interceptors(opts) on a loopback
// port and returns a client to it and the server's log.
func serveIntercepted(t *testing.T, opts InterceptorOptions) (raftogramv1.MessengerClient, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(append(Interceptors(opts), ServerOptions(1<<20)...)...)
	raftogramv1.RegisterMessengerServer(srv, panicky{})
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return raftogramv1.NewMessengerClient(conn), logs
}

func send(ctx context.Context, c raftogramv1.MessengerClient, author string) error {
	_, err := c.SendMessage(ctx, &raftogramv1.SendMessageRequest{ChannelId: "c", AuthorId: author, ClientMessageId: "m", Payload: []byte("x")})
	return err
}

// A panicking handler (unary or stream) answers Internal and logs one
// ERROR line with its stack; the server keeps serving.
func TestInterceptorsRecoverPanics(t *testing.T) {
	t.Parallel()
	m := &fakeMetrics{streams: map[string]int{}}
	c, logs := serveIntercepted(t, InterceptorOptions{Metrics: m})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if err := send(ctx, c, "boom"); status.Code(err) != codes.Internal {
		t.Fatalf("panicking SendMessage = %v, want Internal", err)
	}
	m.mu.Lock()
	if m.lastCode != codes.Internal {
		t.Errorf("per-RPC metrics saw %v for the panic, want Internal", m.lastCode)
	}
	m.mu.Unlock()
	stream, err := c.Subscribe(ctx, &raftogramv1.SubscribeRequest{ChannelId: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.Internal {
		t.Fatalf("panicking Subscribe = %v, want Internal", err)
	}
	if err := send(ctx, c, "bob"); err != nil {
		t.Fatalf("SendMessage after the panics = %v; the server should keep serving", err)
	}
	out := logs.String()
	for _, want := range []string{"handler exploded", "stream exploded", "/raftogram.v1.Messenger/SendMessage", "/raftogram.v1.Messenger/Subscribe", "interceptors_test.go"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "level=ERROR"); n != 2 {
		t.Errorf("log has %d ERROR lines, want 2 (one per panic):\n%s", n, out)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.maxOpen != 1 || m.streams["raftogram.v1.Messenger/Subscribe"] != 0 {
		t.Errorf("in-flight streams: max %d, now %v; want 1 then 0", m.maxOpen, m.streams)
	}
}

// WriteAcknowledged counts SendMessage answered OK to its caller, not a
// refusal and not a write another node forwarded here.
func TestInterceptorsCountAcknowledgedWrites(t *testing.T) {
	t.Parallel()
	m := &fakeMetrics{streams: map[string]int{}}
	c, _ := serveIntercepted(t, InterceptorOptions{Metrics: m})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := send(ctx, c, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := send(ctx, c, "refuse"); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("refused send = %v", err)
	}
	fwd := metadata.AppendToOutgoingContext(ctx, ForwardedByHeader, "node2")
	if err := send(fwd, c, "bob"); err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.writes != 1 {
		t.Errorf("writes counted = %d, want 1 (the OK, unforwarded one)", m.writes)
	}
	if m.calls != 3 {
		t.Errorf("per-RPC metrics saw %d calls, want 3", m.calls)
	}
}

// The access log is off at rate 0; above 0 it logs sampled calls with
// method, code, latency, peer and principal, and server faults always.
func TestAccessLogSampling(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	t.Run("off", func(t *testing.T) {
		c, logs := serveIntercepted(t, InterceptorOptions{})
		for _, a := range []string{"bob", "fault", "refuse"} {
			send(ctx, c, a)
		}
		if strings.Contains(logs.String(), "grpc call") {
			t.Errorf("rate 0 logged calls:\n%s", logs)
		}
	})
	t.Run("all", func(t *testing.T) {
		c, logs := serveIntercepted(t, InterceptorOptions{AccessLogSampleRate: 1})
		if err := send(ctx, c, "alice"); err != nil {
			t.Fatal(err)
		}
		out := logs.String()
		for _, want := range []string{"level=INFO", `msg="grpc call"`, "method=/raftogram.v1.Messenger/SendMessage", "code=OK", "latency=", "peer=127.0.0.1:", "principal=alice"} {
			if !strings.Contains(out, want) {
				t.Errorf("access log lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("sampled", func(t *testing.T) {
		// random answers 0.7 > rate: nothing sampled, faults still logged.
		c, logs := serveIntercepted(t, InterceptorOptions{AccessLogSampleRate: 0.5, random: func() float64 { return 0.7 }})
		send(ctx, c, "bob")
		send(ctx, c, "refuse")
		if err := send(ctx, c, "fault"); status.Code(err) != codes.Internal {
			t.Fatalf("fault send = %v", err)
		}
		out := logs.String()
		if n := strings.Count(out, "grpc call"); n != 1 || !strings.Contains(out, "level=WARN") || !strings.Contains(out, "code=Internal") {
			t.Errorf("want exactly the Internal call logged at WARN, got %d lines:\n%s", n, out)
		}
	})
}
