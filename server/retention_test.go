package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/config"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Retention by count, bytes and age on a cluster: the leader's expirer
// removes aged messages by itself, a follower that was down catches up by
// snapshot install, and every node ends with the same projection (the
// digest covers the retention columns, trimmed points and dedup queue).
// Reads below what is held are OutOfRange with a Trimmed detail on every
// node.
func TestRetentionIsIdenticalOnEveryNodeAfterSnapshotInstall(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *config.Config) {
		cfg.Raft.SnapshotThreshold = 50
		cfg.Raft.TrailingLogs = 10
		cfg.Raft.SnapshotInterval = 50 * time.Millisecond
		cfg.Retention.ExpireInterval = 100 * time.Millisecond
		cfg.Retention.DedupHorizon = time.Hour
		cfg.Retention.MaxMessages = 7 // the default of channels created without a retention
	})
	l := c.leader()
	for id, r := range map[string]*raftogramv1.Retention{
		"count": {MaxMessages: 5},
		"bytes": {MaxBytes: 250},
		"age":   {MaxAge: durationpb.New(time.Second)},
		"dflt":  nil,
	} {
		if _, err := c.client(l).CreateChannel(ctxT(t), &raftogramv1.CreateChannelRequest{ChannelId: id, Name: id, Retention: r}); err != nil {
			t.Fatal(err)
		}
	}
	lag := (l + 1) % 3
	c.converged()
	c.stop(lag)
	for i := range 100 {
		for _, ch := range []string{"count", "bytes", "age", "dflt"} {
			c.send(ch, fmt.Sprintf("m%03d-%s", i, strings.Repeat("x", 94))) // 100-byte payloads
		}
	}
	// The age channel empties within a second and an expiry interval,
	// by the leader's MessagesExpired alone.
	waitFor(t, "aged messages to expire", 20*time.Second, func() error {
		ch, err := c.client(c.leader()).GetChannel(ctxT(t), &raftogramv1.GetChannelRequest{ChannelId: "age"})
		if err == nil && (ch.GetMessageCount() != 0 || ch.GetTrimmedThrough() != 100 || ch.GetFirstSequence() != 101) {
			err = fmt.Errorf("age channel %v", ch)
		}
		return err
	})
	waitFor(t, "leader snapshot", 15*time.Second, func() error {
		if idx := c.servers[c.leader()].Node().Status().SnapshotIndex; idx < 300 {
			return fmt.Errorf("leader snapshot index %d", idx)
		}
		return nil
	})
	c.start(lag)
	c.converged()
	if !strings.Contains(c.logs[lag].String(), "projection restored from snapshot") {
		t.Fatal("the follower did not catch up by snapshot install")
	}

	want := map[string][3]uint64{ // first, count, trimmed through
		"count": {96, 5, 95},
		"bytes": {99, 2, 98}, // 250 bytes hold two 100-byte messages
		"dflt":  {94, 7, 93},
		"age":   {101, 0, 100},
	}
	local := raftogramv1.ReadConsistency_READ_CONSISTENCY_LOCAL
	for i := range 3 {
		for id, w := range want {
			ch, err := c.client(i).GetChannel(ctxT(t), &raftogramv1.GetChannelRequest{ChannelId: id, Consistency: local})
			if err != nil {
				t.Fatal(err)
			}
			if got := [3]uint64{ch.GetFirstSequence(), ch.GetMessageCount(), ch.GetTrimmedThrough()}; got != w || ch.GetLastSequence() != 100 {
				t.Fatalf("node %d channel %s: %v", i, id, ch)
			}
			_, err = c.client(i).ReadHistory(ctxT(t), &raftogramv1.ReadHistoryRequest{ChannelId: id, Consistency: local})
			wantTrimmed(t, err, w[0])
			sub, err := c.client(i).Subscribe(ctxT(t), &raftogramv1.SubscribeRequest{ChannelId: id, AfterSequence: 1, Consistency: local})
			if err == nil {
				_, err = sub.Recv()
			}
			wantTrimmed(t, err, w[0])
		}
	}
	if ch, _ := c.client(l).GetChannel(ctxT(t), &raftogramv1.GetChannelRequest{ChannelId: "dflt"}); ch.GetRetention().GetMaxMessages() != 7 {
		t.Fatalf("a channel created without a retention got %v, want the configured default", ch.GetRetention())
	}
	// Within the dedup horizon a trimmed message's id still answers with
	// its sequence.
	resp := c.send("count", fmt.Sprintf("m%03d-%s", 0, strings.Repeat("x", 94)))
	if !resp.GetDeduplicated() || resp.GetSequence() != 1 {
		t.Fatalf("resend of trimmed message 1: %v", resp)
	}
}

// wantTrimmed fails unless err is OutOfRange with a Trimmed detail naming
// first.
func wantTrimmed(t *testing.T, err error, first uint64) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != codes.OutOfRange {
		t.Fatalf("read below the retained range: %v, want OutOfRange", err)
	}
	for _, d := range st.Details() {
		if tr, ok := d.(*raftogramv1.Trimmed); ok && tr.GetFirstSequence() == first {
			return
		}
	}
	t.Fatalf("OutOfRange without a Trimmed{first_sequence: %d} detail: %v", first, st.Details())
}
