package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/client"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// fakeCluster is an in-memory stand-in for a raftogram cluster: nodes share
// one state (as if replicated), only the leader answers, the others answer
// like grpcapi does (FailedPrecondition + NotLeader hint, or Unavailable with
// an empty NotLeader while there is no leader).
type fakeCluster struct {
	t         testing.TB
	listeners map[string]*bufconn.Listener

	mu       sync.Mutex
	leader   string
	leaderCh chan struct{} // closed when the leader changes
	channels map[string]*fakeChannel
	// beforeSend, if set, runs on the leader before a send is applied; a
	// non-nil error is returned instead. afterSend runs after it is applied;
	// a non-nil error replaces the answer (outcome unknown to the client).
	beforeSend func(node string, req *raftogramv1.SendMessageRequest) error
	afterSend  func(node string, req *raftogramv1.SendMessageRequest) error
	applied    int // sends applied (deduplicated ones excluded)
}

type fakeChannel struct {
	msgs   []*raftogramv1.Message
	ids    map[string]uint64
	notify chan struct{} // closed on every append
}

// newFakeCluster starts nodes named as given, with leader leading ("" for
// none), and stops them when the test ends.
func newFakeCluster(t testing.TB, leader string, nodes ...string) *fakeCluster {
	c := &fakeCluster{
		t:         t,
		listeners: make(map[string]*bufconn.Listener),
		leader:    leader,
		leaderCh:  make(chan struct{}),
		channels:  make(map[string]*fakeChannel),
	}
	for _, name := range nodes {
		lis := bufconn.Listen(1 << 20)
		srv := grpc.NewServer()
		raftogramv1.RegisterMessengerServer(srv, &fakeNode{name: name, c: c})
		go func() { _ = srv.Serve(lis) }()
		t.Cleanup(srv.Stop)
		c.listeners[name] = lis
	}
	return c
}

// fakeAddr is the gRPC target of the fake node name: passthrough, so that
// the client hands the name to the dialer of dialOptions unresolved.
func fakeAddr(name string) string { return "passthrough:///" + name }

// dialOptions makes a client reach the fake nodes by name.
func (c *fakeCluster) dialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
		lis, ok := c.listeners[addr]
		if !ok {
			return nil, fmt.Errorf("dial %s: connection refused", addr)
		}
		return lis.DialContext(ctx)
	})}
}

func (c *fakeCluster) setLeader(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.leader = name
	close(c.leaderCh)
	c.leaderCh = make(chan struct{})
}

func (c *fakeCluster) messages(channel string) []*raftogramv1.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := c.channels[channel]
	if ch == nil {
		return nil
	}
	return append([]*raftogramv1.Message(nil), ch.msgs...)
}

type fakeNode struct {
	raftogramv1.UnimplementedMessengerServer
	name string
	c    *fakeCluster
}

// notLeader is the error a non-leader answers with; c.mu must be held.
func (n *fakeNode) notLeaderLocked() error {
	if n.c.leader == n.name {
		return nil
	}
	code, target := codes.FailedPrecondition, fakeAddr(n.c.leader)
	if n.c.leader == "" {
		code, target = codes.Unavailable, ""
	}
	st, err := status.New(code, "not leader").WithDetails(&raftogramv1.NotLeader{LeaderGrpcTarget: target, RaftLeaderId: target})
	if err != nil {
		panic(err)
	}
	return st.Err()
}

func (n *fakeNode) CreateChannel(_ context.Context, req *raftogramv1.CreateChannelRequest) (*raftogramv1.CreateChannelResponse, error) {
	c := n.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := n.notLeaderLocked(); err != nil {
		return nil, err
	}
	created := c.channels[req.GetChannelId()] == nil
	if created {
		c.channels[req.GetChannelId()] = &fakeChannel{ids: make(map[string]uint64), notify: make(chan struct{})}
	}
	return &raftogramv1.CreateChannelResponse{ChannelId: req.GetChannelId(), Name: req.GetName(), Created: proto.Bool(created)}, nil
}

func (n *fakeNode) SendMessage(_ context.Context, req *raftogramv1.SendMessageRequest) (*raftogramv1.SendMessageResponse, error) {
	c := n.c
	c.mu.Lock()
	if err := n.notLeaderLocked(); err != nil {
		c.mu.Unlock()
		return nil, err
	}
	before, after := c.beforeSend, c.afterSend
	c.mu.Unlock()
	if before != nil {
		if err := before(n.name, req); err != nil {
			return nil, err
		}
	}
	c.mu.Lock()
	if err := n.notLeaderLocked(); err != nil {
		c.mu.Unlock()
		return nil, err
	}
	ch := c.channels[req.GetChannelId()]
	if ch == nil {
		c.mu.Unlock()
		return nil, status.Error(codes.NotFound, "no such channel")
	}
	resp := &raftogramv1.SendMessageResponse{Deduplicated: proto.Bool(false)}
	if seq, ok := ch.ids[req.GetClientMessageId()]; ok && req.GetClientMessageId() != "" {
		resp.Sequence, resp.Deduplicated = seq, proto.Bool(true)
	} else {
		resp.Sequence = uint64(len(ch.msgs)) + 1
		ch.msgs = append(ch.msgs, &raftogramv1.Message{
			Sequence:        resp.Sequence,
			AuthorId:        req.GetAuthorId(),
			Payload:         append([]byte(nil), req.GetPayload()...),
			ClientMessageId: req.GetClientMessageId(),
			CreatedAt:       timestamppb.Now(),
		})
		if req.GetClientMessageId() != "" {
			ch.ids[req.GetClientMessageId()] = resp.Sequence
		}
		close(ch.notify)
		ch.notify = make(chan struct{})
		c.applied++
	}
	c.mu.Unlock()
	if after != nil {
		if err := after(n.name, req); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

func (n *fakeNode) ReadHistory(_ context.Context, req *raftogramv1.ReadHistoryRequest) (*raftogramv1.ReadHistoryResponse, error) {
	c := n.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := n.notLeaderLocked(); err != nil {
		return nil, err
	}
	ch := c.channels[req.GetChannelId()]
	if ch == nil {
		return nil, status.Error(codes.NotFound, "no such channel")
	}
	limit := uint64(req.GetLimit())
	if limit == 0 {
		limit = 100
	}
	msgs := ch.after(req.GetAfterSequence(), limit)
	return &raftogramv1.ReadHistoryResponse{Messages: msgs, HasMore: proto.Bool(req.GetAfterSequence()+uint64(len(msgs)) < uint64(len(ch.msgs)))}, nil
}

// after returns up to limit messages after seq; c.mu must be held.
func (ch *fakeChannel) after(seq, limit uint64) []*raftogramv1.Message {
	n := uint64(len(ch.msgs))
	if seq >= n {
		return nil
	}
	end := min(n, seq+limit)
	return append([]*raftogramv1.Message(nil), ch.msgs[seq:end]...)
}

func (n *fakeNode) Subscribe(req *raftogramv1.SubscribeRequest, stream grpc.ServerStreamingServer[raftogramv1.SubscribeChunk]) error {
	c := n.c
	ctx := stream.Context()
	cursor := req.GetAfterSequence()
	for {
		c.mu.Lock()
		if err := n.notLeaderLocked(); err != nil {
			c.mu.Unlock()
			return err
		}
		ch := c.channels[req.GetChannelId()]
		if ch == nil {
			c.mu.Unlock()
			return status.Error(codes.NotFound, "no such channel")
		}
		msgs := ch.after(cursor, 1000)
		notify, leaderCh := ch.notify, c.leaderCh
		c.mu.Unlock()
		if len(msgs) > 0 {
			if err := stream.Send(&raftogramv1.SubscribeChunk{Messages: msgs}); err != nil {
				return err
			}
			cursor = msgs[len(msgs)-1].GetSequence()
			continue
		}
		select {
		case <-notify:
		case <-leaderCh:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// errInjected is an outcome-unknown failure injected by a test.
var errInjected = status.Error(codes.Unavailable, "injected: connection lost")

func TestFakeClusterSanity(t *testing.T) {
	c := newFakeCluster(t, "n1", "n1", "n2")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl, err := client.New(ctx, client.Config{Addrs: []string{fakeAddr("n2")}, DialOptions: c.dialOptions()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.CreateChannel(ctx, "x", "x"); err != nil {
		t.Fatal(err)
	}
	if l := cl.Leader(); l != fakeAddr("n1") {
		t.Errorf("leader %q, want %q", l, fakeAddr("n1"))
	}
	if _, err := cl.Send(ctx, client.SendRequest{ChannelID: "nope", AuthorID: "a"}); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("send to a missing channel: %v, want ErrNotFound", err)
	}
}

// Publish answers each request as SendMessage would, one at a time, in
// order; a SendMessage error ends the stream as it would end a call.
func (n *fakeNode) Publish(stream grpc.BidiStreamingServer[raftogramv1.PublishRequest, raftogramv1.PublishResponse]) error {
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		resp, err := n.SendMessage(stream.Context(), &raftogramv1.SendMessageRequest{ChannelId: req.GetChannelId(), AuthorId: req.GetAuthorId(),
			Payload: req.GetPayload(), ClientMessageId: req.GetClientMessageId()})
		if err != nil {
			return err
		}
		if err := stream.Send(&raftogramv1.PublishResponse{ChannelId: req.GetChannelId(), ClientMessageId: req.GetClientMessageId(),
			Sequence: resp.GetSequence(), Deduplicated: resp.Deduplicated, Index: resp.GetIndex()}); err != nil {
			return err
		}
	}
}
