package grpcapi

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// A peer whose configured gRPC address is not dialable from here (a
// container's published host port) is reached at its route
// (peer_grpc_addr); the pool still keys it by the configured address.
func TestPeersDialTheRoute(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	healthpb.RegisterHealthServer(g, health.NewServer())
	go g.Serve(ln)
	t.Cleanup(g.Stop)

	const advertised = "127.0.0.1:1" // nothing listens there
	p := NewPeers(nil, map[string]string{advertised: ln.Addr().String()})
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := p.Conn(advertised)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health through the route: %v, %v", resp, err)
	}
	if again, err := p.Conn(advertised); err != nil || again != conn {
		t.Fatalf("second Conn: %v, %v; want the pooled connection", again, err)
	}

	// Without a route the configured address is dialed as it is.
	direct := NewPeers(nil, nil)
	defer direct.Close()
	conn, err = direct.Conn(advertised)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if _, err := healthpb.NewHealthClient(conn).Check(short, &healthpb.HealthCheckRequest{}); err == nil {
		t.Fatal("a call to an address nothing listens on succeeded")
	}
}
