package client_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftogram/raftogram/client"
	"github.com/raftogram/raftogram/config"
	"github.com/raftogram/raftogram/internal/testcluster"
)

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func newClient(t *testing.T, cfg client.Config) *client.Client {
	t.Helper()
	c, err := client.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// follower returns the position of a running node that does not lead.
func follower(c *testcluster.Cluster, leader int) int {
	for i := range c.Len() {
		if i != leader && c.Server(i) != nil {
			return i
		}
	}
	return -1
}

// TestClusterSendReadSubscribe: a client connected to every node creates,
// sends, reads, lists and subscribes.
func TestClusterSendReadSubscribe(t *testing.T) {
	tc := testcluster.Start(t, 3)
	c := newClient(t, client.Config{Addrs: tc.Addrs()})
	ctx := ctxFor(t, 30*time.Second)

	cr, err := c.CreateChannel(ctx, "general", "General")
	if err != nil || !cr.Created || cr.Index == 0 {
		t.Fatalf("create: %+v %v", cr, err)
	}
	if cr, err := c.CreateChannel(ctx, "general", "Other"); err != nil || cr.Created || cr.Name != "General" {
		t.Fatalf("create again: %+v %v", cr, err)
	}
	var lastIndex uint64
	for i := 1; i <= 20; i++ {
		res, err := c.Send(ctx, client.SendRequest{ChannelID: "general", AuthorID: "alice", Payload: fmt.Appendf(nil, "m%d", i)})
		if err != nil || res.Sequence != uint64(i) || res.Deduplicated || res.Index <= lastIndex || res.ClientMessageID == "" {
			t.Fatalf("send %d: %+v %v", i, res, err)
		}
		lastIndex = res.Index
	}
	if c.Leader() != tc.Addr(tc.Leader()) {
		t.Fatalf("client's leader %q, cluster's %q", c.Leader(), tc.Addr(tc.Leader()))
	}
	// Resending an id answers the original sequence.
	res, err := c.Send(ctx, client.SendRequest{ChannelID: "general", AuthorID: "alice", ClientMessageID: "fixed"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Send(ctx, client.SendRequest{ChannelID: "general", AuthorID: "alice", ClientMessageID: "fixed"})
	if err != nil || again.Sequence != res.Sequence || !again.Deduplicated {
		t.Fatalf("resend: %+v %v (first %+v)", again, err, res)
	}
	// Reusing the id for another message is a typed conflict, not a dedup.
	_, err = c.Send(ctx, client.SendRequest{ChannelID: "general", AuthorID: "alice", Payload: []byte("other"), ClientMessageID: "fixed"})
	var e *client.Error
	if !errors.Is(err, client.ErrAlreadyExists) || !errors.As(err, &e) || !strings.Contains(e.Message, "another payload") {
		t.Fatalf("send reusing an id with another payload: %v", err)
	}
	// Local answers from whatever the chosen node has applied: wait until
	// every node has everything, so each level must see all 21 messages.
	tc.Converged()
	for _, cons := range []client.Consistency{client.ConsistencyDefault, client.LeaderOnly, client.Linearizable, client.Local} {
		h, err := c.ReadHistory(ctx, "general", client.ReadOptions{After: 5, Limit: 10, Consistency: cons, MinIndex: lastIndex})
		// Leader-only answers look as they did before levels existed: no
		// node id.
		if err != nil || len(h.Messages) != 10 || h.Messages[0].Sequence != 6 || !h.HasMore || (h.NodeID == "") != (cons == client.LeaderOnly) {
			t.Fatalf("read at %v: %+v %v", cons, h, err)
		}
	}
	if _, err := c.ReadHistory(ctx, "nope", client.ReadOptions{}); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("read unknown channel: %v", err)
	}
	if _, err := c.Send(ctx, client.SendRequest{ChannelID: "general"}); !errors.Is(err, client.ErrInvalidArgument) {
		t.Fatalf("send without author: %v", err)
	}
	ch, err := c.GetChannel(ctx, "general", client.ReadOptions{})
	if err != nil || ch.Name != "General" || ch.FirstSequence != 1 || ch.LastSequence != 21 || ch.MessageCount != 21 {
		t.Fatalf("get channel: %+v %v", ch, err)
	}
	for _, id := range []string{"b", "c", "d", "e"} {
		if _, err := c.CreateChannel(ctx, id, id); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	for ch, err := range c.Channels(ctx, client.ListOptions{PageSize: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ch.ID)
	}
	if fmt.Sprint(ids) != "[b c d e general]" {
		t.Fatalf("channels %v", ids)
	}

	sub, err := c.Subscribe(ctx, "general", client.SubscribeOptions{After: 18})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for sub.LastSequence() < 21 {
		b, err := sub.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Messages) > 0 && b.Messages[0].Sequence <= 18 {
			t.Fatalf("batch %+v", b)
		}
	}
}

// TestClusterWritesThroughFollowerAddress: a client given only a
// follower's address finds the leader from its NotLeader answer; with
// forward_writes the follower forwards instead.
func TestClusterWritesThroughFollowerAddress(t *testing.T) {
	for _, forward := range []bool{false, true} {
		t.Run(fmt.Sprintf("forward_writes=%v", forward), func(t *testing.T) {
			tc := testcluster.Start(t, 3, func(cfg *config.Config) { cfg.ForwardWrites = forward })
			l := tc.Leader()
			f := follower(tc, l)
			c := newClient(t, client.Config{Addrs: []string{tc.Addr(f)}})
			ctx := ctxFor(t, 30*time.Second)
			if _, err := c.CreateChannel(ctx, "general", "General"); err != nil {
				t.Fatal(err)
			}
			res, err := c.Send(ctx, client.SendRequest{ChannelID: "general", AuthorID: "a", Payload: []byte("x")})
			if err != nil || res.Sequence != 1 {
				t.Fatalf("send: %+v %v", res, err)
			}
			if !forward && c.Leader() != tc.Addr(l) {
				t.Fatalf("client's leader %q, want %q", c.Leader(), tc.Addr(l))
			}
			// A read at AtLeast on the follower sees the write.
			h, err := c.ReadHistory(ctx, "general", client.ReadOptions{Consistency: client.AtLeast, MinIndex: res.Index, Node: tc.Addr(f)})
			if err != nil || len(h.Messages) != 1 || h.NodeID != tc.NodeID(f) {
				t.Fatalf("read on the follower: %+v %v", h, err)
			}
		})
	}
}

// TestClusterReadsOnFollowers pins reads to a follower at every level:
// Linearizable, AtLeast and Local answer there; LeaderOnly is ErrNotLeader;
// an AtLeast index the cluster has not reached fails with the deadline,
// never stale.
func TestClusterReadsOnFollowers(t *testing.T) {
	tc := testcluster.Start(t, 3)
	l := tc.Leader()
	f := follower(tc, l)
	c := newClient(t, client.Config{Addrs: tc.Addrs()})
	ctx := ctxFor(t, 30*time.Second)
	if _, err := c.CreateChannel(ctx, "general", "General"); err != nil {
		t.Fatal(err)
	}
	var last *client.SendResult
	for i := range 5 {
		var err error
		if last, err = c.Send(ctx, client.SendRequest{ChannelID: "general", AuthorID: "a", Payload: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	pin := tc.Addr(f)
	for _, cons := range []client.Consistency{client.Linearizable, client.AtLeast} {
		h, err := c.ReadHistory(ctx, "general", client.ReadOptions{Consistency: cons, MinIndex: last.Index, Node: pin})
		if err != nil || len(h.Messages) != 5 || h.NodeID != tc.NodeID(f) || h.AppliedIndex < last.Index {
			t.Fatalf("%v on %s: %+v %v", cons, tc.NodeID(f), h, err)
		}
		ch, err := c.GetChannel(ctx, "general", client.ReadOptions{Consistency: cons, MinIndex: last.Index, Node: pin})
		if err != nil || ch.LastSequence != 5 {
			t.Fatalf("GetChannel %v: %+v %v", cons, ch, err)
		}
		page, err := c.ListChannels(ctx, client.ListOptions{Consistency: cons, MinIndex: last.Index, Node: pin})
		if err != nil || len(page.Channels) != 1 {
			t.Fatalf("ListChannels %v: %+v %v", cons, page, err)
		}
	}
	h, err := c.ReadHistory(ctx, "general", client.ReadOptions{Consistency: client.Local, Node: pin})
	if err != nil || h.NodeID != tc.NodeID(f) || uint64(len(h.Messages)) > 5 {
		t.Fatalf("local: %+v %v", h, err)
	}
	if _, err := c.ReadHistory(ctx, "general", client.ReadOptions{Consistency: client.LeaderOnly, Node: pin}); !errors.Is(err, client.ErrNotLeader) {
		t.Fatalf("leader-only read pinned to a follower: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = c.ReadHistory(short, "general", client.ReadOptions{Consistency: client.AtLeast, MinIndex: last.Index + 1000, Node: pin})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read at an index not reached: %v", err)
	}
}

// TestClusterSubscribeSurvivesLeaderStop: a writer sends through the
// client while the leader is stopped; a subscription at each level
// delivers every acknowledged message exactly once, in order.
func TestClusterSubscribeSurvivesLeaderStop(t *testing.T) {
	for _, cons := range []client.Consistency{client.LeaderOnly, client.Linearizable, client.AtLeast, client.Local} {
		t.Run(cons.String(), func(t *testing.T) {
			tc := testcluster.Start(t, 3)
			c := newClient(t, client.Config{Addrs: tc.Addrs()})
			ctx := ctxFor(t, 60*time.Second)
			cr, err := c.CreateChannel(ctx, "general", "General")
			if err != nil {
				t.Fatal(err)
			}
			if cons == client.Local {
				// A node that has not applied the channel yet would
				// rightly answer NotFound at Local.
				tc.Converged()
			}
			sub, err := c.Subscribe(ctx, "general", client.SubscribeOptions{Consistency: cons, MinIndex: cr.Index})
			if err != nil {
				t.Fatal(err)
			}
			const total = 150
			got := collect(sub, total)

			var acked atomic.Int64
			writerErr := make(chan error, 1)
			go func() {
				for i := 1; i <= total; i++ {
					res, err := c.Send(ctx, client.SendRequest{ChannelID: "general", AuthorID: "w", Payload: fmt.Appendf(nil, "%d", i)})
					if err != nil {
						writerErr <- fmt.Errorf("send %d: %w", i, err)
						return
					}
					if res.Sequence != uint64(i) {
						writerErr <- fmt.Errorf("send %d got sequence %d", i, res.Sequence)
						return
					}
					acked.Store(int64(i))
				}
				writerErr <- nil
			}()
			waitUntil(t, 20*time.Second, "50 acknowledged sends", func() bool { return acked.Load() >= 50 })
			l := tc.Leader()
			tc.Stop(l)
			if err := <-writerErr; err != nil {
				t.Fatal(err)
			}
			res := <-got
			sub.Close()
			if res.err != nil {
				t.Fatalf("subscription after %d messages: %v", len(res.msgs), res.err)
			}
			checkExactlyOnce(t, res.msgs, total)
		})
	}
}

type collected struct {
	msgs []client.Message
	err  error
}

// collect receives until n messages arrived or Recv fails, then reports.
func collect(sub *client.Subscription, n int) <-chan collected {
	out := make(chan collected, 1)
	go func() {
		var res collected
		for len(res.msgs) < n {
			b, err := sub.Recv()
			if err != nil {
				res.err = err
				break
			}
			res.msgs = append(res.msgs, b.Messages...)
		}
		out <- res
	}()
	return out
}

// checkExactlyOnce checks that msgs are sequences 1..n in order with the
// payload the writer sent for each.
func checkExactlyOnce(t *testing.T, msgs []client.Message, n int) {
	t.Helper()
	if len(msgs) != n {
		t.Fatalf("received %d messages, want %d", len(msgs), n)
	}
	for i, m := range msgs {
		if m.Sequence != uint64(i+1) || string(m.Payload) != fmt.Sprint(i+1) {
			t.Fatalf("message %d: sequence %d payload %q", i+1, m.Sequence, m.Payload)
		}
	}
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestClusterAdmin: ClusterStatus reports every node, a stopped one with
// its error; TransferLeadership moves leadership to the node asked.
func TestClusterAdmin(t *testing.T) {
	tc := testcluster.Start(t, 3)
	c := newClient(t, client.Config{Addrs: tc.Addrs()})
	ctx := ctxFor(t, 30*time.Second)
	l := tc.Leader()
	to := follower(tc, l)
	newLeader, err := c.TransferLeadership(ctx, tc.NodeID(to))
	if err != nil {
		t.Fatal(err)
	}
	if got := tc.Leader(); got != to || (newLeader != "" && newLeader != tc.NodeID(to)) {
		t.Fatalf("leader after transfer: %s (answered %q), want %s", tc.NodeID(got), newLeader, tc.NodeID(to))
	}
	if _, err := c.TransferLeadership(ctx, "node9"); !errors.Is(err, client.ErrInvalidArgument) {
		t.Fatalf("transfer to an unknown node: %v", err)
	}
	down := follower(tc, to)
	tc.Stop(down)
	var sts []client.NodeStatus
	waitUntil(t, 10*time.Second, "a status naming the new leader", func() bool {
		sts, err = c.ClusterStatus(ctx)
		return err == nil && len(sts) == 3 && sts[to].Role == "leader"
	})
	for i, st := range sts {
		switch {
		case i == down:
			if !errors.Is(st.Err, client.ErrUnavailable) {
				t.Errorf("stopped %s: %+v", tc.NodeID(i), st)
			}
		case st.Err != nil || st.NodeID != tc.NodeID(i) || st.LeaderID != tc.NodeID(to) || st.Addr != tc.Addr(i) || st.Term == 0:
			t.Errorf("%s: %+v", tc.NodeID(i), st)
		}
	}
	if c.Leader() != tc.Addr(to) {
		t.Errorf("client's leader %q after ClusterStatus", c.Leader())
	}
	if _, err := c.NodeStatus(ctx, tc.Addr(down)); !errors.Is(err, client.ErrUnavailable) {
		t.Errorf("status of a stopped node: %v", err)
	}
}
