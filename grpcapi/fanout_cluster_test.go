package grpcapi_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/client"
	"github.com/raftogram/raftogram/config"
	"github.com/raftogram/raftogram/internal/testcluster"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Subscribers spread over all three nodes of a cluster, opened while the
// messages flow, each get every message of the channel exactly once, in
// order, with the payload the writer was acknowledged for, from the node
// they subscribed to; with wake-ups coalesced (fanout_coalesce) and
// without.
func TestFanoutAcrossNodesDeliversEveryMessageOnce(t *testing.T) {
	for _, coalesce := range []time.Duration{0, 5 * time.Millisecond} {
		t.Run(fmt.Sprintf("coalesce=%s", coalesce), func(t *testing.T) {
			testFanoutAcrossNodes(t, coalesce)
		})
	}
}

func testFanoutAcrossNodes(t *testing.T, coalesce time.Duration) {
	const (
		perNode = 8   // subscribers per node
		writers = 4   // concurrent senders, so commits carry several messages
		total   = 400 // messages
	)
	tc := testcluster.Start(t, 3, func(c *config.Config) { c.FanoutCoalesce = coalesce })
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	conns := make([]raftogramv1.MessengerClient, tc.Len())
	for i := range conns {
		cc, err := grpc.NewClient(tc.Addr(i), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		conns[i] = raftogramv1.NewMessengerClient(cc)
	}
	// The writers go through the client, which finds the leader and retries
	// a send with the same client_message_id across an election (a busy
	// machine may have one), so every message commits exactly once.
	c, err := client.New(ctx, client.Config{Addrs: tc.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.CreateChannel(ctx, "fan", "Fan"); err != nil {
		t.Fatal(err)
	}
	tc.Converged() // every node knows the channel: LOCAL streams do not answer NotFound

	var mu sync.Mutex
	acked := make(map[uint64]string) // sequence -> payload
	var wg sync.WaitGroup
	writerErrs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for k := range total / writers {
				p := fmt.Sprintf("w%d-%d", w, k)
				res, err := c.Send(ctx, client.SendRequest{ChannelID: "fan", AuthorID: "w", Payload: []byte(p), ClientMessageID: p})
				if err != nil {
					writerErrs <- fmt.Errorf("send %s: %w", p, err)
					return
				}
				mu.Lock()
				acked[res.Sequence] = p
				mu.Unlock()
			}
		})
	}

	type received struct {
		node  int
		seqs  []uint64
		pays  []string
		err   error
		wrong string // a chunk's node_id other than the node subscribed to
	}
	got := make([]*received, 0, perNode*tc.Len())
	var subs sync.WaitGroup
	for k := range perNode * tc.Len() {
		r := &received{node: k % tc.Len()}
		got = append(got, r)
		subs.Go(func() {
			stream, err := conns[r.node].Subscribe(ctx, &raftogramv1.SubscribeRequest{ChannelId: "fan", Consistency: raftogramv1.ReadConsistency_READ_CONSISTENCY_LOCAL})
			if err != nil {
				r.err = err
				return
			}
			for len(r.seqs) < total {
				chunk, err := stream.Recv()
				if err != nil {
					r.err = err
					return
				}
				if id := chunk.GetNodeId(); id != tc.NodeID(r.node) && r.wrong == "" {
					r.wrong = id
				}
				for _, m := range chunk.GetMessages() {
					r.seqs = append(r.seqs, m.GetSequence())
					r.pays = append(r.pays, string(m.GetPayload()))
				}
			}
		})
	}
	wg.Wait()
	close(writerErrs)
	for err := range writerErrs {
		t.Fatal(err)
	}
	subs.Wait()
	if len(acked) != total {
		t.Fatalf("%d distinct sequences acknowledged, want %d", len(acked), total)
	}
	for i, r := range got {
		who := fmt.Sprintf("subscriber %d on %s", i, tc.NodeID(r.node))
		if r.err != nil {
			t.Fatalf("%s: after %d messages: %v", who, len(r.seqs), r.err)
		}
		if r.wrong != "" {
			t.Errorf("%s: a chunk came from node %q", who, r.wrong)
		}
		if len(r.seqs) != total {
			t.Fatalf("%s: %d messages, want %d", who, len(r.seqs), total)
		}
		for j, seq := range r.seqs {
			if seq != uint64(j+1) {
				t.Fatalf("%s: message %d has sequence %d, want %d (gap, repeat or reordering)", who, j, seq, j+1)
			}
			if r.pays[j] != acked[seq] {
				t.Fatalf("%s: sequence %d has payload %q, the writer was acknowledged %q", who, seq, r.pays[j], acked[seq])
			}
		}
	}
}
