// Package e2e drives the real raftogram binary: it builds ./cmd/raftogram
// once, starts real processes on loopback ports and talks to them over gRPC
// and HTTP /health, following the README flow.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/client"
	"github.com/raftogram/raftogram/config"
	"github.com/raftogram/raftogram/httpapi"
	"github.com/raftogram/raftogram/internal/proccluster"
	"github.com/raftogram/raftogram/internal/testbin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "raftogram-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	binPath, err = testbin.BuildBinary(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// sent is one acknowledged message.
type sent struct {
	author, clientID string
	payload          []byte
}

// TestThreeNodeCluster follows the README: start three nodes, find the
// leader, use the API, fail over after SIGKILL, restart with data kept, stop
// gracefully and bootstrap again from empty data directories.
func TestThreeNodeCluster(t *testing.T) {
	t.Parallel()
	testStart := time.Now()
	c := newCluster(t, 3)
	all := c.ids()

	// 1-2. Start in a non-sorted order; exactly one leader, followers agree.
	c.start("node3", "node1", "node2")
	leader := c.waitStable(all...)
	t.Logf("initial leader: %s", leader.ID)
	lc := c.client(leader.ID)

	// 3. Channels.
	auto, err := lc.CreateChannel(rpcCtx(t), &raftogramv1.CreateChannelRequest{Name: "auto"})
	if err != nil {
		t.Fatalf("CreateChannel without id: %v", err)
	}
	if !strings.HasPrefix(auto.GetChannelId(), "channel-") || auto.GetName() != "auto" || auto.Created == nil || !auto.GetCreated() {
		t.Fatalf("CreateChannel without id = %v, want channel-<n>, name auto, created=true", auto)
	}
	gen, err := lc.CreateChannel(rpcCtx(t), &raftogramv1.CreateChannelRequest{ChannelId: "general", Name: "General"})
	if err != nil {
		t.Fatalf("CreateChannel general: %v", err)
	}
	if gen.GetChannelId() != "general" || gen.GetName() != "General" || gen.Created == nil || !gen.GetCreated() {
		t.Fatalf("CreateChannel general = %v, want general/General created=true", gen)
	}
	again, err := lc.CreateChannel(rpcCtx(t), &raftogramv1.CreateChannelRequest{ChannelId: "general", Name: "Other name"})
	if err != nil {
		t.Fatalf("CreateChannel general again: %v", err)
	}
	if again.GetChannelId() != "general" || again.GetName() != "General" || again.Created == nil || again.GetCreated() {
		t.Fatalf("CreateChannel general again = %v, want stored name General, created=false", again)
	}

	// Messages.
	acked := map[uint64]sent{}
	send := func(cl raftogramv1.MessengerClient, author, clientID, payload string) *raftogramv1.SendMessageResponse {
		t.Helper()
		resp, err := cl.SendMessage(rpcCtx(t), &raftogramv1.SendMessageRequest{
			ChannelId: "general", AuthorId: author, Payload: []byte(payload), ClientMessageId: clientID,
		})
		if err != nil {
			t.Fatalf("SendMessage %s: %v", clientID, err)
		}
		if resp.Deduplicated == nil {
			t.Fatalf("SendMessage %s: deduplicated not set", clientID)
		}
		if !resp.GetDeduplicated() {
			acked[resp.GetSequence()] = sent{author, clientID, []byte(payload)}
		}
		return resp
	}
	expectSend := func(cl raftogramv1.MessengerClient, author, clientID, payload string, seq uint64, dedup bool) {
		t.Helper()
		resp := send(cl, author, clientID, payload)
		if resp.GetSequence() != seq || resp.GetDeduplicated() != dedup {
			t.Fatalf("SendMessage %s = seq %d dedup %v, want seq %d dedup %v", clientID, resp.GetSequence(), resp.GetDeduplicated(), seq, dedup)
		}
	}
	expectSend(lc, "alice", "msg-1", "Hello", 1, false)
	expectSend(lc, "alice", "msg-1", "Hello", 1, true)
	expectSend(lc, "bob", "msg-2", "Hi alice", 2, false)
	expectSend(lc, "alice", "", "no idempotency key", 3, false)
	expectSend(lc, "bob", "msg-4", string([]byte{0, 1, 2, 0xff, 0xfe}), 4, false)
	expectSend(lc, "bob", "msg-2", "Hi alice", 2, true) // an identical repeat dedups
	// The same key with another author or payload is a conflict, not a dedup.
	for _, c := range []struct{ author, payload string }{{"alice", "Hi alice"}, {"bob", "other payload"}} {
		_, err := lc.SendMessage(rpcCtx(t), &raftogramv1.SendMessageRequest{ChannelId: "general", AuthorId: c.author, Payload: []byte(c.payload), ClientMessageId: "msg-2"})
		if status.Code(err) != codes.AlreadyExists {
			t.Fatalf("msg-2 again as %s with %q: %v, want AlreadyExists", c.author, c.payload, err)
		}
	}

	_, err = lc.SendMessage(rpcCtx(t), &raftogramv1.SendMessageRequest{ChannelId: "missing", AuthorId: "alice", Payload: []byte("x")})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("SendMessage to a missing channel: %v, want NotFound", err)
	}
	_, err = lc.SendMessage(rpcCtx(t), &raftogramv1.SendMessageRequest{ChannelId: "general", Payload: []byte("x")})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("SendMessage without author: %v, want InvalidArgument", err)
	}

	// ReadHistory with paging.
	page1 := readHistory(t, lc, "general", 0, 2)
	checkMessages(t, page1.GetMessages(), acked, 1, 2, testStart)
	if page1.HasMore == nil || !page1.GetHasMore() {
		t.Fatalf("ReadHistory after 0 limit 2: has_more = %v, want true", page1.HasMore)
	}
	page2 := readHistory(t, lc, "general", 2, 10)
	checkMessages(t, page2.GetMessages(), acked, 3, 4, testStart)
	if page2.HasMore == nil || page2.GetHasMore() {
		t.Fatalf("ReadHistory after 2 limit 10: has_more = %v, want false", page2.HasMore)
	}
	tail := readHistory(t, lc, "general", 4, 0)
	if len(tail.GetMessages()) != 0 || tail.HasMore == nil || tail.GetHasMore() {
		t.Fatalf("ReadHistory after 4 = %v, want no messages, has_more=false", tail)
	}
	emptyAuto := readHistory(t, lc, auto.GetChannelId(), 0, 0)
	if len(emptyAuto.GetMessages()) != 0 || emptyAuto.GetHasMore() {
		t.Fatalf("ReadHistory of %s = %v, want empty", auto.GetChannelId(), emptyAuto)
	}

	// Subscribe: history first, then a live message sent after subscribing.
	subscribeHistoryThenLive(t, lc, acked, send, testStart)

	// 4. Followers refuse with FailedPrecondition and a NotLeader hint.
	for _, nd := range c.Nodes {
		if nd == leader {
			continue
		}
		expectNotLeader(t, nd.ID, leader, func(ctx context.Context) error {
			_, err := c.client(nd.ID).CreateChannel(ctx, &raftogramv1.CreateChannelRequest{Name: "x"})
			return err
		})
		expectNotLeader(t, nd.ID, leader, func(ctx context.Context) error {
			_, err := c.client(nd.ID).SendMessage(ctx, &raftogramv1.SendMessageRequest{ChannelId: "general", AuthorId: "a", ClientMessageId: "msg-1"})
			return err
		})
		expectNotLeader(t, nd.ID, leader, func(ctx context.Context) error {
			_, err := c.client(nd.ID).ReadHistory(ctx, &raftogramv1.ReadHistoryRequest{ChannelId: "general"})
			return err
		})
	}

	// 5. SIGKILL the leader; the survivors elect a new one holding every
	// acknowledged message.
	killed := leader
	c.signal(killed.ID, syscall.SIGKILL)
	if code := c.wait(killed.ID, exitWait); code != -1 {
		t.Fatalf("%s after SIGKILL: exit code %d, want -1 (killed)", killed.ID, code)
	}
	// A Go client given every address rides out the election: its send
	// lands once, with the next sequence.
	last := uint64(len(acked))
	gctx, gcancel := context.WithTimeout(context.Background(), electionWait)
	defer gcancel()
	gc, err := c.Client(gctx, client.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	res, err := gc.Send(gctx, client.SendRequest{ChannelID: "general", AuthorID: "carol", Payload: []byte("after failover"), ClientMessageID: "msg-after-failover"})
	if err != nil || res.Sequence != last+1 {
		t.Fatalf("Send through the Go client during the failover = %+v, %v; want sequence %d", res, err, last+1)
	}
	last++
	acked[last] = sent{"carol", "msg-after-failover", []byte("after failover")}

	var survivors []string
	for _, id := range all {
		if id != killed.ID {
			survivors = append(survivors, id)
		}
	}
	leader = c.waitStable(survivors...)
	t.Logf("leader after killing %s: %s", killed.ID, leader.ID)
	lc = c.client(leader.ID)
	all5 := readHistory(t, lc, "general", 0, 0)
	checkMessages(t, all5.GetMessages(), acked, 1, last, testStart)
	expectSend(lc, "alice", "msg-1", "Hello", 1, true)
	expectSend(lc, "carol", "msg-after-failover", "after failover", last, true)
	if got := readHistory(t, lc, auto.GetChannelId(), 0, 0); len(got.GetMessages()) != 0 {
		t.Fatalf("channel %s after failover: %v", auto.GetChannelId(), got)
	}

	// 6. Restart the killed node with its data; it rejoins and catches up.
	c.start(killed.ID)
	leader = c.waitStable(all...)
	lc = c.client(leader.ID)
	expectSend(lc, "dave", "msg-after-restart", "after restart", last+1, false)
	last++
	eventually(t, electionWait, "every node applied the same index", func() error {
		l, hs, err := c.stable(all)
		if err != nil {
			return err
		}
		if l != leader {
			return fmt.Errorf("leader changed from %s to %s", leader.ID, l.ID)
		}
		want := hs[leader.ID].AppliedIndex
		for id, h := range hs {
			if h.AppliedIndex != want || h.AppliedIndex == 0 {
				return fmt.Errorf("applied_index: %s=%d, leader %s=%d", id, h.AppliedIndex, leader.ID, want)
			}
		}
		return nil
	})
	if h, err := testbin.GetHealth(nil, killed.HealthAddr); err != nil || (h.Role != "follower" && h.Role != "leader") {
		t.Fatalf("restarted %s: health %+v, %v", killed.ID, h, err)
	}
	full := readHistory(t, lc, "general", 0, 0)
	checkMessages(t, full.GetMessages(), acked, 1, last, testStart)

	// 7. Graceful stop: SIGTERM all three, each exits 0.
	for _, id := range all {
		c.signal(id, syscall.SIGTERM)
	}
	for _, id := range all {
		if code := c.wait(id, exitWait); code != 0 {
			t.Fatalf("%s after SIGTERM: exit code %d, want 0", id, code)
		}
	}

	// 8. Clean bootstrap from empty data directories.
	for _, nd := range c.Nodes {
		if err := os.RemoveAll(nd.DataDir); err != nil {
			t.Fatal(err)
		}
	}
	c.start("node2", "node3", "node1")
	leader = c.waitStable(all...)
	t.Logf("leader after clean bootstrap: %s", leader.ID)
	lc = c.client(leader.ID)
	_, err = lc.ReadHistory(rpcCtx(t), &raftogramv1.ReadHistoryRequest{ChannelId: "general"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("ReadHistory general on a fresh cluster: %v, want NotFound", err)
	}
	fresh, err := lc.CreateChannel(rpcCtx(t), &raftogramv1.CreateChannelRequest{ChannelId: "general", Name: "Fresh"})
	if err != nil || fresh.GetName() != "Fresh" || !fresh.GetCreated() {
		t.Fatalf("CreateChannel general on a fresh cluster = %v, %v; want created=true name Fresh", fresh, err)
	}
	acked = map[uint64]sent{}
	expectSend(lc, "alice", "msg-1", "Hello again", 1, false)
	checkMessages(t, readHistory(t, lc, "general", 0, 0).GetMessages(), acked, 1, 1, testStart)
}

// readHistory calls ReadHistory and fails the test on error.
func readHistory(t *testing.T, cl raftogramv1.MessengerClient, channel string, after uint64, limit uint32) *raftogramv1.ReadHistoryResponse {
	t.Helper()
	resp, err := cl.ReadHistory(rpcCtx(t), &raftogramv1.ReadHistoryRequest{ChannelId: channel, AfterSequence: after, Limit: limit})
	if err != nil {
		t.Fatalf("ReadHistory %s after %d limit %d: %v", channel, after, limit, err)
	}
	return resp
}

// checkMessages asserts msgs are exactly sequences from..to, each matching
// what was acknowledged, with created_at set since the test started.
func checkMessages(t *testing.T, msgs []*raftogramv1.Message, acked map[uint64]sent, from, to uint64, since time.Time) {
	t.Helper()
	if uint64(len(msgs)) != to-from+1 {
		t.Fatalf("got %d messages %v, want sequences %d..%d", len(msgs), msgs, from, to)
	}
	for i, m := range msgs {
		seq := from + uint64(i)
		want, ok := acked[seq]
		if !ok {
			t.Fatalf("sequence %d was never acknowledged", seq)
		}
		if m.GetSequence() != seq || m.GetAuthorId() != want.author || m.GetClientMessageId() != want.clientID || !bytes.Equal(m.GetPayload(), want.payload) {
			t.Fatalf("message %d = %v, want seq %d author %q client id %q payload %q", i, m, seq, want.author, want.clientID, want.payload)
		}
		if m.GetCreatedAt() == nil {
			t.Fatalf("message %d: created_at not set", seq)
		}
		if at := m.GetCreatedAt().AsTime(); at.Before(since.Add(-time.Second)) || at.After(time.Now().Add(time.Second)) {
			t.Fatalf("message %d: created_at %v outside the test's run (started %v)", seq, at, since)
		}
	}
}

// subscribeHistoryThenLive subscribes to general from 0, expects the
// acknowledged history, then sends a message and expects it live.
func subscribeHistoryThenLive(t *testing.T, cl raftogramv1.MessengerClient, acked map[uint64]sent,
	send func(raftogramv1.MessengerClient, string, string, string) *raftogramv1.SendMessageResponse, since time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := cl.Subscribe(ctx, &raftogramv1.SubscribeRequest{ChannelId: "general", AfterSequence: 0})
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	var got []*raftogramv1.Message
	recvUntil := func(n int) {
		t.Helper()
		for len(got) < n {
			chunk, err := stream.Recv()
			if err != nil {
				t.Fatalf("Subscribe: Recv after %d messages: %v", len(got), err)
			}
			if len(chunk.GetMessages()) == 0 {
				t.Fatalf("Subscribe: empty chunk")
			}
			got = append(got, chunk.GetMessages()...)
		}
	}
	history := len(acked)
	recvUntil(history)
	checkMessages(t, got, acked, 1, uint64(history), since)

	resp := send(cl, "erin", "msg-live", "live!")
	if resp.GetSequence() != uint64(history)+1 || resp.GetDeduplicated() {
		t.Fatalf("SendMessage msg-live = %v, want sequence %d", resp, history+1)
	}
	recvUntil(history + 1)
	checkMessages(t, got, acked, 1, uint64(history)+1, since)

	cancel()
	for {
		if _, err := stream.Recv(); err != nil {
			if status.Code(err) != codes.Canceled && !errors.Is(err, io.EOF) {
				t.Fatalf("Subscribe after cancel: %v, want Canceled", err)
			}
			break
		}
	}
}

// expectNotLeader asserts call fails on follower id with FailedPrecondition,
// the README message and a NotLeader detail naming leader, read through
// the client package's mapping ([client.ErrorFromStatus]).
func expectNotLeader(t *testing.T, id string, leader *node, call func(context.Context) error) {
	t.Helper()
	err := call(rpcCtx(t))
	e := client.ErrorFromStatus(err)
	if e == nil || e.Code != codes.FailedPrecondition || !errors.Is(e, client.ErrNotLeader) {
		t.Fatalf("%s: %v, want FailedPrecondition with a NotLeader detail", id, err)
	}
	if e.Message != "not leader: retry on suggested leader client endpoint" {
		t.Fatalf("%s: message %q", id, e.Message)
	}
	if e.Leader != leader.GRPCAddr || e.LeaderID != leader.ID {
		t.Fatalf("%s: NotLeader names %s at %s, want %s at %s", id, e.LeaderID, e.Leader, leader.ID, leader.GRPCAddr)
	}
}

// TestSingleNodeFromEnvironment runs the binary without any config file,
// configured only through RAFTOGRAM_* variables: it forms a one-node cluster
// and accepts writes.
func TestSingleNodeFromEnvironment(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addrs := freePorts(t, 3)
	logPath := filepath.Join(dir, "node.log")
	dumpLogsOnFailure(t, logPath)
	workDir := filepath.Join(dir, "work")
	if err := os.Mkdir(workDir, 0o755); err != nil {
		t.Fatal(err)
	}
	env := append(testbin.BaseEnv(),
		"RAFTOGRAM_RAFT_BIND_ADDR="+addrs[0],
		"RAFTOGRAM_GRPC_BIND_ADDR="+addrs[1],
		"RAFTOGRAM_HEALTH_BIND_ADDR="+addrs[2],
		"RAFTOGRAM_DATA_DIR="+filepath.Join(dir, "data"),
		"RAFTOGRAM_RAFT_HEARTBEAT_TIMEOUT=300ms",
		"RAFTOGRAM_RAFT_ELECTION_TIMEOUT=300ms",
		"RAFTOGRAM_RAFT_LEADER_LEASE_TIMEOUT=150ms",
	)
	p := startProc(t, workDir, logPath, env, "-dev")

	eventually(t, electionWait, "single node leads", func() error {
		if p.exited() {
			return fmt.Errorf("process exited: %v", p.Err())
		}
		h, err := testbin.GetHealth(nil, addrs[2])
		if err != nil {
			return err
		}
		want := httpapi.Health{NodeID: "node1", Role: "leader", IsLeader: true, LeaderID: "node1", LeaderRaftAddr: addrs[0], LeaderGRPCAddr: addrs[1]}
		got := httpapi.Health{NodeID: h.NodeID, Role: h.Role, IsLeader: h.IsLeader, LeaderID: h.LeaderID, LeaderRaftAddr: h.LeaderRaftAddr, LeaderGRPCAddr: h.LeaderGRPCAddr}
		if got != want {
			return fmt.Errorf("health %+v, want %+v", h, want)
		}
		return nil
	})

	cl, err := client.New(rpcCtx(t), client.Config{Addrs: []string{addrs[1]}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ch, err := cl.CreateChannel(rpcCtx(t), "solo", "Solo")
	if err != nil || !ch.Created {
		t.Fatalf("CreateChannel = %+v, %v; want created", ch, err)
	}
	resp, err := cl.Send(rpcCtx(t), client.SendRequest{ChannelID: "solo", AuthorID: "me", Payload: []byte("hi"), ClientMessageID: "m1"})
	if err != nil || resp.Sequence != 1 || resp.Deduplicated {
		t.Fatalf("Send = %+v, %v; want sequence 1", resp, err)
	}
	hist, err := cl.ReadHistory(rpcCtx(t), "solo", client.ReadOptions{})
	if err != nil || len(hist.Messages) != 1 || string(hist.Messages[0].Payload) != "hi" {
		t.Fatalf("ReadHistory = %+v, %v", hist, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "raft.db")); err != nil {
		t.Fatalf("RAFTOGRAM_DATA_DIR not used: %v", err)
	}
	if _, err := os.Stat(filepath.Join(workDir, "data")); !os.IsNotExist(err) {
		t.Fatalf("default ./data created in the working directory despite RAFTOGRAM_DATA_DIR: %v", err)
	}

	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, exitWait); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d, want 0", code)
	}
}

// TestInvalidConfigExits runs the binary with a config holding two peers: it
// must refuse to start with a non-zero exit code and say why.
func TestInvalidConfigExits(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addrs := freePorts(t, 5)
	cfg := proccluster.Defaults()
	cfg.RaftBindAddr, cfg.GRPCBindAddr, cfg.HealthBindAddr = addrs[0], addrs[1], addrs[2]
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Cluster.Peers = config.Peers{
		{NodeID: "node1", RaftAddr: addrs[0], GRPCAddr: addrs[1]},
		{NodeID: "node2", RaftAddr: addrs[3], GRPCAddr: addrs[4]},
	}
	cfgPath := filepath.Join(dir, "two.yaml")
	if err := proccluster.WriteConfig(cfgPath, cfg); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "node.log")
	dumpLogsOnFailure(t, logPath)

	p := startProc(t, dir, logPath, testbin.BaseEnv(), "-config", cfgPath, "-dev")
	code := p.wait(t, exitWait)
	out, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if code == 0 || code == -1 {
		t.Fatalf("exit code %d, want a non-zero exit", code)
	}
	if want := "cluster.peers has 2 voters; a Raft cluster needs an odd number"; !bytes.Contains(out, []byte(want)) {
		t.Fatalf("output does not name the problem %q:\n%s", want, out)
	}
	if !bytes.Contains(out, []byte(cfgPath)) {
		t.Fatalf("output does not name the config file %s:\n%s", cfgPath, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Fatalf("data_dir created by a node that refused its config: %v", err)
	}
}
