package grpcapi

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/domain"
	"github.com/raftogram/raftogram/fanout"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const (
	levelLocal   = raftogramv1.ReadConsistency_READ_CONSISTENCY_LOCAL
	levelAtLeast = raftogramv1.ReadConsistency_READ_CONSISTENCY_AT_LEAST
)

// Idle streams that asked for a level get heartbeat chunks naming the node
// and its indexes; default streams never do (they look as before).
func TestHeartbeatsOnlyOnConsistencyStreams(t *testing.T) {
	client, _, _, _ := newTestServerWithOptions(t, true, fanout.New(EncodeMessage), Options{StreamHeartbeat: 20 * time.Millisecond})
	ctx := context.Background()
	if _, err := client.CreateChannel(ctx, &raftogramv1.CreateChannelRequest{ChannelId: "c", Name: "c"}); err != nil {
		t.Fatal(err)
	}
	sent, err := client.SendMessage(ctx, &raftogramv1.SendMessageRequest{ChannelId: "c", AuthorId: "a"})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	stream, err := client.Subscribe(sctx, &raftogramv1.SubscribeRequest{ChannelId: "c", Consistency: levelLocal})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil || len(first.GetMessages()) != 1 || first.GetNodeId() != "node1" || first.GetAppliedIndex() != sent.GetIndex() || first.GetLeaderCommitIndex() != sent.GetIndex() {
		t.Fatalf("first chunk = %v, %v", first, err)
	}
	for range 3 {
		hb, err := stream.Recv()
		if err != nil || len(hb.GetMessages()) != 0 || hb.GetNodeId() != "node1" || hb.GetAppliedIndex() != sent.GetIndex() {
			t.Fatalf("heartbeat = %v, %v", hb, err)
		}
	}

	dctx, dcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer dcancel()
	plain, err := client.Subscribe(dctx, &raftogramv1.SubscribeRequest{ChannelId: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if chunk, err := plain.Recv(); err != nil || len(chunk.GetMessages()) != 1 || chunk.GetNodeId() != "" || chunk.GetAppliedIndex() != 0 {
		t.Fatalf("default stream's first chunk = %v, %v", chunk, err)
	}
	if chunk, err := plain.Recv(); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("idle default stream sent %v, %v; want nothing until the deadline", chunk, err)
	}
}

// A consistency stream on a node without leader contact for longer than
// the cutoff ends Unavailable.
func TestConsistencyStreamEndsWhenCutOff(t *testing.T) {
	client, _, lc, _ := newTestServerWithOptions(t, true, fanout.New(EncodeMessage),
		Options{StreamHeartbeat: 20 * time.Millisecond, StreamCutoff: 200 * time.Millisecond})
	ctx := context.Background()
	if _, err := client.CreateChannel(ctx, &raftogramv1.CreateChannelRequest{ChannelId: "c", Name: "c"}); err != nil {
		t.Fatal(err)
	}
	lc.mu.Lock()
	lc.leader = false
	lc.cutOffSince = time.Now().Add(-time.Hour)
	lc.mu.Unlock()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	start := time.Now()
	stream, err := client.Subscribe(sctx, &raftogramv1.SubscribeRequest{ChannelId: "c", Consistency: levelLocal})
	if err != nil {
		t.Fatal(err)
	}
	for {
		_, err := stream.Recv()
		if err == nil {
			continue
		}
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("stream ended with %v, want Unavailable", err)
		}
		if time.Since(start) < 200*time.Millisecond {
			t.Fatalf("stream ended after %v, before the cutoff counted from its start", time.Since(start))
		}
		return
	}
}

func TestChannelQueriesValidateAndPage(t *testing.T) {
	client, _, _, _ := newTestServer(t, true)
	ctx := context.Background()
	for i := range 5 {
		if _, err := client.CreateChannel(ctx, &raftogramv1.CreateChannelRequest{ChannelId: fmt.Sprintf("c%d", i), Name: "n"}); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	token := ""
	for {
		page, err := client.ListChannels(ctx, &raftogramv1.ListChannelsRequest{PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range page.GetChannels() {
			ids = append(ids, ch.GetChannelId())
		}
		if token = page.GetNextPageToken(); token == "" {
			break
		}
	}
	if fmt.Sprint(ids) != "[c0 c1 c2 c3 c4]" {
		t.Fatalf("listed %v", ids)
	}
	for name, err := range map[string]error{
		"malformed token":         errOf(client.ListChannels(ctx, &raftogramv1.ListChannelsRequest{PageToken: "!!"})),
		"token of a bad id":       errOf(client.ListChannels(ctx, &raftogramv1.ListChannelsRequest{PageToken: "IA"})),
		"bad channel id":          errOf(client.GetChannel(ctx, &raftogramv1.GetChannelRequest{ChannelId: "no spaces"})),
		"unknown level":           errOf(client.GetChannel(ctx, &raftogramv1.GetChannelRequest{ChannelId: "c1", Consistency: 99})),
		"unknown level (history)": errOf(client.ReadHistory(ctx, &raftogramv1.ReadHistoryRequest{ChannelId: "c1", Consistency: 99})),
	} {
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
	if _, err := client.GetChannel(ctx, &raftogramv1.GetChannelRequest{ChannelId: "nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown channel: %v", err)
	}
	// AT_LEAST an index the node has not applied waits for the deadline.
	dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := client.GetChannel(dctx, &raftogramv1.GetChannelRequest{ChannelId: "c1", Consistency: levelAtLeast, MinIndex: 1000}); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("AT_LEAST a future index: %v", err)
	}
}

func errOf[T any](_ T, err error) error { return err }

// A forwarding follower that knows no leader waits within the deadline,
// then answers Unavailable (nothing was written).
func TestForwardingWithoutLeaderIsUnavailable(t *testing.T) {
	client, _, lc, _ := newTestServerWithOptions(t, false, fanout.New(EncodeMessage), Options{ForwardWrites: true})
	lc.hint = domain.NotLeaderError{}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := client.CreateChannel(ctx, &raftogramv1.CreateChannelRequest{Name: "x"})
	if status.Code(err) != codes.Unavailable || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("forward without a leader: %v after %v", err, time.Since(start))
	}
}

// Forwarded calls carry the caller's metadata, not gRPC's per-hop headers,
// and name the forwarding node.
func TestForwardContextCarriesMetadataAndMarker(t *testing.T) {
	in := metadata.MD{":authority": {"x"}, "content-type": {"application/grpc"}, "user-agent": {"grpc-go"},
		"grpc-accept-encoding": {"gzip"}, "x-trace": {"abc"}, ForwardedByHeader: {"spoofed"}}
	ctx := metadata.NewIncomingContext(context.Background(), in)
	out, _ := metadata.FromOutgoingContext(forwardContext(ctx, "node2"))
	want := metadata.MD{"x-trace": {"abc"}, ForwardedByHeader: {"node2"}}
	if fmt.Sprint(out) != fmt.Sprint(want) {
		t.Fatalf("forwarded metadata %v, want %v", out, want)
	}
}

// fakeLeader answers every SendMessage with a fixed error, as a leader
// whose commit outcome is unknown (or that is itself not leading) would.
type fakeLeader struct {
	raftogramv1.UnimplementedMessengerServer
	err   error
	calls atomic.Int32
}

func (f *fakeLeader) SendMessage(context.Context, *raftogramv1.SendMessageRequest) (*raftogramv1.SendMessageResponse, error) {
	f.calls.Add(1)
	return nil, f.err
}

// A forwarded write whose outcome the leader reports unknown (Unavailable
// without a NotLeader detail) stays Unavailable and says to retry with the
// same id; a definite answer passes through unchanged.
func TestForwardedUnknownOutcomeIsUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      error
		code     codes.Code
		contains string
	}{
		{"unknown outcome", status.Error(codes.Unavailable, "write outcome unknown: leadership lost"), codes.Unavailable, "retry with the same client_message_id"},
		{"definite answer", status.Error(codes.NotFound, "channel \"c\" does not exist"), codes.NotFound, "does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leader := &fakeLeader{err: tc.err}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			g := grpc.NewServer()
			raftogramv1.RegisterMessengerServer(g, leader)
			go g.Serve(ln)
			t.Cleanup(g.Stop)

			client, _, lc, _ := newTestServerWithOptions(t, false, fanout.New(EncodeMessage), Options{ForwardWrites: true})
			lc.hint = domain.NotLeaderError{LeaderID: "node1", LeaderGRPCAddr: ln.Addr().String()}
			before := digest(t, lc)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err = client.SendMessage(ctx, &raftogramv1.SendMessageRequest{ChannelId: "c", AuthorId: "a", Payload: []byte("p"), ClientMessageId: "m1"})
			st, _ := status.FromError(err)
			if st.Code() != tc.code || !strings.Contains(st.Message(), tc.contains) {
				t.Fatalf("forwarded send: %v; want %v mentioning %q", err, tc.code, tc.contains)
			}
			if n := leader.calls.Load(); n != 1 {
				t.Fatalf("the leader got %d calls, want exactly 1 (an unknown outcome is the client's to retry)", n)
			}
			if after := digest(t, lc); after != before {
				t.Fatal("the forwarding follower changed its own state")
			}
		})
	}
}
