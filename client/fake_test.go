package client

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// fake is a scripted Messenger on a loopback port. Its hooks run per call;
// a nil hook answers Unimplemented.
type fake struct {
	raftogramv1.UnimplementedMessengerServer
	addr string

	mu        sync.Mutex
	sends     []*raftogramv1.SendMessageRequest
	creates   int
	reads     []*raftogramv1.ReadHistoryRequest
	subs      []*raftogramv1.SubscribeRequest
	send      func(n int, req *raftogramv1.SendMessageRequest) (*raftogramv1.SendMessageResponse, error)
	create    func(n int) (*raftogramv1.CreateChannelResponse, error)
	read      func(ctx context.Context, req *raftogramv1.ReadHistoryRequest) (*raftogramv1.ReadHistoryResponse, error)
	subscribe func(n int, req *raftogramv1.SubscribeRequest, stream grpc.ServerStreamingServer[raftogramv1.SubscribeChunk]) error
}

func startFake(t *testing.T, f *fake) *fake {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	s := grpc.NewServer()
	raftogramv1.RegisterMessengerServer(s, f)
	done := make(chan struct{})
	go func() { defer close(done); s.Serve(ln) }()
	t.Cleanup(func() { s.Stop(); <-done })
	return f
}

func (f *fake) SendMessage(_ context.Context, req *raftogramv1.SendMessageRequest) (*raftogramv1.SendMessageResponse, error) {
	f.mu.Lock()
	f.sends = append(f.sends, req)
	n, h := len(f.sends), f.send
	f.mu.Unlock()
	if h == nil {
		return nil, status.Error(codes.Unimplemented, "no send")
	}
	return h(n, req)
}

func (f *fake) CreateChannel(context.Context, *raftogramv1.CreateChannelRequest) (*raftogramv1.CreateChannelResponse, error) {
	f.mu.Lock()
	f.creates++
	n, h := f.creates, f.create
	f.mu.Unlock()
	if h == nil {
		return nil, status.Error(codes.Unimplemented, "no create")
	}
	return h(n)
}

func (f *fake) ReadHistory(ctx context.Context, req *raftogramv1.ReadHistoryRequest) (*raftogramv1.ReadHistoryResponse, error) {
	f.mu.Lock()
	f.reads = append(f.reads, req)
	h := f.read
	f.mu.Unlock()
	if h == nil {
		return nil, status.Error(codes.Unimplemented, "no read")
	}
	return h(ctx, req)
}

func (f *fake) Subscribe(req *raftogramv1.SubscribeRequest, stream grpc.ServerStreamingServer[raftogramv1.SubscribeChunk]) error {
	f.mu.Lock()
	f.subs = append(f.subs, req)
	n, h := len(f.subs), f.subscribe
	f.mu.Unlock()
	if h == nil {
		return status.Error(codes.Unimplemented, "no subscribe")
	}
	return h(n, req, stream)
}

func (f *fake) sendCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sends)
}

// createCount is how many CreateChannel calls reached the fake; an attempt
// the client gave up on may still arrive, so it is read under the lock.
func (f *fake) createCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.creates
}

func notLeader(leader string) error {
	st, _ := status.New(codes.FailedPrecondition, "not leader").WithDetails(&raftogramv1.NotLeader{LeaderGrpcTarget: leader, RaftLeaderId: "leader"})
	return st.Err()
}

func newTestClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	if cfg.BaseBackoff == 0 {
		cfg.BaseBackoff, cfg.MaxBackoff = time.Millisecond, 20*time.Millisecond
	}
	c, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestSendRetriesUnknownOutcomeWithSameID: the first attempt applies and
// then fails as if the connection broke; the retry carries the same
// generated id and gets the original sequence back.
func TestSendRetriesUnknownOutcomeWithSameID(t *testing.T) {
	applied := map[string]uint64{}
	f := startFake(t, &fake{})
	f.send = func(n int, req *raftogramv1.SendMessageRequest) (*raftogramv1.SendMessageResponse, error) {
		seq, dup := applied[req.GetClientMessageId()]
		if !dup {
			seq = uint64(len(applied) + 1)
			applied[req.GetClientMessageId()] = seq
		}
		if n == 1 {
			return nil, status.Error(codes.Unavailable, "connection reset after apply")
		}
		return &raftogramv1.SendMessageResponse{Sequence: seq, Deduplicated: proto.Bool(dup), Index: 7}, nil
	}
	var retries []Retry // OnRetry runs on the calling goroutine
	c := newTestClient(t, Config{Addrs: []string{f.addr}, OnRetry: func(r Retry) { retries = append(retries, r) }})
	res, err := c.Send(testCtx(t), SendRequest{ChannelID: "general", AuthorID: "alice", Payload: []byte("hi")})
	if err != nil {
		t.Fatal(err)
	}
	if len(retries) != 1 || retries[0].Op != "Send" || retries[0].Addr != f.addr || !errors.Is(retries[0].Err, ErrUnavailable) {
		t.Fatalf("OnRetry saw %+v, want one Send retry on %s after Unavailable", retries, f.addr)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.sends) != 2 || f.sends[0].GetClientMessageId() == "" || f.sends[0].GetClientMessageId() != f.sends[1].GetClientMessageId() {
		t.Fatalf("attempts %v", f.sends)
	}
	if res.Sequence != 1 || !res.Deduplicated || res.Index != 7 || res.ClientMessageID != f.sends[0].GetClientMessageId() || len(applied) != 1 {
		t.Fatalf("result %+v, applied %v", res, applied)
	}
	if len(res.ClientMessageID) != 32 {
		t.Fatalf("generated id %q", res.ClientMessageID)
	}
}

// TestSendAttemptTimeoutIsRetried: an attempt that hangs is cut by
// AttemptTimeout and repeated with the same id.
func TestSendAttemptTimeoutIsRetried(t *testing.T) {
	f := startFake(t, &fake{})
	f.send = func(n int, req *raftogramv1.SendMessageRequest) (*raftogramv1.SendMessageResponse, error) {
		if n == 1 {
			time.Sleep(time.Second) // the hung attempt; the client gives up first
		}
		return &raftogramv1.SendMessageResponse{Sequence: 1, Deduplicated: proto.Bool(n > 1)}, nil
	}
	c := newTestClient(t, Config{Addrs: []string{f.addr}, AttemptTimeout: 100 * time.Millisecond})
	if _, err := c.Send(testCtx(t), SendRequest{ChannelID: "g", AuthorID: "a", ClientMessageID: "mine"}); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.sends) != 2 || f.sends[1].GetClientMessageId() != "mine" {
		t.Fatalf("attempts %v", f.sends)
	}
}

// TestLeaderFollowing: a follower's NotLeader hint leads to a leader the
// client was not configured with; the client remembers it and goes there
// directly afterwards.
func TestLeaderFollowing(t *testing.T) {
	leader := startFake(t, &fake{})
	leader.send = func(n int, _ *raftogramv1.SendMessageRequest) (*raftogramv1.SendMessageResponse, error) {
		return &raftogramv1.SendMessageResponse{Sequence: uint64(n), Deduplicated: proto.Bool(false)}, nil
	}
	follower := startFake(t, &fake{})
	follower.send = func(int, *raftogramv1.SendMessageRequest) (*raftogramv1.SendMessageResponse, error) {
		return nil, notLeader(leader.addr)
	}
	c := newTestClient(t, Config{Addrs: []string{follower.addr}})
	for i := 1; i <= 3; i++ {
		res, err := c.Send(testCtx(t), SendRequest{ChannelID: "g", AuthorID: "a"})
		if err != nil || res.Sequence != uint64(i) {
			t.Fatalf("send %d: %+v %v", i, res, err)
		}
	}
	if c.Leader() != leader.addr || follower.sendCount() != 1 || leader.sendCount() != 3 {
		t.Fatalf("leader %q, follower saw %d, leader saw %d", c.Leader(), follower.sendCount(), leader.sendCount())
	}
	if got := c.Addrs(); len(got) != 2 || got[1] != leader.addr {
		t.Fatalf("addrs %v", got)
	}
	// The leader goes away: the client forgets it and asks the others.
	leader.mu.Lock()
	leader.send = func(int, *raftogramv1.SendMessageRequest) (*raftogramv1.SendMessageResponse, error) {
		return nil, status.Error(codes.Unavailable, "shutting down")
	}
	leader.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := c.Send(ctx, SendRequest{ChannelID: "g", AuthorID: "a"})
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrNotLeader) {
		t.Fatalf("send to a dead cluster: %v", err)
	}
	if follower.sendCount() < 2 {
		t.Fatalf("the follower was not asked again after the leader failed")
	}
}

// TestDefiniteErrorsAreNotRetried: InvalidArgument, NotFound,
// PermissionDenied and AlreadyExists (an idempotency conflict) come back
// after one attempt.
func TestDefiniteErrorsAreNotRetried(t *testing.T) {
	for _, tc := range []struct {
		code codes.Code
		want error
	}{{codes.InvalidArgument, ErrInvalidArgument}, {codes.NotFound, ErrNotFound}, {codes.PermissionDenied, ErrPermissionDenied}, {codes.AlreadyExists, ErrAlreadyExists}, {codes.Internal, ErrInternal}} {
		f := startFake(t, &fake{})
		f.send = func(int, *raftogramv1.SendMessageRequest) (*raftogramv1.SendMessageResponse, error) {
			return nil, status.Error(tc.code, "no")
		}
		c := newTestClient(t, Config{Addrs: []string{f.addr}})
		_, err := c.Send(testCtx(t), SendRequest{ChannelID: "g", AuthorID: "a"})
		var e *Error
		if !errors.Is(err, tc.want) || !errors.As(err, &e) || e.Code != tc.code || f.sendCount() != 1 {
			t.Errorf("%v: err %v after %d attempts", tc.code, err, f.sendCount())
		}
	}
}

// TestCreateWithoutIDIsNotRepeated: a server-named channel is not created
// again after an unknown outcome, but a NotLeader answer is followed.
func TestCreateWithoutIDIsNotRepeated(t *testing.T) {
	f := startFake(t, &fake{})
	f.create = func(int) (*raftogramv1.CreateChannelResponse, error) {
		return nil, status.Error(codes.Unavailable, "lost")
	}
	c := newTestClient(t, Config{Addrs: []string{f.addr}})
	if _, err := c.CreateChannel(testCtx(t), "", "x"); !errors.Is(err, ErrUnavailable) || f.createCount() != 1 {
		t.Fatalf("err %v after %d attempts", err, f.createCount())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := c.CreateChannel(ctx, "named", "x"); !errors.Is(err, context.DeadlineExceeded) || f.createCount() < 3 {
		t.Fatalf("named create: %v after %d attempts", err, f.createCount())
	}
}

// TestReadsSpreadOverNodes: Linearizable reads go round-robin; a pinned
// read stays on its node.
func TestReadsSpreadOverNodes(t *testing.T) {
	var fs []*fake
	var addrs []string
	for range 3 {
		f := startFake(t, &fake{})
		f.read = func(context.Context, *raftogramv1.ReadHistoryRequest) (*raftogramv1.ReadHistoryResponse, error) {
			return &raftogramv1.ReadHistoryResponse{NodeId: f.addr, HasMore: proto.Bool(false)}, nil
		}
		fs, addrs = append(fs, f), append(addrs, f.addr)
	}
	c := newTestClient(t, Config{Addrs: addrs})
	seen := map[string]int{}
	for range 30 {
		h, err := c.ReadHistory(testCtx(t), "g", ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		seen[h.NodeID]++
	}
	if len(seen) != 3 || seen[addrs[0]] != 10 {
		t.Fatalf("reads per node %v", seen)
	}
	if fs[0].reads[0].GetConsistency() != raftogramv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE {
		t.Fatalf("default consistency sent: %v", fs[0].reads[0].GetConsistency())
	}
	for range 5 {
		h, err := c.ReadHistory(testCtx(t), "g", ReadOptions{Node: addrs[2], Consistency: Local})
		if err != nil || h.NodeID != addrs[2] {
			t.Fatalf("pinned read: %+v %v", h, err)
		}
	}
}

func chunk(node string, applied uint64, seqs ...uint64) *raftogramv1.SubscribeChunk {
	c := &raftogramv1.SubscribeChunk{NodeId: node, AppliedIndex: applied}
	for _, s := range seqs {
		c.Messages = append(c.Messages, &raftogramv1.Message{Sequence: s, AuthorId: "a"})
	}
	return c
}

// TestSubscribeResumesExactlyOnce: node A streams 1-3 and fails; node B
// (ignoring after_sequence, as a buggy node might) repeats 2-3 and goes
// on. Recv delivers 1..6 once each, and the resumed request asks for
// after_sequence 3 at AT_LEAST the highest applied index seen.
func TestSubscribeResumesExactlyOnce(t *testing.T) {
	a, b := startFake(t, &fake{}), startFake(t, &fake{})
	a.subscribe = func(n int, req *raftogramv1.SubscribeRequest, st grpc.ServerStreamingServer[raftogramv1.SubscribeChunk]) error {
		if req.GetAfterSequence() == 0 {
			st.Send(chunk("a", 10, 1, 2))
			st.Send(chunk("a", 11))
			st.Send(chunk("a", 12, 3))
		}
		return status.Error(codes.Unavailable, "node going down")
	}
	b.subscribe = func(n int, req *raftogramv1.SubscribeRequest, st grpc.ServerStreamingServer[raftogramv1.SubscribeChunk]) error {
		if req.GetAfterSequence() == 0 {
			return status.Error(codes.Unavailable, "catching up")
		}
		st.Send(chunk("b", 12, 2, 3))
		st.Send(chunk("b", 13, 3, 4, 5))
		st.Send(chunk("b", 14, 6))
		<-st.Context().Done()
		return nil
	}
	c := newTestClient(t, Config{Addrs: []string{a.addr, b.addr}})
	sub, err := c.Subscribe(testCtx(t), "g", SubscribeOptions{Consistency: Local, Node: ""})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var got []uint64
	heartbeats := 0
	for len(got) < 6 {
		batch, err := sub.Recv()
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		if len(batch.Messages) == 0 {
			heartbeats++
		}
		for _, m := range batch.Messages {
			got = append(got, m.Sequence)
		}
	}
	for i, s := range got {
		if s != uint64(i+1) {
			t.Fatalf("delivered %v", got)
		}
	}
	if heartbeats != 1 || sub.LastSequence() != 6 {
		t.Fatalf("heartbeats %d, last %d", heartbeats, sub.LastSequence())
	}
	b.mu.Lock()
	req := b.subs[len(b.subs)-1]
	b.mu.Unlock()
	if req.GetAfterSequence() != 3 || req.GetConsistency() != raftogramv1.ReadConsistency_READ_CONSISTENCY_AT_LEAST || req.GetMinIndex() != 12 {
		t.Fatalf("resume request %v", req)
	}
	// Close ends a blocked Recv.
	go func() { time.Sleep(50 * time.Millisecond); sub.Close() }()
	if _, err := sub.Recv(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Recv after Close: %v", err)
	}
}

// TestSubscribeGapAndDefiniteErrors: a skipped sequence and a NotFound end
// the subscription.
func TestSubscribeGapAndDefiniteErrors(t *testing.T) {
	f := startFake(t, &fake{})
	f.subscribe = func(n int, req *raftogramv1.SubscribeRequest, st grpc.ServerStreamingServer[raftogramv1.SubscribeChunk]) error {
		if req.GetChannelId() == "missing" {
			return status.Error(codes.NotFound, "no such channel")
		}
		st.Send(chunk("f", 1, 1, 3))
		<-st.Context().Done()
		return nil
	}
	c := newTestClient(t, Config{Addrs: []string{f.addr}})
	sub, _ := c.Subscribe(testCtx(t), "gappy", SubscribeOptions{})
	if _, err := sub.Recv(); !errors.Is(err, ErrInternal) {
		t.Fatalf("gap: %v", err)
	}
	if _, err := sub.Recv(); !errors.Is(err, ErrInternal) {
		t.Fatalf("gap is not sticky: %v", err)
	}
	sub, _ = c.Subscribe(testCtx(t), "missing", SubscribeOptions{})
	if _, err := sub.Recv(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	// Client.Close ends subscriptions.
	sub, _ = c.Subscribe(testCtx(t), "gappy", SubscribeOptions{After: 3})
	c.Close()
	if _, err := sub.Recv(); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Client.Close: %v", err)
	}
	if _, err := c.Send(testCtx(t), SendRequest{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
}

// TestSubscribeFollowsLeader: a LeaderOnly stream ended with NotLeader moves
// to the named leader.
func TestSubscribeFollowsLeader(t *testing.T) {
	leader, old := startFake(t, &fake{}), startFake(t, &fake{})
	old.subscribe = func(n int, _ *raftogramv1.SubscribeRequest, st grpc.ServerStreamingServer[raftogramv1.SubscribeChunk]) error {
		st.Send(chunk("", 0, 1))
		return notLeader(leader.addr)
	}
	leader.subscribe = func(n int, req *raftogramv1.SubscribeRequest, st grpc.ServerStreamingServer[raftogramv1.SubscribeChunk]) error {
		st.Send(chunk("", 0, req.GetAfterSequence()+1))
		<-st.Context().Done()
		return nil
	}
	c := newTestClient(t, Config{Addrs: []string{old.addr}, Consistency: LeaderOnly})
	sub, _ := c.Subscribe(testCtx(t), "g", SubscribeOptions{})
	defer sub.Close()
	for want := uint64(1); want <= 2; want++ {
		b, err := sub.Recv()
		if err != nil || len(b.Messages) != 1 || b.Messages[0].Sequence != want {
			t.Fatalf("recv %d: %+v %v", want, b, err)
		}
	}
	if c.Leader() != leader.addr {
		t.Fatalf("leader %q", c.Leader())
	}
	if got := leader.subs[0]; got.GetConsistency() != raftogramv1.ReadConsistency_READ_CONSISTENCY_UNSPECIFIED || got.GetAfterSequence() != 1 {
		t.Fatalf("resume request %v", got)
	}
}

// TestConnsPerNodeSpreadsCalls: calls to one node go over ConnsPerNode
// distinct connections.
func TestConnsPerNodeSpreadsCalls(t *testing.T) {
	var mu sync.Mutex
	conns := map[string]int{}
	f := startFake(t, &fake{})
	f.read = func(ctx context.Context, _ *raftogramv1.ReadHistoryRequest) (*raftogramv1.ReadHistoryResponse, error) {
		p, _ := peer.FromContext(ctx)
		mu.Lock()
		conns[p.Addr.String()]++
		mu.Unlock()
		return &raftogramv1.ReadHistoryResponse{}, nil
	}
	c := newTestClient(t, Config{Addrs: []string{f.addr}, ConnsPerNode: 3})
	for range 9 {
		if _, err := c.ReadHistory(testCtx(t), "g", ReadOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if len(conns) != 3 {
		t.Fatalf("calls per client connection: %v", conns)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	for _, cfg := range []Config{{}, {Addrs: []string{""}}, {Addrs: []string{"a:1"}, Consistency: Local + 1}} {
		if c, err := New(context.Background(), cfg); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("New(%+v) = %v, %v", cfg, c, err)
		}
	}
	c := newTestClient(t, Config{Addrs: []string{"127.0.0.1:1"}})
	if _, err := c.ReadHistory(testCtx(t), "g", ReadOptions{Consistency: -1}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("bad consistency: %v", err)
	}
	if c.Leader() != "" || len(c.Addrs()) != 1 {
		t.Errorf("leader %q addrs %v", c.Leader(), c.Addrs())
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
