package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	peerv1 "github.com/raftogram/raftogram/api/proto/raftogram/peer/v1"
	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/config"
	"github.com/raftogram/raftogram/grpcapi"
	"github.com/raftogram/raftogram/internal/netproxy"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const (
	unspecified  = raftogramv1.ReadConsistency_READ_CONSISTENCY_UNSPECIFIED
	linearizable = raftogramv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE
	atLeast      = raftogramv1.ReadConsistency_READ_CONSISTENCY_AT_LEAST
	local        = raftogramv1.ReadConsistency_READ_CONSISTENCY_LOCAL
)

var levels = []raftogramv1.ReadConsistency{linearizable, atLeast, local}

// followers returns the positions of the running nodes other than l.
func (c *testCluster) followers(l int) []int {
	var out []int
	for i, s := range c.servers {
		if i != l && s != nil {
			out = append(out, i)
		}
	}
	return out
}

func readAt(c raftogramv1.MessengerClient, timeout time.Duration, ch string, level raftogramv1.ReadConsistency, minIndex uint64) (*raftogramv1.ReadHistoryResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return c.ReadHistory(ctx, &raftogramv1.ReadHistoryRequest{ChannelId: ch, Consistency: level, MinIndex: minIndex})
}

// checkSequences fails unless msgs hold exactly the sequences from..to.
func checkSequences(t *testing.T, what string, msgs []*raftogramv1.Message, from, to uint64) {
	t.Helper()
	if uint64(len(msgs)) != to-from+1 {
		t.Fatalf("%s: %d messages, want %d..%d", what, len(msgs), from, to)
	}
	for i, m := range msgs {
		if m.GetSequence() != from+uint64(i) {
			t.Fatalf("%s: message %d has sequence %d, want %d", what, i, m.GetSequence(), from+uint64(i))
		}
	}
}

// Every level is served by a follower, fresh as the level asks: a
// LINEARIZABLE read right after an acknowledged write sees it, AT_LEAST the
// write's index sees it, LOCAL answers with what the node has and says so.
func TestFollowerServesReadsAtEveryLevel(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	mustCreate(t, c.client(l), "general")
	var last *raftogramv1.SendMessageResponse
	for i := 1; i <= 5; i++ {
		last = mustSend(t, c.client(l), "general", fmt.Sprintf("m%d", i))
	}
	if last.GetIndex() == 0 {
		t.Fatalf("SendMessage answered no index: %v", last)
	}
	for _, f := range c.followers(l) {
		id := c.cfgs[f].NodeID
		fc := c.client(f)
		for _, level := range levels {
			what := fmt.Sprintf("%s on %s", level, id)
			if level == local {
				waitFor(t, "follower applies the writes", 10*time.Second, func() error {
					if got := c.servers[f].Node().AppliedIndex(); got < last.GetIndex() {
						return fmt.Errorf("applied %d", got)
					}
					return nil
				})
			}
			resp, err := readAt(fc, 10*time.Second, "general", level, last.GetIndex())
			if err != nil {
				t.Fatalf("ReadHistory %s: %v", what, err)
			}
			checkSequences(t, "ReadHistory "+what, resp.GetMessages(), 1, 5)
			if resp.GetNodeId() != id || resp.GetAppliedIndex() < last.GetIndex() {
				t.Fatalf("ReadHistory %s answered node %q applied %d, want %s at >= %d", what, resp.GetNodeId(), resp.GetAppliedIndex(), id, last.GetIndex())
			}
			ch, err := fc.GetChannel(ctxT(t), &raftogramv1.GetChannelRequest{ChannelId: "general", Consistency: level, MinIndex: last.GetIndex()})
			if err != nil || ch.GetFirstSequence() != 1 || ch.GetLastSequence() != 5 || ch.GetMessageCount() != 5 || ch.GetName() != "general" {
				t.Fatalf("GetChannel %s = %v, %v", what, ch, err)
			}
			list, err := fc.ListChannels(ctxT(t), &raftogramv1.ListChannelsRequest{Consistency: level, MinIndex: last.GetIndex()})
			if err != nil || len(list.GetChannels()) != 1 || list.GetChannels()[0].GetLastSequence() != 5 || list.GetNextPageToken() != "" {
				t.Fatalf("ListChannels %s = %v, %v", what, list, err)
			}
			if _, err := fc.GetChannel(ctxT(t), &raftogramv1.GetChannelRequest{ChannelId: "nope", Consistency: level}); status.Code(err) != codes.NotFound {
				t.Fatalf("GetChannel of an unknown channel %s: %v", what, err)
			}

			ctx, cancel := context.WithCancel(ctxT(t))
			stream, err := fc.Subscribe(ctx, &raftogramv1.SubscribeRequest{ChannelId: "general", AfterSequence: 2, Consistency: level, MinIndex: last.GetIndex()})
			if err != nil {
				t.Fatal(err)
			}
			chunk, err := stream.Recv()
			cancel()
			if err != nil {
				t.Fatalf("Subscribe %s: %v", what, err)
			}
			checkSequences(t, "Subscribe "+what, chunk.GetMessages(), 3, 5)
			if chunk.GetNodeId() != id || chunk.GetAppliedIndex() < last.GetIndex() || chunk.GetLeaderCommitIndex() < last.GetIndex() {
				t.Fatalf("Subscribe %s: chunk from %q applied %d leader commit %d", what, chunk.GetNodeId(), chunk.GetAppliedIndex(), chunk.GetLeaderCommitIndex())
			}
		}
		// The default stays leader-only, for the channel queries too.
		for name, err := range map[string]error{
			"GetChannel":   errOf(fc.GetChannel(ctxT(t), &raftogramv1.GetChannelRequest{ChannelId: "general"})),
			"ListChannels": errOf(fc.ListChannels(ctxT(t), &raftogramv1.ListChannelsRequest{})),
		} {
			if st, _ := status.FromError(err); st.Code() != codes.FailedPrecondition || st.Message() != grpcapi.NotLeaderMessage {
				t.Fatalf("%s without a level on follower %s: %v", name, id, err)
			}
		}
	}
	// The leader's default answer looks as before: no node or index.
	resp, err := readAt(c.client(l), 10*time.Second, "general", unspecified, 0)
	if err != nil || resp.GetNodeId() != "" || resp.GetAppliedIndex() != 0 || len(resp.GetMessages()) != 5 {
		t.Fatalf("default ReadHistory on the leader = %v, %v", resp, err)
	}
}

func errOf[T any](_ T, err error) error { return err }

// A follower cut off from the leader's appends answers LOCAL reads with
// what it has (and its lower applied index), and never answers a
// LINEARIZABLE read or an AT_LEAST read past what it has: those fail with
// the deadline. Its LOCAL stream gets heartbeats, then ends Unavailable once
// it has been cut off for follower_stream_cutoff.
func TestPartitionedFollowerNeverAnswersStale(t *testing.T) {
	const heartbeat, cutoff = 100 * time.Millisecond, 2 * time.Second
	c := newProxiedTestCluster(t, 3, func(cfg *config.Config) {
		cfg.FollowerStreamHeartbeat = heartbeat
		cfg.FollowerStreamCutoff = cutoff
	})
	l := c.leader()
	mustCreate(t, c.client(l), "general")
	before := c.send("general", "before")
	c.converged()
	f := c.followers(l)[0]
	fc := c.client(f)

	stream, err := fc.Subscribe(ctxT(t), &raftogramv1.SubscribeRequest{ChannelId: "general", Consistency: local})
	if err != nil {
		t.Fatal(err)
	}
	if chunk, err := stream.Recv(); err != nil || len(chunk.GetMessages()) != 1 {
		t.Fatalf("first chunk: %v, %v", chunk, err)
	}

	c.proxies[f].Set(netproxy.Reset)
	cutAt := time.Now()
	var after *raftogramv1.SendMessageResponse
	for i := range 5 {
		after = c.send("general", fmt.Sprintf("after-%d", i))
	}
	if after.GetIndex() <= before.GetIndex() {
		t.Fatalf("index did not grow: %d then %d", before.GetIndex(), after.GetIndex())
	}

	resp, err := readAt(fc, 5*time.Second, "general", local, 0)
	if err != nil || len(resp.GetMessages()) != 1 || resp.GetAppliedIndex() >= after.GetIndex() || resp.GetAppliedIndex() < before.GetIndex() {
		t.Fatalf("LOCAL on the cut-off follower = %v, %v; want 1 message at an index in [%d, %d)", resp, err, before.GetIndex(), after.GetIndex())
	}
	for _, level := range []raftogramv1.ReadConsistency{linearizable, atLeast} {
		start := time.Now()
		resp, err := readAt(fc, 1500*time.Millisecond, "general", level, after.GetIndex())
		if code := status.Code(err); code != codes.DeadlineExceeded && code != codes.Unavailable {
			t.Fatalf("%s on the cut-off follower = %v, %v; want the deadline", level, resp, err)
		}
		if time.Since(start) < time.Second {
			t.Fatalf("%s failed after %v, before its deadline: %v", level, time.Since(start), err)
		}
	}
	ch, err := fc.GetChannel(ctxT(t), &raftogramv1.GetChannelRequest{ChannelId: "general", Consistency: local})
	if err != nil || ch.GetLastSequence() != 1 {
		t.Fatalf("LOCAL GetChannel on the cut-off follower = %v, %v", ch, err)
	}

	// The stream stays open with heartbeats, then ends Unavailable.
	heartbeats := 0
	for {
		chunk, err := stream.Recv()
		if err != nil {
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("stream on the cut-off follower ended with %v, want Unavailable", err)
			}
			if since := time.Since(cutAt); since < cutoff {
				t.Fatalf("stream ended %v after the cut, before the cutoff %v", since, cutoff)
			}
			break
		}
		if len(chunk.GetMessages()) > 0 {
			t.Fatalf("the cut-off follower streamed %v", chunk.GetMessages())
		}
		if chunk.GetNodeId() != c.cfgs[f].NodeID || chunk.GetAppliedIndex() >= after.GetIndex() {
			t.Fatalf("heartbeat %v", chunk)
		}
		heartbeats++
	}
	if heartbeats < 3 {
		t.Fatalf("%d heartbeats before the stream ended", heartbeats)
	}

	c.proxies[f].Set(netproxy.Up)
	resp, err = readAt(fc, 15*time.Second, "general", linearizable, 0)
	if err != nil || len(resp.GetMessages()) != 6 {
		t.Fatalf("LINEARIZABLE after healing = %v, %v", resp, err)
	}
}

// With forward_writes a follower's writes reach the leader and the answer
// comes back with its index; a read AT_LEAST that index on the follower
// sees it. A call already forwarded is never forwarded again.
func TestForwardedWritesAreReadableAtTheirIndex(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *config.Config) { cfg.ForwardWrites = true })
	l := c.leader()
	f := c.followers(l)[0]
	fc := c.client(f)
	created, err := fc.CreateChannel(ctxT(t), &raftogramv1.CreateChannelRequest{ChannelId: "general", Name: "general"})
	if err != nil || !created.GetCreated() || created.GetIndex() == 0 {
		t.Fatalf("forwarded CreateChannel = %v, %v", created, err)
	}
	sent, err := fc.SendMessage(ctxT(t), &raftogramv1.SendMessageRequest{ChannelId: "general", AuthorId: "alice", Payload: []byte("hi"), ClientMessageId: "k1"})
	if err != nil || sent.GetSequence() != 1 || sent.GetIndex() <= created.GetIndex() {
		t.Fatalf("forwarded SendMessage = %v, %v", sent, err)
	}
	again, err := fc.SendMessage(ctxT(t), &raftogramv1.SendMessageRequest{ChannelId: "general", AuthorId: "alice", Payload: []byte("hi"), ClientMessageId: "k1"})
	if err != nil || !again.GetDeduplicated() || again.GetSequence() != 1 {
		t.Fatalf("forwarded repeat = %v, %v", again, err)
	}
	resp, err := readAt(fc, 10*time.Second, "general", atLeast, sent.GetIndex())
	if err != nil || len(resp.GetMessages()) != 1 || string(resp.GetMessages()[0].GetPayload()) != "hi" {
		t.Fatalf("read at the write's index on the follower = %v, %v", resp, err)
	}
	// Validation errors come back as they are.
	if _, err := fc.SendMessage(ctxT(t), &raftogramv1.SendMessageRequest{ChannelId: "nope", AuthorId: "a"}); status.Code(err) != codes.NotFound {
		t.Fatalf("forwarded send to an unknown channel: %v", err)
	}
	// A call marked as forwarded gets NotLeader from a follower.
	ctx := metadata.AppendToOutgoingContext(ctxT(t), grpcapi.ForwardedByHeader, "someone")
	_, err = fc.SendMessage(ctx, &raftogramv1.SendMessageRequest{ChannelId: "general", AuthorId: "a"})
	if st, _ := status.FromError(err); st.Code() != codes.FailedPrecondition || st.Message() != grpcapi.NotLeaderMessage {
		t.Fatalf("an already-forwarded call on a follower: %v", err)
	}
}

// A follower's consistency stream carries every message in order, without
// gaps or repeats, across leadership changes (it does not end with them),
// and another node resumes it from the last sequence delivered. Leadership
// moves through the Admin service, to a named node and to any.
func TestFollowerStreamSurvivesLeadershipChangesAndResumesElsewhere(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	mustCreate(t, c.client(l), "general")
	f := c.followers(l)[0]
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	stream, err := c.client(f).Subscribe(ctx, &raftogramv1.SubscribeRequest{ChannelId: "general", Consistency: linearizable})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan uint64, 100)
	streamErr := make(chan error, 1)
	go func() {
		for {
			chunk, err := stream.Recv()
			if err != nil {
				streamErr <- err
				return
			}
			for _, m := range chunk.GetMessages() {
				got <- m.GetSequence()
			}
		}
	}()
	next := uint64(1)
	expect := func(upTo uint64) {
		t.Helper()
		for next <= upTo {
			select {
			case seq := <-got:
				if seq != next {
					t.Fatalf("stream delivered %d, want %d", seq, next)
				}
				next++
			case err := <-streamErr:
				t.Fatalf("stream ended at %d: %v", next, err)
			case <-time.After(15 * time.Second):
				t.Fatalf("stream stuck before %d", next)
			}
		}
	}
	var last *raftogramv1.SendMessageResponse
	for i := 1; i <= 5; i++ {
		last = c.send("general", fmt.Sprintf("a%d", i))
	}
	expect(5)

	// Move leadership to the follower that streams, then to any node.
	to := c.cfgs[f].NodeID
	resp, err := c.admin(l).TransferLeadership(ctxT(t), &raftogramv1.TransferLeadershipRequest{ToNodeId: to})
	if err != nil {
		t.Fatalf("transfer to %s: %v", to, err)
	}
	if resp.GetLeaderId() != "" && resp.GetLeaderId() != to {
		t.Fatalf("transfer to %s answered leader %q", to, resp.GetLeaderId())
	}
	if nl := c.leader(); nl != f {
		t.Fatalf("leader is %s after a transfer to %s", c.cfgs[nl].NodeID, to)
	}
	for i := 6; i <= 10; i++ {
		last = c.send("general", fmt.Sprintf("a%d", i))
	}
	expect(10)
	if _, err := c.admin(f).TransferLeadership(ctxT(t), &raftogramv1.TransferLeadershipRequest{}); err != nil {
		t.Fatalf("transfer to any: %v", err)
	}
	if nl := c.leader(); nl == f {
		t.Fatalf("%s still leads after a transfer to any", to)
	}
	for i := 11; i <= 15; i++ {
		last = c.send("general", fmt.Sprintf("a%d", i))
	}
	expect(15)
	select {
	case seq := <-got:
		t.Fatalf("stream delivered %d after 15", seq)
	case err := <-streamErr:
		t.Fatalf("stream ended: %v", err)
	default:
	}

	// Resume on another node from sequence 10.
	other := c.followers(f)[0]
	rctx, rcancel := context.WithCancel(ctxT(t))
	defer rcancel()
	resumed, err := c.client(other).Subscribe(rctx, &raftogramv1.SubscribeRequest{ChannelId: "general", AfterSequence: 10, Consistency: atLeast, MinIndex: last.GetIndex()})
	if err != nil {
		t.Fatal(err)
	}
	chunk, err := resumed.Recv()
	if err != nil {
		t.Fatal(err)
	}
	checkSequences(t, "resumed stream on "+c.cfgs[other].NodeID, chunk.GetMessages(), 11, 15)
}

func TestAdminReportsStatusAndRefusesBadTransfers(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	mustCreate(t, c.client(l), "general")
	c.converged()
	for i := range c.servers {
		st, err := c.admin(i).GetNodeStatus(ctxT(t), &raftogramv1.GetNodeStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		wantRole := "follower"
		if i == l {
			wantRole = "leader"
		}
		if st.GetNodeId() != c.cfgs[i].NodeID || st.GetRole() != wantRole || st.GetLeaderId() != c.cfgs[l].NodeID ||
			st.GetLeaderGrpcAddr() != c.cfgs[l].GRPCBindAddr || st.GetVersion() != testVersion || st.GetTerm() == 0 ||
			st.GetAppliedIndex() == 0 || st.GetCommitIndex() < st.GetAppliedIndex() || st.GetLastLogIndex() < st.GetCommitIndex() {
			t.Fatalf("status of %s: %v", c.cfgs[i].NodeID, st)
		}
		if i == l && st.GetLastContactMs() != 0 {
			t.Fatalf("leader reports last contact %dms", st.GetLastContactMs())
		}
		if i != l && (st.GetLastContactMs() < 0 || st.GetLastContactMs() > 10_000) {
			t.Fatalf("follower %s reports last contact %dms", c.cfgs[i].NodeID, st.GetLastContactMs())
		}
	}
	f := c.followers(l)[0]
	_, err := c.admin(f).TransferLeadership(ctxT(t), &raftogramv1.TransferLeadershipRequest{})
	if st, _ := status.FromError(err); st.Code() != codes.FailedPrecondition || st.Message() != grpcapi.NotLeaderMessage {
		t.Fatalf("transfer on a follower: %v", err)
	}
	if _, err := c.admin(l).TransferLeadership(ctxT(t), &raftogramv1.TransferLeadershipRequest{ToNodeId: "nobody"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("transfer to an unknown node: %v", err)
	}
}

// Peer.ReadIndex is the leader's: it answers an index at or past every
// acknowledged write; a follower refuses with NotLeader.
func TestPeerReadIndexOnlyOnTheLeader(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	mustCreate(t, c.client(l), "general")
	sent := mustSend(t, c.client(l), "general", "m1")
	ri, err := c.peer(l).ReadIndex(ctxT(t), &peerv1.ReadIndexRequest{NodeId: "test"})
	if err != nil || ri.GetReadIndex() < sent.GetIndex() || ri.GetTerm() == 0 {
		t.Fatalf("ReadIndex on the leader = %v, %v; want >= %d", ri, err, sent.GetIndex())
	}
	_, err = c.peer(c.followers(l)[0]).ReadIndex(ctxT(t), &peerv1.ReadIndexRequest{NodeId: "test"})
	if st, _ := status.FromError(err); st.Code() != codes.FailedPrecondition || st.Message() != grpcapi.NotLeaderMessage {
		t.Fatalf("ReadIndex on a follower: %v", err)
	}
}
