package grpcapi

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
	"github.com/raftogram/raftogram/fanout"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// windowLeader is a leader's Publish that answers a request only once the
// relay has sent it window requests ahead (or all it will send), and
// records how far ahead of its answers the relay ever got.
type windowLeader struct {
	raftogramv1.UnimplementedMessengerServer
	window, total int

	mu                 sync.Mutex
	cond               *sync.Cond
	received, answered int
	maxAhead           int
	pending            []*raftogramv1.PublishRequest
	done               bool
}

func (l *windowLeader) Publish(stream grpc.BidiStreamingServer[raftogramv1.PublishRequest, raftogramv1.PublishResponse]) error {
	answerErr := make(chan error, 1)
	go func() { answerErr <- l.answer(stream) }()
	for {
		req, err := stream.Recv()
		l.mu.Lock()
		if err != nil {
			l.done = true
			l.cond.Broadcast()
			l.mu.Unlock()
			if errors.Is(err, io.EOF) {
				return <-answerErr
			}
			return err
		}
		l.received++
		l.maxAhead = max(l.maxAhead, l.received-l.answered)
		l.pending = append(l.pending, req)
		l.cond.Broadcast()
		l.mu.Unlock()
	}
}

// answer answers the oldest pending request whenever the relay is a full
// window ahead, or has sent everything.
func (l *windowLeader) answer(stream grpc.BidiStreamingServer[raftogramv1.PublishRequest, raftogramv1.PublishResponse]) error {
	for {
		l.mu.Lock()
		for len(l.pending) == 0 || (l.received-l.answered < l.window && l.received < l.total && !l.done) {
			if l.done && len(l.pending) == 0 {
				l.mu.Unlock()
				return nil
			}
			l.cond.Wait()
		}
		req := l.pending[0]
		l.pending = l.pending[1:]
		l.answered++
		seq := uint64(l.answered)
		l.mu.Unlock()
		if err := stream.Send(&raftogramv1.PublishResponse{ChannelId: req.GetChannelId(), ClientMessageId: req.GetClientMessageId(),
			Sequence: seq, Deduplicated: proto.Bool(false)}); err != nil {
			return err
		}
	}
}

// A follower relaying Publish reads from its client only while fewer than
// MaxPublishInflight of the relayed requests are unanswered: against a
// leader that answers only when a window is outstanding, the relay is
// never more than that window ahead, and every answer arrives in order.
// The leader's configured address is not dialable; the peer pool's route
// leads to it.
func TestRelayReadsAtMostAWindowAhead(t *testing.T) {
	const window, total = 4, 60
	leader := &windowLeader{window: window, total: total}
	leader.cond = sync.NewCond(&leader.mu)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	raftogramv1.RegisterMessengerServer(g, leader)
	go g.Serve(ln)
	t.Cleanup(g.Stop)

	// The fake cluster names the leader at 127.0.0.1:9000.
	peers := NewPeers(nil, map[string]string{"127.0.0.1:9000": ln.Addr().String()})
	t.Cleanup(func() { peers.Close() })
	client, _, _, _ := newTestServerWithOptions(t, false, fanout.New(EncodeMessage),
		Options{ForwardWrites: true, MaxPublishInflight: window, Peers: peers})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := client.Publish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sendErr := make(chan error, 1)
	go func() {
		for i := range total {
			if err := stream.Send(&raftogramv1.PublishRequest{ChannelId: "c", AuthorId: "a", Payload: []byte("p"), ClientMessageId: fmt.Sprint(i)}); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- stream.CloseSend()
	}()
	for i := range total {
		r, err := stream.Recv()
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if r.GetClientMessageId() != fmt.Sprint(i) || r.GetSequence() != uint64(i+1) {
			t.Fatalf("answer %d: %v; want id %d, sequence %d", i, r, i, i+1)
		}
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last answer: %v, want the end of the stream", err)
	}
	if err := <-sendErr; err != nil {
		t.Fatal(err)
	}
	leader.mu.Lock()
	defer leader.mu.Unlock()
	if leader.received != total || leader.maxAhead != window {
		t.Fatalf("leader received %d, the relay ran %d ahead of the answers; want %d and exactly the window %d",
			leader.received, leader.maxAhead, total, window)
	}
}
