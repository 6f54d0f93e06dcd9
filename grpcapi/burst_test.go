package grpcapi

import (
	"context"
	"fmt"
	"testing"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/domain"
)

// A live stream gets every message of a commit larger than one chunk
// (MaxLimit messages) without waiting for another commit: after a full
// chunk from the window it reads on instead of waiting for the doorbell.
func TestStreamDrainsACommitLargerThanAChunk(t *testing.T) {
	client, _, lc, _ := newTestServer(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := client.CreateChannel(ctx, &raftogramv1.CreateChannelRequest{ChannelId: "burst", Name: "Burst"}); err != nil {
		t.Fatal(err)
	}
	stream, err := client.Subscribe(ctx, &raftogramv1.SubscribeRequest{ChannelId: "burst"})
	if err != nil {
		t.Fatal(err)
	}
	send := func(from, n int) {
		t.Helper()
		events := make([]domain.Event, n)
		for i := range events {
			id := fmt.Sprintf("m%d", from+i)
			events[i] = domain.MessageSent{ChannelID: "burst", AuthorID: "a", Payload: []byte(id), ClientMessageID: id, CreatedAt: time.Now()}
		}
		if _, err := lc.Apply(ctx, events); err != nil {
			t.Fatal(err)
		}
	}
	var next uint64 = 1
	recv := func(upTo uint64) {
		t.Helper()
		for next <= upTo {
			chunk, err := stream.Recv()
			if err != nil {
				t.Fatalf("waiting for sequence %d of %d: %v", next, upTo, err)
			}
			for _, m := range chunk.GetMessages() {
				if m.GetSequence() != next {
					t.Fatalf("got sequence %d, want %d", m.GetSequence(), next)
				}
				next++
			}
		}
	}
	send(1, 1)
	recv(1) // the stream is live, reading the window
	const burst = 2*MaxLimit + 500
	send(2, burst)
	recv(1 + burst)
}
