package e2e

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/raftogram/raftogram/client"
)

// TestClientSubscribeAcrossLeaderKill: a writer sends through the Go client
// while the leader process is killed with SIGKILL; subscriptions at the
// leader-only and the default (linearizable, any node) level deliver every
// acknowledged message exactly once, in order, without gaps. Three default
// subscriptions spread over the three nodes, so one starts on the leader
// that is killed.
func TestClientSubscribeAcrossLeaderKill(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3)
	all := c.ids()
	c.start(all...)
	leader := c.waitStable(all...)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cl, err := c.Client(ctx, client.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.CreateChannel(ctx, "general", "General"); err != nil {
		t.Fatal(err)
	}

	const total = 300
	levels := []client.Consistency{client.LeaderOnly, client.ConsistencyDefault, client.ConsistencyDefault, client.ConsistencyDefault}
	results := make([]chan subResult, len(levels))
	for i, cons := range levels {
		sub, err := cl.Subscribe(ctx, "general", client.SubscribeOptions{Consistency: cons})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		results[i] = make(chan subResult, 1)
		go func() { results[i] <- receive(sub, total) }()
	}

	var acked atomic.Int64
	writerErr := make(chan error, 1)
	go func() {
		for i := 1; i <= total; i++ {
			res, err := cl.Send(ctx, client.SendRequest{ChannelID: "general", AuthorID: "writer", Payload: fmt.Appendf(nil, "%d", i)})
			if err != nil {
				writerErr <- fmt.Errorf("send %d: %w", i, err)
				return
			}
			if res.Sequence != uint64(i) {
				writerErr <- fmt.Errorf("send %d acknowledged as sequence %d", i, res.Sequence)
				return
			}
			acked.Store(int64(i))
		}
		writerErr <- nil
	}()

	eventually(t, electionWait, "100 acknowledged sends", func() error {
		if n := acked.Load(); n < 100 {
			return fmt.Errorf("%d acknowledged", n)
		}
		return nil
	})
	c.signal(leader.ID, syscall.SIGKILL)
	c.wait(leader.ID, exitWait)
	t.Logf("killed leader %s after %d acknowledged sends", leader.ID, acked.Load())

	if err := <-writerErr; err != nil {
		t.Fatal(err)
	}
	onKilled := false
	for i, cons := range levels {
		res := <-results[i]
		onKilled = onKilled || res.first == leader.ID
		if res.err != nil {
			t.Fatalf("%v subscription after %d messages: %v", cons, len(res.msgs), res.err)
		}
		if len(res.msgs) != total {
			t.Fatalf("%v subscription received %d messages, want %d", cons, len(res.msgs), total)
		}
		for j, m := range res.msgs {
			if m.Sequence != uint64(j+1) || string(m.Payload) != fmt.Sprint(j+1) {
				t.Fatalf("%v subscription: message %d is sequence %d payload %q", cons, j+1, m.Sequence, m.Payload)
			}
		}
		t.Logf("%v subscription: %d messages in order, each once, first from %q, last from %q", cons, len(res.msgs), res.first, res.last)
	}
	if !onKilled {
		t.Fatalf("no default subscription started on the killed leader %s", leader.ID)
	}
}

type subResult struct {
	msgs        []client.Message
	first, last string // the nodes that served the first and the last batch
	err         error
}

// receive reads sub until n messages arrived or Recv fails.
func receive(sub *client.Subscription, n int) subResult {
	var res subResult
	for len(res.msgs) < n {
		b, err := sub.Recv()
		if err != nil {
			res.err = err
			return res
		}
		res.msgs = append(res.msgs, b.Messages...)
		if res.first == "" {
			res.first = b.NodeID
		}
		res.last = b.NodeID
	}
	return res
}
