package client_test

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftogram/raftogram/client"
	"github.com/raftogram/raftogram/config"
	"github.com/raftogram/raftogram/internal/testcluster"
)

// history returns every message of a channel, in order.
func history(t *testing.T, c *client.Client, ch string) []client.Message {
	t.Helper()
	ctx := ctxFor(t, 30*time.Second)
	var all []client.Message
	var after uint64
	for {
		h, err := c.ReadHistory(ctx, ch, client.ReadOptions{After: after, Limit: 1000})
		if err != nil {
			t.Fatalf("read %s: %v", ch, err)
		}
		all = append(all, h.Messages...)
		if !h.HasMore || len(h.Messages) == 0 {
			return all
		}
		after = h.Messages[len(h.Messages)-1].Sequence
	}
}

// checkChannel fails unless channel ch holds exactly the payloads "<ch>-1"
// .. "<ch>-n" at sequences 1..n, each client message id once.
func checkChannel(t *testing.T, c *client.Client, ch string, n int) {
	t.Helper()
	msgs := history(t, c, ch)
	if len(msgs) != n {
		t.Fatalf("channel %s holds %d messages, want %d", ch, len(msgs), n)
	}
	ids := map[string]bool{}
	for i, m := range msgs {
		if want := fmt.Sprintf("%s-%d", ch, i+1); m.Sequence != uint64(i+1) || string(m.Payload) != want {
			t.Fatalf("channel %s message %d: sequence %d payload %q, want %q", ch, i+1, m.Sequence, m.Payload, want)
		}
		if ids[m.ClientMessageID] {
			t.Fatalf("channel %s: client message id %s stored twice", ch, m.ClientMessageID)
		}
		ids[m.ClientMessageID] = true
	}
}

// Per channel, a Publisher's messages get sequences in publish order,
// while its stream interleaves channels; rejected messages fail alone.
func TestClusterPublishOrderAndPerItemErrors(t *testing.T) {
	tc := testcluster.Start(t, 3)
	var streams atomic.Int64 // Publish streams the client moved on from (an election may break one)
	c := newClient(t, client.Config{Addrs: tc.Addrs(), OnRetry: func(r client.Retry) {
		if r.Op == "Publish" {
			t.Logf("publish stream retried: %v", r.Err)
			streams.Add(1)
		}
	}})
	ctx := ctxFor(t, 60*time.Second)
	chans := []string{"a", "b", "c", "d"}
	for _, ch := range chans {
		if _, err := c.CreateChannel(ctx, ch, ch); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Send(ctx, client.SendRequest{ChannelID: "a", AuthorID: "w", Payload: []byte("a-1"), ClientMessageID: "taken"}); err != nil {
		t.Fatal(err)
	}
	p := c.NewPublisher(client.PublisherOptions{MaxPending: 32})
	defer p.Close()
	const perChannel = 100
	type sent struct {
		ch  string
		seq uint64
		f   *client.PublishFuture
	}
	var all []sent
	next := map[string]uint64{"a": 2, "b": 1, "c": 1, "d": 1}
	var bad []*client.PublishFuture
	for i := range perChannel {
		for _, ch := range chans {
			if ch == "a" && i == perChannel-1 {
				continue // "a" has its first message already
			}
			f, err := p.PublishAsync(ctx, client.SendRequest{ChannelID: ch, AuthorID: "w", Payload: fmt.Appendf(nil, "%s-%d", ch, next[ch])})
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, sent{ch, next[ch], f})
			next[ch]++
		}
		if i == 10 {
			for _, req := range []client.SendRequest{
				{ChannelID: "nope", AuthorID: "w", Payload: []byte("x")},
				{ChannelID: "a", AuthorID: "w", Payload: []byte("other"), ClientMessageID: "taken"},
				{ChannelID: "b", AuthorID: "", Payload: []byte("x")},
			} {
				f, err := p.PublishAsync(ctx, req)
				if err != nil {
					t.Fatal(err)
				}
				bad = append(bad, f)
			}
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range all {
		res, err := s.f.Wait(ctx)
		// Deduplicated only when a broken stream made the Publisher resend.
		if err != nil || res.Sequence != s.seq || (res.Deduplicated && streams.Load() == 0) {
			t.Fatalf("%s message %d: %+v, %v", s.ch, s.seq, res, err)
		}
	}
	for i, want := range []error{client.ErrNotFound, client.ErrAlreadyExists, client.ErrInvalidArgument} {
		if _, err := bad[i].Wait(ctx); !errors.Is(err, want) {
			t.Errorf("rejected message %d: %v, want %v", i, err, want)
		}
	}
	for _, ch := range chans {
		checkChannel(t, c, ch, perChannel)
	}
}

// Stopping the leader mid-stream loses nothing and stores nothing twice:
// the Publisher reconnects to the new leader and resends what was not
// acknowledged with the same ids; every message ends up with exactly one
// sequence, in publish order, without gaps. Relayed: the client knows only
// the two followers, which relay its streams (forward_writes), and the
// leader behind the relay stops.
func TestClusterPublishExactlyOnceAcrossLeaderStop(t *testing.T) {
	for _, relayed := range []bool{false, true} {
		t.Run(fmt.Sprintf("relayed=%v", relayed), func(t *testing.T) {
			tc := testcluster.Start(t, 3, func(cfg *config.Config) { cfg.ForwardWrites = relayed })
			addrs := tc.Addrs()
			if relayed {
				l := tc.Leader()
				addrs = nil
				for i := range 3 {
					if i != l {
						addrs = append(addrs, tc.Addr(i))
					}
				}
			}
			publishAcrossLeaderStop(t, tc, addrs)
		})
	}
}

func publishAcrossLeaderStop(t *testing.T, tc *testcluster.Cluster, addrs []string) {
	var streams atomic.Int64 // Publish streams the client moved on from
	c := newClient(t, client.Config{Addrs: addrs, OnRetry: func(r client.Retry) {
		if r.Op == "Publish" {
			streams.Add(1)
		}
	}})
	ctx := ctxFor(t, 90*time.Second)
	chans := []string{"x", "y"}
	for _, ch := range chans {
		if _, err := c.CreateChannel(ctx, ch, ch); err != nil {
			t.Fatal(err)
		}
	}
	p := c.NewPublisher(client.PublisherOptions{MaxPending: 64})
	defer p.Close()
	const perChannel = 400
	futures := make(chan *client.PublishFuture, 2*perChannel)
	pubErr := make(chan error, 1)
	go func() {
		for i := 1; i <= perChannel; i++ {
			for _, ch := range chans {
				f, err := p.PublishAsync(ctx, client.SendRequest{ChannelID: ch, AuthorID: "w", Payload: fmt.Appendf(nil, "%s-%d", ch, i)})
				if err != nil {
					pubErr <- err
					return
				}
				futures <- f
			}
		}
		close(futures)
		pubErr <- nil
	}()
	var acked int
	var stopped bool
	for f := range futures {
		if _, err := f.Wait(ctx); err != nil {
			t.Fatalf("message %d: %v", acked+1, err)
		}
		acked++
		if acked == 200 && !stopped {
			stopped = true
			tc.Stop(tc.Leader())
		}
	}
	if err := <-pubErr; err != nil {
		t.Fatal(err)
	}
	if acked != 2*perChannel {
		t.Fatalf("%d acknowledged, want %d", acked, 2*perChannel)
	}
	if streams.Load() == 0 {
		t.Fatal("the leader stopped mid-stream, yet the Publisher never opened another stream")
	}
	for _, ch := range chans {
		checkChannel(t, c, ch, perChannel)
	}
}

// TestClusterPublishThroughFollowerAddress: a Publisher that knows only a
// follower's address gets every message stored in order either way: without
// forward_writes the follower refuses the stream (NotLeader) and the client
// follows the hint to the leader; with it the follower relays the stream to
// the leader and no NotLeader is seen.
func TestClusterPublishThroughFollowerAddress(t *testing.T) {
	for _, forward := range []bool{false, true} {
		t.Run(fmt.Sprintf("forward_writes=%v", forward), func(t *testing.T) {
			tc := testcluster.Start(t, 3, func(cfg *config.Config) { cfg.ForwardWrites = forward })
			l := tc.Leader()
			f := follower(tc, l)
			var notLeader atomic.Int64
			c := newClient(t, client.Config{Addrs: []string{tc.Addr(f)}, OnRetry: func(r client.Retry) {
				if r.Op == "Publish" && errors.Is(r.Err, client.ErrNotLeader) && r.Addr == tc.Addr(f) {
					notLeader.Add(1)
				}
			}})
			ctx := ctxFor(t, 30*time.Second)
			// Another client creates the channel, so the Publisher's stream
			// is this client's first call and meets the follower's answer.
			if _, err := newClient(t, client.Config{Addrs: tc.Addrs()}).CreateChannel(ctx, "general", "General"); err != nil {
				t.Fatal(err)
			}
			tc.Converged()
			p := c.NewPublisher(client.PublisherOptions{})
			defer p.Close()
			var fs []*client.PublishFuture
			for i := 1; i <= 20; i++ {
				f, err := p.PublishAsync(ctx, client.SendRequest{ChannelID: "general", AuthorID: "a", Payload: fmt.Appendf(nil, "general-%d", i)})
				if err != nil {
					t.Fatal(err)
				}
				fs = append(fs, f)
			}
			for i, f := range fs {
				if res, err := f.Wait(ctx); err != nil || res.Sequence != uint64(i+1) {
					t.Fatalf("message %d: %+v, %v", i+1, res, err)
				}
			}
			if forward && notLeader.Load() != 0 {
				t.Fatalf("%d NotLeader answers from a relaying follower", notLeader.Load())
			}
			if !forward && (notLeader.Load() == 0 || c.Leader() != tc.Addr(l)) {
				t.Fatalf("%d NotLeader answers from the follower, client's leader %q; want the follower to refuse and %q to take the stream", notLeader.Load(), c.Leader(), tc.Addr(l))
			}
			checkChannel(t, c, "general", 20)
		})
	}
}
