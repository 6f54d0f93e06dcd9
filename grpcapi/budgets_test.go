package grpcapi

import (
	"context"
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
)

// budgetFake answers CreateChannel and holds Subscribe streams open until
// released.
type budgetFake struct {
	raftogramv1.UnimplementedMessengerServer
	release chan struct{}
}

func (f *budgetFake) CreateChannel(context.Context, *raftogramv1.CreateChannelRequest) (*raftogramv1.CreateChannelResponse, error) {
	return &raftogramv1.CreateChannelResponse{}, nil
}

func (f *budgetFake) Subscribe(_ *raftogramv1.SubscribeRequest, ss grpc.ServerStreamingServer[raftogramv1.SubscribeChunk]) error {
	if err := ss.Send(&raftogramv1.SubscribeChunk{}); err != nil {
		return err
	}
	select {
	case <-f.release:
	case <-ss.Context().Done():
	}
	return nil
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func startBudgeted(t *testing.T, b Budgets) (raftogramv1.MessengerClient, *budgetFake) {
	t.Helper()
	f := &budgetFake{release: make(chan struct{})}
	srv := grpc.NewServer(append(ServerOptions(testMaxPayload), b.ServerOptions()...)...)
	raftogramv1.RegisterMessengerServer(srv, f)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { close(f.release); srv.Stop() })
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return raftogramv1.NewMessengerClient(conn), f
}

func generous() Budgets {
	return Budgets{MaxMetadataBytes: 64 << 10, MaxStreamsPerConnection: 100, MaxStreams: 100, IdleConnectionTimeout: time.Minute, ChannelCreatesPerSecond: 1000}
}

func TestBudgetMetadata(t *testing.T) {
	b := generous()
	b.MaxMetadataBytes = 4 << 10
	m, _ := startBudgeted(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	big := metadata.AppendToOutgoingContext(ctx, "x-junk", strings.Repeat("a", 8<<10))
	if _, err := m.CreateChannel(big, &raftogramv1.CreateChannelRequest{}); err == nil {
		t.Fatal("8 KiB of metadata passed a 4 KiB budget")
	}
	// The node keeps serving calls within the budget.
	if _, err := m.CreateChannel(ctx, &raftogramv1.CreateChannelRequest{}); err != nil {
		t.Fatalf("a normal call after the refusal: %v", err)
	}
}

func TestBudgetStreams(t *testing.T) {
	b := generous()
	b.MaxStreams = 2
	m, _ := startBudgeted(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	open := func() error {
		st, err := m.Subscribe(ctx, &raftogramv1.SubscribeRequest{})
		if err != nil {
			return err
		}
		_, err = st.Recv()
		return err
	}
	for i := range 2 {
		if err := open(); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
	}
	err := open()
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "limits.max_streams") {
		t.Fatalf("third stream: %v, want ResourceExhausted naming limits.max_streams", err)
	}
	// A Publish stream counts too.
	pub, err := m.Publish(ctx)
	if err == nil {
		_, err = pub.Recv()
	}
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "limits.max_streams") {
		t.Fatalf("a Publish stream beyond the limit: %v, want ResourceExhausted naming limits.max_streams", err)
	}
	// Unary calls are not streams and still pass.
	if _, err := m.CreateChannel(ctx, &raftogramv1.CreateChannelRequest{}); err != nil {
		t.Fatal(err)
	}
}

func TestBudgetChannelCreates(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	b := generous()
	b.ChannelCreatesPerSecond = 3
	b.Now = clock.now
	m, _ := startBudgeted(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	create := func() error { _, err := m.CreateChannel(ctx, &raftogramv1.CreateChannelRequest{}); return err }
	for i := range 3 {
		if err := create(); err != nil {
			t.Fatalf("create %d within the burst: %v", i, err)
		}
	}
	if err := create(); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("create beyond the burst: %v, want ResourceExhausted", err)
	}
	clock.add(400 * time.Millisecond) // one token back (1.2 tokens)
	if err := create(); err != nil {
		t.Fatalf("create after a refill: %v", err)
	}
	if err := create(); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("second create after one token: %v", err)
	}
}
