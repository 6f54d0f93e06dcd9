package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/config"
	"github.com/raftogram/raftogram/grpcapi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustCreate(t *testing.T, c raftogramv1.MessengerClient, id string) {
	t.Helper()
	if _, err := c.CreateChannel(ctxT(t), &raftogramv1.CreateChannelRequest{ChannelId: id, Name: id}); err != nil {
		t.Fatalf("create %s: %v", id, err)
	}
}

func mustSend(t *testing.T, c raftogramv1.MessengerClient, ch, cmid string) *raftogramv1.SendMessageResponse {
	t.Helper()
	resp, err := c.SendMessage(ctxT(t), &raftogramv1.SendMessageRequest{ChannelId: ch, AuthorId: "alice", Payload: []byte(cmid), ClientMessageId: cmid})
	if err != nil {
		t.Fatalf("send %s/%s: %v", ch, cmid, err)
	}
	return resp
}

// send sends through whichever node leads, retrying with the same
// client_message_id while leadership moves (a loaded CI machine may see an
// election at any time); it returns the acknowledged response.
func (c *testCluster) send(ch, cmid string) *raftogramv1.SendMessageResponse {
	c.t.Helper()
	var resp *raftogramv1.SendMessageResponse
	waitFor(c.t, "send "+ch+"/"+cmid, 20*time.Second, func() error {
		var err error
		resp, err = c.client(c.leader()).SendMessage(ctxT(c.t), &raftogramv1.SendMessageRequest{ChannelId: ch, AuthorId: "alice", Payload: []byte(cmid), ClientMessageId: cmid})
		if code := status.Code(err); err != nil && code != codes.Unavailable && code != codes.FailedPrecondition {
			c.t.Fatalf("send %s/%s: %v", ch, cmid, err)
		}
		return err
	})
	return resp
}

func TestClusterElectsOneLeaderAndReplicatesWrites(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	leader := c.client(l)
	mustCreate(t, leader, "general")
	for i := 1; i <= 20; i++ {
		if got := mustSend(t, leader, "general", fmt.Sprintf("m%d", i)); got.GetSequence() != uint64(i) || got.GetDeduplicated() {
			t.Fatalf("send %d = %v", i, got)
		}
	}
	c.converged()
	for i, s := range c.servers {
		msgs, _, err := s.Store().History(context.Background(), "general", 0, 100, 0)
		if err != nil || len(msgs) != 20 || msgs[19].Sequence != 20 {
			t.Fatalf("%s holds %d messages (%v)", c.cfgs[i].NodeID, len(msgs), err)
		}
	}
}

func TestFollowersAnswerNotLeaderWithHint(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	mustCreate(t, c.client(l), "general")
	for i := range c.servers {
		if i == l {
			continue
		}
		f := c.client(i)
		calls := map[string]func() error{
			"CreateChannel": func() error {
				_, err := f.CreateChannel(ctxT(t), &raftogramv1.CreateChannelRequest{Name: "general"})
				return err
			},
			"SendMessage": func() error {
				_, err := f.SendMessage(ctxT(t), &raftogramv1.SendMessageRequest{ChannelId: "general", AuthorId: "a"})
				return err
			},
			"ReadHistory": func() error {
				_, err := f.ReadHistory(ctxT(t), &raftogramv1.ReadHistoryRequest{ChannelId: "general"})
				return err
			},
			"Subscribe": func() error {
				stream, err := f.Subscribe(ctxT(t), &raftogramv1.SubscribeRequest{ChannelId: "general"})
				if err != nil {
					return err
				}
				_, err = stream.Recv()
				return err
			},
		}
		for name, call := range calls {
			err := call()
			st, _ := status.FromError(err)
			if st.Code() != codes.FailedPrecondition || st.Message() != grpcapi.NotLeaderMessage {
				t.Fatalf("%s on %s: %v", name, c.cfgs[i].NodeID, err)
			}
			var hint *raftogramv1.NotLeader
			for _, d := range st.Details() {
				if nl, ok := d.(*raftogramv1.NotLeader); ok {
					hint = nl
				}
			}
			if hint == nil || hint.GetRaftLeaderId() != c.cfgs[l].NodeID || hint.GetLeaderGrpcTarget() != c.cfgs[l].GRPCBindAddr {
				t.Fatalf("%s on %s: hint %v, want %s at %s", name, c.cfgs[i].NodeID, hint, c.cfgs[l].NodeID, c.cfgs[l].GRPCBindAddr)
			}
		}
	}
}

func TestLeaderLossReelectsAndKeepsDedup(t *testing.T) {
	c := newTestCluster(t, 3)
	old := c.leader()
	mustCreate(t, c.client(old), "general")
	first := mustSend(t, c.client(old), "general", "msg-1")
	mustSend(t, c.client(old), "general", "msg-2")
	c.stop(old)

	l := c.leader()
	if l == old {
		t.Fatal("stopped node still leads")
	}
	again := c.send("general", "msg-1")
	if again.GetSequence() != first.GetSequence() || !again.GetDeduplicated() {
		t.Fatalf("retry after failover = %v, want sequence %d deduplicated", again, first.GetSequence())
	}
	if got := c.send("general", "msg-3"); got.GetSequence() != 3 {
		t.Fatalf("next sequence after failover = %d, want 3", got.GetSequence())
	}
	resp, err := c.client(c.leader()).ReadHistory(ctxT(t), &raftogramv1.ReadHistoryRequest{ChannelId: "general"})
	if err != nil || len(resp.GetMessages()) != 3 {
		t.Fatalf("history after failover: %v, %v", resp, err)
	}

	c.start(old)
	c.leader()
	c.converged()
}

func TestLaggingFollowerCatchesUpBySnapshot(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *config.Config) {
		cfg.Raft.SnapshotThreshold = 50
		cfg.Raft.TrailingLogs = 10
		cfg.Raft.SnapshotInterval = 50 * time.Millisecond
	})
	l := c.leader()
	mustCreate(t, c.client(l), "general")
	lag := (l + 1) % 3
	c.converged()
	c.stop(lag)

	for i := range 300 {
		c.send("general", fmt.Sprintf("m%d", i))
	}
	// The leader must have compacted past what the stopped follower holds,
	// so only a snapshot can bring it back.
	waitFor(t, "leader snapshot", 15*time.Second, func() error {
		if idx := c.servers[c.leader()].Node().Status().SnapshotIndex; idx < 200 {
			return fmt.Errorf("leader snapshot index %d", idx)
		}
		return nil
	})
	c.start(lag)
	c.converged()
	if idx := c.servers[lag].Node().Status().SnapshotIndex; idx < 200 {
		t.Fatalf("follower snapshot index %d: it did not catch up by snapshot install", idx)
	}
	if !strings.Contains(c.logs[lag].String(), "projection restored from snapshot") {
		t.Fatal("follower log does not show a snapshot restore")
	}
	// It keeps applying normally after the install.
	c.send("general", "after")
	c.converged()

	// A restart finds the projection at or past the newest snapshot and
	// does not restore it again.
	restores := strings.Count(c.logs[lag].String(), "projection restored from snapshot")
	c.stop(lag)
	c.start(lag)
	c.converged()
	if got := strings.Count(c.logs[lag].String(), "projection restored from snapshot"); got != restores {
		t.Fatalf("restart restored a snapshot the projection already held (%d restores, was %d)", got, restores)
	}
	if !strings.Contains(c.logs[lag].String(), "skip_snapshot_restore=true") {
		t.Fatal("restart did not skip the snapshot restore")
	}
}

func TestSubscribeDeliversHistoryThenLiveInOrder(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	leader := c.client(l)
	mustCreate(t, leader, "general")
	for i := 1; i <= 5; i++ {
		mustSend(t, leader, "general", fmt.Sprintf("m%d", i))
	}
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	stream, err := leader.Subscribe(ctx, &raftogramv1.SubscribeRequest{ChannelId: "general", AfterSequence: 2})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for i := 6; i <= 40; i++ {
			if _, err := leader.SendMessage(ctx, &raftogramv1.SendMessageRequest{ChannelId: "general", AuthorId: "a", Payload: []byte("x")}); err != nil {
				return
			}
		}
	}()
	next := uint64(3)
	for next <= 40 {
		chunk, err := stream.Recv()
		if err != nil {
			t.Fatalf("recv at %d: %v", next, err)
		}
		for _, m := range chunk.GetMessages() {
			if m.GetSequence() != next {
				t.Fatalf("got sequence %d, want %d", m.GetSequence(), next)
			}
			next++
		}
	}
}

func TestSubscribeEndsWithStatusOnShutdownAndLeadershipLoss(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	mustCreate(t, c.client(l), "general")
	stream, err := c.client(l).Subscribe(ctxT(t), &raftogramv1.SubscribeRequest{ChannelId: "general"})
	if err != nil {
		t.Fatal(err)
	}
	// The stream is registered once the read barrier passed; a message proves it.
	mustSend(t, c.client(l), "general", "m1")
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}

	// Leadership moves: the stream ends with a NotLeader hint.
	if err := c.servers[l].Node().TransferLeadership(); err != nil {
		t.Fatal(err)
	}
	// Right after the handover the new leader may not be known yet: then the
	// status is Unavailable, still with a (empty) NotLeader detail.
	_, err = stream.Recv()
	st, _ := status.FromError(err)
	if st.Code() != codes.FailedPrecondition && st.Code() != codes.Unavailable || !hasNotLeaderDetail(st) {
		t.Fatalf("stream after leadership loss ended with %v, want not leader", err)
	}

	// The node shuts down: a stream on the new leader ends with Unavailable.
	l = c.leader()
	stream, err = c.client(l).Subscribe(ctxT(t), &raftogramv1.SubscribeRequest{ChannelId: "general"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil { // history: m1
		t.Fatal(err)
	}
	c.stop(l)
	_, err = stream.Recv()
	if code := status.Code(err); code != codes.Unavailable || errors.Is(err, io.EOF) {
		t.Fatalf("stream after shutdown ended with %v, want Unavailable", err)
	}
}

func hasNotLeaderDetail(st *status.Status) bool {
	for _, d := range st.Details() {
		if _, ok := d.(*raftogramv1.NotLeader); ok {
			return true
		}
	}
	return false
}

// Concurrent writers share log entries (group commit); each must get the
// result of its own event.
func TestConcurrentSendsEachGetTheirOwnSequence(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	mustCreate(t, c.client(l), "a")
	mustCreate(t, c.client(l), "b")
	const writers, each = 32, 10
	type ack struct {
		ch, cmid string
		seq      uint64
		dedup    bool
		unknown  bool // an earlier attempt may have applied it
	}
	acks := make(chan ack, writers*each*2)
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			for i := range each {
				ch := []string{"a", "b"}[(w+i)%2]
				cmid := fmt.Sprintf("w%d-%d", w, i)
				// Every message twice: the repeat must be deduplicated to the same
				// sequence. A loaded machine may move the leader: retry on the
				// new one (an Unavailable attempt may have applied).
				for range 2 {
					unknown := false
					for attempt := 0; ; attempt++ {
						resp, err := c.client(c.leader()).SendMessage(ctxT(t), &raftogramv1.SendMessageRequest{ChannelId: ch, AuthorId: "u", Payload: []byte(cmid), ClientMessageId: cmid})
						code := status.Code(err)
						if err == nil {
							acks <- ack{ch, cmid, resp.GetSequence(), resp.GetDeduplicated(), unknown}
							break
						}
						if (code != codes.Unavailable && code != codes.FailedPrecondition) || attempt == 20 {
							errs <- err
							return
						}
						unknown = unknown || code == codes.Unavailable
					}
				}
			}
			errs <- nil
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(acks)
	seqOf := map[string]uint64{}
	for a := range acks {
		if prev, ok := seqOf[a.cmid]; ok {
			if !a.dedup || prev != a.seq {
				t.Fatalf("%s acknowledged at %d and then %d (dedup=%v)", a.cmid, prev, a.seq, a.dedup)
			}
			continue
		}
		if a.dedup && !a.unknown {
			t.Fatalf("first send of %s reported deduplicated", a.cmid)
		}
		seqOf[a.cmid] = a.seq
	}
	for _, ch := range []string{"a", "b"} {
		resp, err := c.client(c.leader()).ReadHistory(ctxT(t), &raftogramv1.ReadHistoryRequest{ChannelId: ch, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetMessages()) != writers*each/2 {
			t.Fatalf("channel %s holds %d messages, want %d", ch, len(resp.GetMessages()), writers*each/2)
		}
		for i, m := range resp.GetMessages() {
			if m.GetSequence() != uint64(i+1) || seqOf[m.GetClientMessageId()] != m.GetSequence() || string(m.GetPayload()) != m.GetClientMessageId() {
				t.Fatalf("channel %s position %d: %v, acknowledged at %d", ch, i, m, seqOf[m.GetClientMessageId()])
			}
		}
	}
	c.converged()
}

func TestUnwritableDataDirFailsClearly(t *testing.T) {
	// Root may write anywhere, so make the data_dir a path below a regular
	// file, which nobody can create.
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.DataDir = filepath.Join(file, "data")
	ls := Listeners{Raft: mustListen(t), GRPC: mustListen(t), HTTP: mustListen(t)}
	_, err := Open(context.Background(), cfg, ls, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "data_dir "+cfg.DataDir+" cannot be created") {
		t.Fatalf("got %v", err)
	}
}

// A node whose projection file is damaged while it is down moves the file
// aside, rebuilds from its snapshot and log, and converges with the others.
func TestCorruptProjectionIsRebuiltFromTheLog(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *config.Config) {
		cfg.Raft.SnapshotThreshold = 40
		cfg.Raft.TrailingLogs = 10
		cfg.Raft.SnapshotInterval = 50 * time.Millisecond
	})
	l := c.leader()
	mustCreate(t, c.client(l), "general")
	for i := range 100 {
		c.send("general", fmt.Sprintf("m%d", i))
	}
	c.converged()
	victim := (c.leader() + 1) % 3
	c.stop(victim)
	path := filepath.Join(c.cfgs[victim].DataDir, "projection.db")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for off := 2 * 4096; off+64 < len(data); off += 4096 {
		for i := off + 8; i < off+64; i++ {
			data[i] ^= 0x5a
		}
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	c.start(victim)
	c.send("general", "after")
	c.converged()
	if !strings.Contains(c.logs[victim].String(), "projection failed its integrity check") {
		t.Fatal("the damaged projection was not detected")
	}
	moved, _ := filepath.Glob(path + ".corrupt-*")
	if len(moved) == 0 {
		t.Fatal("the damaged projection was not kept aside for inspection")
	}
}

// A damaged Raft log stops the node at start with an error naming the file;
// it is never served.
func TestTruncatedRaftLogFailsToStart(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	mustCreate(t, c.client(l), "general")
	for i := range 20 {
		c.send("general", fmt.Sprintf("m%d", i))
	}
	victim := (c.leader() + 1) % 3
	c.converged()
	c.stop(victim)
	path := filepath.Join(c.cfgs[victim].DataDir, "raft.db")
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, info.Size()/3); err != nil {
		t.Fatal(err)
	}
	ls, err := Listen(c.cfgs[victim])
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), c.cfgs[victim], ls, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "raft.db") {
		t.Fatalf("start on a truncated raft log: %v, want an error naming raft.db", err)
	}
}
