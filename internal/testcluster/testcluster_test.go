package testcluster_test

import (
	"context"
	"testing"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/config"
	"github.com/raftogram/raftogram/internal/testcluster"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func messenger(t *testing.T, addr string) raftogramv1.MessengerClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return raftogramv1.NewMessengerClient(cc)
}

// TestClusterFailsOverAndRestarts proves the harness: a leader is agreed on,
// a write replicates everywhere, stopping the leader elects another, and a
// restarted node catches up on its old addresses and data.
func TestClusterFailsOverAndRestarts(t *testing.T) {
	tuned := 0
	c := testcluster.Start(t, 3, func(cfg *config.Config) { tuned++; cfg.Limits.MaxPayloadBytes = 4096 })
	if tuned != 3 || c.Config(2).Limits.MaxPayloadBytes != 4096 {
		t.Fatalf("tune ran %d times; node3 limit %d", tuned, c.Config(2).Limits.MaxPayloadBytes)
	}
	if len(c.Addrs()) != 3 || c.Index(c.Addr(1)) != 1 || c.Index("node3") != 2 {
		t.Fatalf("addresses %v", c.Addrs())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l := c.Leader()
	if _, err := messenger(t, c.Addr(l)).CreateChannel(ctx, &raftogramv1.CreateChannelRequest{ChannelId: "general", Name: "General"}); err != nil {
		t.Fatal(err)
	}
	c.Converged()

	c.Stop(l)
	if c.Server(l) != nil {
		t.Fatal("stopped node still has a server")
	}
	l2 := c.Leader()
	if l2 == l {
		t.Fatalf("stopped node %d still leads", l)
	}
	if _, err := messenger(t, c.Addr(l2)).SendMessage(ctx, &raftogramv1.SendMessageRequest{ChannelId: "general", AuthorId: "a", Payload: []byte("x"), ClientMessageId: "m1"}); err != nil {
		t.Fatal(err)
	}
	c.Restart(l)
	c.Leader()
	c.Converged()
	if got := c.Server(l).Store().AppliedIndex(); got == 0 {
		t.Fatalf("restarted node applied nothing")
	}
}

// TestNewWithoutTB covers the TestMain path: New, WaitLeader and Close
// remove the directory it made.
func TestNewWithoutTB(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := testcluster.New(ctx, testcluster.Options{Nodes: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}
