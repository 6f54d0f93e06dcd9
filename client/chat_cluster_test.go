package client_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/raftogram/raftogram/client"
	"github.com/raftogram/raftogram/internal/testcluster"
)

func seqsOf(msgs []client.Message) string {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Sequence
	}
	return fmt.Sprint(out)
}

// TestClusterChatClient: what a chat client does on a real cluster: open a
// channel on its newest page, scroll back, read since a time, follow only
// new messages, and follow from the last few.
func TestClusterChatClient(t *testing.T) {
	tc := testcluster.Start(t, 3)
	c := newClient(t, client.Config{Addrs: tc.Addrs()})
	ctx := ctxFor(t, 30*time.Second)
	if _, err := c.CreateChannel(ctx, "chat", "Chat"); err != nil {
		t.Fatal(err)
	}
	var sentAt []time.Time
	for i := 1; i <= 10; i++ {
		if _, err := c.Send(ctx, client.SendRequest{ChannelID: "chat", AuthorID: "alice", Payload: fmt.Appendf(nil, "m%d", i)}); err != nil {
			t.Fatal(err)
		}
		h, err := c.ReadHistory(ctx, "chat", client.ReadOptions{NewestFirst: true, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		sentAt = append(sentAt, h.Messages[0].CreatedAt)
	}
	page, err := c.ReadHistory(ctx, "chat", client.ReadOptions{NewestFirst: true, Limit: 4})
	if err != nil || seqsOf(page.Messages) != "[10 9 8 7]" || !page.HasMore {
		t.Fatalf("newest page: %v %v %v", seqsOf(page.Messages), page.HasMore, err)
	}
	// Scroll back at the default (linearizable) level: a Local read may be
	// answered by a follower that has not applied message 10 yet.
	var all []client.Message
	for before := uint64(0); ; {
		page, err := c.ReadHistory(ctx, "chat", client.ReadOptions{NewestFirst: true, Before: before, Limit: 4})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page.Messages...)
		if !page.HasMore {
			break
		}
		before = page.Messages[len(page.Messages)-1].Sequence
	}
	if seqsOf(all) != "[10 9 8 7 6 5 4 3 2 1]" {
		t.Fatalf("scrolled back through %v", seqsOf(all))
	}
	since, err := c.ReadHistory(ctx, "chat", client.ReadOptions{Since: sentAt[6]})
	if err != nil || since.Messages[0].Sequence > 7 || since.Messages[len(since.Messages)-1].Sequence != 10 {
		t.Fatalf("since message 7's time: %v %v", seqsOf(since.Messages), err)
	}

	subNew, err := c.Subscribe(ctx, "chat", client.SubscribeOptions{Start: client.StartNew})
	if err != nil {
		t.Fatal(err)
	}
	defer subNew.Close()
	subLast, err := c.Subscribe(ctx, "chat", client.SubscribeOptions{Start: client.StartLast, LastN: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer subLast.Close()
	// Each stream must have started before the live message is sent: read
	// until LastSequence is known, in a goroutine (Recv blocks).
	type result struct {
		got string
		err error
	}
	collect := func(sub *client.Subscription, want int) <-chan result {
		out := make(chan result, 1)
		go func() {
			var got []client.Message
			for len(got) < want {
				b, err := sub.Recv()
				if err != nil {
					out <- result{err: err}
					return
				}
				got = append(got, b.Messages...)
			}
			out <- result{got: seqsOf(got)}
		}()
		return out
	}
	newDone := collect(subNew, 1)
	lastDone := collect(subLast, 4)
	deadline := time.Now().Add(20 * time.Second)
	for subNew.LastSequence() != 10 || subLast.LastSequence() < 7 {
		if time.Now().After(deadline) {
			t.Fatalf("streams did not start: new at %d, last at %d", subNew.LastSequence(), subLast.LastSequence())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := c.Send(ctx, client.SendRequest{ChannelID: "chat", AuthorID: "bob", Payload: []byte("live")}); err != nil {
		t.Fatal(err)
	}
	if r := <-newDone; r.err != nil || r.got != "[11]" {
		t.Fatalf("StartNew delivered %s, %v", r.got, r.err)
	}
	if r := <-lastDone; r.err != nil || r.got != "[8 9 10 11]" {
		t.Fatalf("StartLast 3 delivered %s, %v", r.got, r.err)
	}
}

// TestClusterManageChannels: rename, redact and delete through the client
// on a real cluster; every node agrees, and a subscription to a deleted
// channel ends with ErrNotFound.
func TestClusterManageChannels(t *testing.T) {
	tc := testcluster.Start(t, 3)
	c := newClient(t, client.Config{Addrs: tc.Addrs()})
	ctx := ctxFor(t, 30*time.Second)
	if _, err := c.CreateChannel(ctx, "mod", "Mod"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if _, err := c.Send(ctx, client.SendRequest{ChannelID: "mod", AuthorID: "a", Payload: fmt.Appendf(nil, "m%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	up, err := c.UpdateChannel(ctx, "mod", "Moderated")
	if err != nil || up.Channel.Name != "Moderated" {
		t.Fatalf("update: %+v %v", up, err)
	}
	red, err := c.RedactMessage(ctx, "mod", 2, "spam")
	if err != nil || !red.Redacted {
		t.Fatalf("redact: %+v %v", red, err)
	}
	if _, err := c.RedactMessage(ctx, "mod", 9, ""); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("redact unknown message: %v", err)
	}
	for i := range tc.Len() {
		h, err := c.ReadHistory(ctx, "mod", client.ReadOptions{Consistency: client.AtLeast, MinIndex: red.Index, Node: tc.Addr(i)})
		if err != nil || len(h.Messages) != 3 || !h.Messages[1].Redacted || len(h.Messages[1].Payload) != 0 || string(h.Messages[2].Payload) != "m3" {
			t.Fatalf("node %d after redaction: %+v %v", i, h, err)
		}
	}
	sub, err := c.Subscribe(ctx, "mod", client.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if b, err := sub.Recv(); err != nil || len(b.Messages) == 0 {
		t.Fatalf("subscription: %+v %v", b, err)
	}
	del, err := c.DeleteChannel(ctx, "mod")
	if err != nil || !del.Deleted {
		t.Fatalf("delete: %+v %v", del, err)
	}
	for {
		if _, err := sub.Recv(); err != nil {
			if !errors.Is(err, client.ErrNotFound) {
				t.Fatalf("subscription after delete: %v", err)
			}
			break
		}
	}
	if _, err := c.GetChannel(ctx, "mod", client.ReadOptions{}); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
}
