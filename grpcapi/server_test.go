package grpcapi

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/domain"
	"github.com/raftogram/raftogram/fanout"
	"github.com/raftogram/raftogram/projection"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
)

// localCluster applies events straight to a projection, as a one-node
// cluster whose log is a counter. leader=false makes it a follower.
type localCluster struct {
	mu     sync.Mutex
	store  *projection.Store
	hub    *fanout.Hub
	index  uint64
	leader bool
	hint   domain.NotLeaderError
	watch  chan struct{}

	cutOffSince time.Time     // when set, LastLeaderContact reports it
	gate        chan struct{} // when set, Apply waits until it is closed
}

func (c *localCluster) Apply(ctx context.Context, events []domain.Event) ([]domain.Result, error) {
	c.mu.Lock()
	gate := c.gate
	c.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.leader {
		return nil, c.NotLeader()
	}
	c.index++
	rs, err := c.store.Apply(ctx, []projection.Entry{{Index: c.index, Term: 1, Events: events}})
	if err != nil {
		return nil, err
	}
	for i := range rs[0] {
		rs[0][i].Index = c.index
	}
	var published []domain.Message
	for i, r := range rs[0] {
		if r.Err != nil {
			continue
		}
		switch ev := events[i].(type) {
		case domain.MessageSent:
			if !r.Deduplicated {
				published = append(published, domain.Message{ChannelID: ev.ChannelID, Sequence: r.Sequence, AuthorID: ev.AuthorID,
					Payload: ev.Payload, ClientMessageID: ev.ClientMessageID, CreatedAt: ev.CreatedAt})
			}
		case domain.ChannelDeleted:
			c.hub.Forget(ev.ChannelID) // as the FSM does (tests here never mix it with sends)
		case domain.MessageRedacted:
			c.hub.Forget(ev.ChannelID)
		}
	}
	c.hub.Publish(published)
	return rs[0], nil
}

// ReadBarrier makes everything applied readable, as the real barrier's
// WaitApplied does; the store defers its commits (CommitDelay) so that a
// read path that skipped the barrier would miss writes.
func (c *localCluster) ReadBarrier(ctx context.Context) error {
	if !c.IsLeader(1) {
		return c.NotLeader()
	}
	return c.store.Flush(ctx)
}

func (c *localCluster) NodeID() string       { return "node1" }
func (c *localCluster) AppliedIndex() uint64 { return c.store.AppliedIndex() }

// WaitApplied polls: the fake has no apply notifications.
func (c *localCluster) WaitApplied(ctx context.Context, index uint64) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for c.store.AppliedIndex() < index {
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return c.store.Flush(ctx)
}

func (c *localCluster) LeaderCommitIndex() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.index
}

// LastLeaderContact is now unless the test set cutOffSince.
func (c *localCluster) LastLeaderContact() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.cutOffSince.IsZero() {
		return c.cutOffSince
	}
	return time.Now()
}

func (c *localCluster) NotLeader() *domain.NotLeaderError { h := c.hint; return &h }
func (c *localCluster) Term() uint64                      { return 1 }
func (c *localCluster) Watch() <-chan struct{}            { return c.watch }
func (c *localCluster) IsLeader(uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leader
}

const testMaxPayload = 1024

// newTestServer serves the API over an in-memory connection and returns a
// client, the raw connection (for hand-made requests), the fake cluster and
// the server.
func newTestServer(t *testing.T, leader bool) (raftogramv1.MessengerClient, *grpc.ClientConn, *localCluster, *Server) {
	t.Helper()
	return newTestServerWithHub(t, leader, fanout.New(EncodeMessage))
}

func newTestServerWithHub(t *testing.T, leader bool, hub *fanout.Hub) (raftogramv1.MessengerClient, *grpc.ClientConn, *localCluster, *Server) {
	t.Helper()
	return newTestServerWithOptions(t, leader, hub, Options{})
}

// newTestServerWithOptions is newTestServer with a hub and options of the
// caller's (MaxPayloadBytes and Now are the test's).
func newTestServerWithOptions(t *testing.T, leader bool, hub *fanout.Hub, opts Options) (raftogramv1.MessengerClient, *grpc.ClientConn, *localCluster, *Server) {
	t.Helper()
	return newTestServerDialing(t, leader, hub, opts)
}

// newTestServerDialing is newTestServerWithOptions with the client
// connection's extra dial options.
func newTestServerDialing(t *testing.T, leader bool, hub *fanout.Hub, opts Options, dial ...grpc.DialOption) (raftogramv1.MessengerClient, *grpc.ClientConn, *localCluster, *Server) {
	t.Helper()
	store, err := projection.Open(context.Background(), filepath.Join(t.TempDir(), projection.FileName), projection.Options{CommitDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	lc := &localCluster{store: store, hub: hub, leader: leader, watch: make(chan struct{}),
		hint: domain.NotLeaderError{LeaderID: "node1", LeaderGRPCAddr: "127.0.0.1:9000"}}
	now := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	opts.MaxPayloadBytes, opts.Now = testMaxPayload, func() time.Time { return now }
	api := New(lc, store, hub, opts)
	t.Cleanup(func() { api.Close() })
	ln := bufconn.Listen(1 << 20)
	g := grpc.NewServer(ServerOptions(testMaxPayload)...)
	raftogramv1.RegisterMessengerServer(g, api)
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet", append([]grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ln.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials())}, dial...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return raftogramv1.NewMessengerClient(conn), conn, lc, api
}

// rawMessage is a request body sent as is, bypassing client-side checks.
type rawMessage []byte

type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*rawMessage), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*rawMessage) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// stringField encodes a protobuf length-delimited field without validation.
func stringField(num int, s string) []byte {
	return append([]byte{byte(num<<3 | 2), byte(len(s))}, s...)
}

func digest(t *testing.T, lc *localCluster) string {
	t.Helper()
	d, err := lc.store.Digest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestBadInputGetsPreciseStatusAndChangesNothing(t *testing.T) {
	client, rawConn, lc, _ := newTestServer(t, true)
	ctx := context.Background()
	if _, err := client.CreateChannel(ctx, &raftogramv1.CreateChannelRequest{ChannelId: "general", Name: "General"}); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 129)
	send := func(r *raftogramv1.SendMessageRequest) func() error {
		return func() error { _, err := client.SendMessage(ctx, r); return err }
	}
	create := func(r *raftogramv1.CreateChannelRequest) func() error {
		return func() error { _, err := client.CreateChannel(ctx, r); return err }
	}
	read := func(r *raftogramv1.ReadHistoryRequest) func() error {
		return func() error { _, err := client.ReadHistory(ctx, r); return err }
	}
	subscribe := func(r *raftogramv1.SubscribeRequest) func() error {
		return func() error {
			stream, err := client.Subscribe(ctx, r)
			if err != nil {
				return err
			}
			_, err = stream.Recv()
			return err
		}
	}
	cases := []struct {
		name string
		call func() error
		code codes.Code
		msg  string
	}{
		{"create: bad id charset", create(&raftogramv1.CreateChannelRequest{ChannelId: "a b", Name: "x"}), codes.InvalidArgument, "channel_id has a character"},
		{"create: id too long", create(&raftogramv1.CreateChannelRequest{ChannelId: long, Name: "x"}), codes.InvalidArgument, "channel_id is 129 bytes"},
		{"create: no name", create(&raftogramv1.CreateChannelRequest{ChannelId: "x"}), codes.InvalidArgument, "name is required"},
		{"send: no channel", send(&raftogramv1.SendMessageRequest{AuthorId: "a"}), codes.InvalidArgument, "channel_id is required"},
		{"send: unknown channel", send(&raftogramv1.SendMessageRequest{ChannelId: "nope", AuthorId: "a"}), codes.NotFound, `channel "nope" not found`},
		{"send: no author", send(&raftogramv1.SendMessageRequest{ChannelId: "general"}), codes.InvalidArgument, "author_id is required"},
		{"send: author too long", send(&raftogramv1.SendMessageRequest{ChannelId: "general", AuthorId: long}), codes.InvalidArgument, "author_id is 129 bytes"},
		{"send: control char in id", send(&raftogramv1.SendMessageRequest{ChannelId: "general", AuthorId: "a", ClientMessageId: "a\x00b"}), codes.InvalidArgument, "client_message_id contains a control character"},
		{"send: client id too long", send(&raftogramv1.SendMessageRequest{ChannelId: "general", AuthorId: "a", ClientMessageId: long}), codes.InvalidArgument, "client_message_id is 129 bytes"},
		{"send: payload over limit", send(&raftogramv1.SendMessageRequest{ChannelId: "general", AuthorId: "a", Payload: make([]byte, testMaxPayload+1)}), codes.InvalidArgument, "payload is 1025 bytes; the maximum is 1024"},
		{"read: no channel", read(&raftogramv1.ReadHistoryRequest{}), codes.InvalidArgument, "channel_id is required"},
		{"read: unknown channel", read(&raftogramv1.ReadHistoryRequest{ChannelId: "nope"}), codes.NotFound, `channel "nope" not found`},
		{"subscribe: bad channel", subscribe(&raftogramv1.SubscribeRequest{ChannelId: "../x y"}), codes.InvalidArgument, "channel_id has a character"},
		{"subscribe: unknown channel", subscribe(&raftogramv1.SubscribeRequest{ChannelId: "nope"}), codes.NotFound, `channel "nope" not found`},
	}
	// Requests a well-behaved client library refuses to encode, sent as raw
	// bytes: strings that are not UTF-8.
	raw := func(method string, fields ...[]byte) func() error {
		return func() error {
			var body []byte
			for _, f := range fields {
				body = append(body, f...)
			}
			msg := rawMessage(body)
			return rawConn.Invoke(ctx, "/raftogram.v1.Messenger/"+method, &msg, &rawMessage{}, grpc.ForceCodec(rawCodec{}))
		}
	}
	cases = append(cases, []struct {
		name string
		call func() error
		code codes.Code
		msg  string
	}{
		{"create: name not UTF-8", raw("CreateChannel", stringField(2, "\xff\xfe")), codes.InvalidArgument, "malformed request"},
		{"send: author not UTF-8", raw("SendMessage", stringField(1, "general"), stringField(2, "\xc3\x28")), codes.InvalidArgument, "malformed request"},
		{"read: truncated message", raw("ReadHistory", []byte{0x0a, 0x05, 'a'}), codes.InvalidArgument, "malformed request"},
	}...)
	before := digest(t, lc)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			st, _ := status.FromError(err)
			if st.Code() != tc.code || !strings.Contains(st.Message(), tc.msg) {
				t.Fatalf("got %v, want %v containing %q", err, tc.code, tc.msg)
			}
		})
	}
	if digest(t, lc) != before {
		t.Fatal("a rejected request changed the projection")
	}
}

func TestHistoryLimits(t *testing.T) {
	client, _, _, _ := newTestServer(t, true)
	ctx := context.Background()
	if _, err := client.CreateChannel(ctx, &raftogramv1.CreateChannelRequest{ChannelId: "c", Name: "c"}); err != nil {
		t.Fatal(err)
	}
	for range 1005 {
		if _, err := client.SendMessage(ctx, &raftogramv1.SendMessageRequest{ChannelId: "c", AuthorId: "a"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		limit, want uint32
		more        bool
	}{{0, DefaultLimit, true}, {5, 5, true}, {MaxLimit, MaxLimit, true}, {1 << 31, MaxLimit, true}, {^uint32(0), MaxLimit, true}} {
		resp, err := client.ReadHistory(ctx, &raftogramv1.ReadHistoryRequest{ChannelId: "c", Limit: tc.limit})
		if err != nil || uint32(len(resp.GetMessages())) != tc.want || resp.GetHasMore() != tc.more {
			t.Fatalf("limit %d: %d messages, has_more=%v, err=%v; want %d", tc.limit, len(resp.GetMessages()), resp.GetHasMore(), err, tc.want)
		}
	}
	resp, err := client.ReadHistory(ctx, &raftogramv1.ReadHistoryRequest{ChannelId: "c", AfterSequence: 1000, Limit: 10})
	if err != nil || len(resp.GetMessages()) != 5 || resp.HasMore == nil || resp.GetHasMore() {
		t.Fatalf("tail: %v, %v (has_more must be set to false, not absent)", resp, err)
	}
}

// Writes answer with the index of the entry that produced the answer, a
// repeat's own entry included.
func TestResponsesAlwaysCarryFlags(t *testing.T) {
	client, _, _, _ := newTestServer(t, true)
	ctx := context.Background()
	c, err := client.CreateChannel(ctx, &raftogramv1.CreateChannelRequest{Name: "general"})
	if err != nil || c.Created == nil || !c.GetCreated() || c.GetChannelId() != "channel-1" || c.GetIndex() != 1 {
		t.Fatalf("create = %v, %v", c, err)
	}
	again, err := client.CreateChannel(ctx, &raftogramv1.CreateChannelRequest{ChannelId: "channel-1", Name: "renamed"})
	if err != nil || again.Created == nil || again.GetCreated() || again.GetName() != "general" || again.GetIndex() != 2 {
		t.Fatalf("idempotent create = %v, %v", again, err)
	}
	s, err := client.SendMessage(ctx, &raftogramv1.SendMessageRequest{ChannelId: "channel-1", AuthorId: "a", ClientMessageId: "k"})
	if err != nil || s.Deduplicated == nil || s.GetDeduplicated() || s.GetSequence() != 1 || s.GetIndex() != 3 {
		t.Fatalf("send = %v, %v", s, err)
	}
	d, err := client.SendMessage(ctx, &raftogramv1.SendMessageRequest{ChannelId: "channel-1", AuthorId: "a", ClientMessageId: "k"})
	if err != nil || !d.GetDeduplicated() || d.GetSequence() != 1 || d.GetIndex() != 4 {
		t.Fatalf("repeat = %v, %v", d, err)
	}
}

func TestFollowerRefusesEveryRPCWithHint(t *testing.T) {
	client, _, lc, _ := newTestServer(t, false)
	ctx := context.Background()
	calls := map[string]func() error{
		"CreateChannel": func() error {
			_, err := client.CreateChannel(ctx, &raftogramv1.CreateChannelRequest{Name: "g"})
			return err
		},
		"SendMessage": func() error {
			_, err := client.SendMessage(ctx, &raftogramv1.SendMessageRequest{ChannelId: "g", AuthorId: "a"})
			return err
		},
		"ReadHistory": func() error {
			_, err := client.ReadHistory(ctx, &raftogramv1.ReadHistoryRequest{ChannelId: "g"})
			return err
		},
		"Subscribe": func() error {
			stream, err := client.Subscribe(ctx, &raftogramv1.SubscribeRequest{ChannelId: "g"})
			if err == nil {
				_, err = stream.Recv()
			}
			return err
		},
	}
	for name, call := range calls {
		st, _ := status.FromError(call())
		if st.Code() != codes.FailedPrecondition || st.Message() != NotLeaderMessage {
			t.Fatalf("%s: %v", name, st)
		}
		nl, ok := st.Details()[0].(*raftogramv1.NotLeader)
		if !ok || nl.GetLeaderGrpcTarget() != "127.0.0.1:9000" || nl.GetRaftLeaderId() != "node1" {
			t.Fatalf("%s: details %v", name, st.Details())
		}
	}
	// With no leader known the status is Unavailable with an empty hint.
	lc.hint = domain.NotLeaderError{}
	st, _ := status.FromError(calls["CreateChannel"]())
	if st.Code() != codes.Unavailable || len(st.Details()) != 1 {
		t.Fatalf("no leader known: %v %v", st, st.Details())
	}
}

func TestSubscribeFromCursorThenLiveAndShutdown(t *testing.T) {
	t.Run("hub encodes", func(t *testing.T) { testSubscribe(t, fanout.New(EncodeMessage)) })
	t.Run("hub without encoder", func(t *testing.T) { testSubscribe(t, fanout.New(nil)) })
}

func testSubscribe(t *testing.T, hub *fanout.Hub) {
	client, _, _, api := newTestServerWithHub(t, true, hub)
	ctx := context.Background()
	if _, err := client.CreateChannel(ctx, &raftogramv1.CreateChannelRequest{ChannelId: "c", Name: "c"}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := client.SendMessage(ctx, &raftogramv1.SendMessageRequest{ChannelId: "c", AuthorId: "a"}); err != nil {
			t.Fatal(err)
		}
	}
	stream, err := client.Subscribe(ctx, &raftogramv1.SubscribeRequest{ChannelId: "c", AfterSequence: 1})
	if err != nil {
		t.Fatal(err)
	}
	chunk, err := stream.Recv()
	if err != nil || len(chunk.GetMessages()) != 2 || chunk.GetMessages()[0].GetSequence() != 2 {
		t.Fatalf("history chunk: %v, %v", chunk, err)
	}
	if _, err := client.SendMessage(ctx, &raftogramv1.SendMessageRequest{ChannelId: "c", AuthorId: "b", Payload: []byte{0, 1, 2}, ClientMessageId: "m4"}); err != nil {
		t.Fatal(err)
	}
	chunk, err = stream.Recv()
	if err != nil || len(chunk.GetMessages()) != 1 || chunk.GetMessages()[0].GetSequence() != 4 {
		t.Fatalf("live chunk: %v, %v", chunk, err)
	}
	// The live chunk was encoded once by the hub (EncodeMessage); it must
	// decode to exactly what ReadHistory returns for the same message.
	hist, err := client.ReadHistory(ctx, &raftogramv1.ReadHistoryRequest{ChannelId: "c", AfterSequence: 3})
	if err != nil || len(hist.GetMessages()) != 1 {
		t.Fatalf("ReadHistory after 3: %v, %v", hist, err)
	}
	if !proto.Equal(chunk.GetMessages()[0], hist.GetMessages()[0]) {
		t.Fatalf("live message %v differs from history %v", chunk.GetMessages()[0], hist.GetMessages()[0])
	}
	api.Shutdown()
	_, err = stream.Recv()
	if st, _ := status.FromError(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "shutting down") {
		t.Fatalf("after shutdown: %v", err)
	}
}

func TestHostileClients(t *testing.T) {
	client, _, lc, _ := newTestServer(t, true)
	ctx := context.Background()
	if _, err := client.CreateChannel(ctx, &raftogramv1.CreateChannelRequest{ChannelId: "c", Name: "c"}); err != nil {
		t.Fatal(err)
	}
	before := digest(t, lc)

	// A request larger than the server's receive limit is refused by gRPC
	// before any handler runs.
	_, err := client.SendMessage(ctx, &raftogramv1.SendMessageRequest{ChannelId: "c", AuthorId: "a", Payload: make([]byte, testMaxPayload+128<<10)})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("oversized request: %v, want ResourceExhausted", err)
	}
	if digest(t, lc) != before {
		t.Fatal("an oversized request changed the projection")
	}

	// A subscriber that never reads, and many that vanish mid-stream, must
	// not hold up writers or leak subscriptions.
	stalled, cancelStalled := context.WithCancel(ctx)
	if _, err := client.Subscribe(stalled, &raftogramv1.SubscribeRequest{ChannelId: "c"}); err != nil {
		t.Fatal(err)
	}
	var cancels []context.CancelFunc
	for range 100 {
		sctx, cancel := context.WithCancel(ctx)
		cancels = append(cancels, cancel)
		if _, err := client.Subscribe(sctx, &raftogramv1.SubscribeRequest{ChannelId: "c"}); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "101 subscriptions registered", func() bool { return lc.hub.Len() == 101 })
	payload := make([]byte, testMaxPayload)
	for i := range 2000 { // ~2 MiB: far more than the stalled stream's flow-control window
		if _, err := client.SendMessage(ctx, &raftogramv1.SendMessageRequest{ChannelId: "c", AuthorId: "a", Payload: payload}); err != nil {
			t.Fatalf("send %d with a stalled subscriber: %v", i, err)
		}
		if i == 1000 {
			for _, cancel := range cancels {
				cancel()
			}
		}
	}
	waitUntil(t, "abandoned subscriptions closed", func() bool { return lc.hub.Len() == 1 })
	cancelStalled()
	waitUntil(t, "stalled subscription closed", func() bool { return lc.hub.Len() == 0 })
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
