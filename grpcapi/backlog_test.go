package grpcapi

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/fanout"
)

// A subscriber that never reads is cut off with ResourceExhausted once its
// backlog passes the limit, while a reading subscriber and the writer carry
// on; the cut stream's message says where to resume, and resuming there
// delivers the rest.
func TestSubscriberThatNeverReadsIsCutOff(t *testing.T) {
	const limit, payload, sends = 8 << 10, 1000, 600
	hub := fanout.New(EncodeMessage, fanout.WithMaxBacklog(limit))
	// A fixed 64 KiB window (no BDP growth), so the stuck stream's client
	// stops taking data early.
	client, _, _, _ := newTestServerDialing(t, true, hub, Options{MaxSubscriberBacklogBytes: limit},
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := client.CreateChannel(ctx, &raftogramv1.CreateChannelRequest{ChannelId: "c", Name: "c"}); err != nil {
		t.Fatal(err)
	}
	stuck, err := client.Subscribe(ctx, &raftogramv1.SubscribeRequest{ChannelId: "c"})
	if err != nil {
		t.Fatal(err)
	}
	// A reader on the same connection reads all the time and gets
	// everything. On a loaded machine it can fall behind by more than the
	// small limit too: then it resumes where it was cut, as the client does.
	reader, err := client.Subscribe(ctx, &raftogramv1.SubscribeRequest{ChannelId: "c"})
	if err != nil {
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() {
		var last uint64
		for last < sends {
			chunk, err := reader.Recv()
			if status.Code(err) == codes.ResourceExhausted {
				if reader, err = client.Subscribe(ctx, &raftogramv1.SubscribeRequest{ChannelId: "c", AfterSequence: last}); err == nil {
					continue
				}
			}
			if err != nil {
				read <- fmt.Errorf("reader after %d: %w", last, err)
				return
			}
			for _, m := range chunk.GetMessages() {
				if m.GetSequence() != last+1 {
					read <- fmt.Errorf("reader: sequence %d after %d", m.GetSequence(), last)
					return
				}
				last = m.GetSequence()
			}
		}
		read <- nil
	}()
	// Wait for both subscriptions before writing.
	for deadline := time.Now().Add(10 * time.Second); hub.Len() < 2; {
		if time.Now().After(deadline) {
			t.Fatal("the stuck stream never subscribed")
		}
		time.Sleep(time.Millisecond)
	}
	for i := range sends {
		if _, err := client.SendMessage(ctx, &raftogramv1.SendMessageRequest{ChannelId: "c", AuthorId: "a", Payload: make([]byte, payload),
			ClientMessageId: fmt.Sprint("m", i)}); err != nil {
			t.Fatalf("send %d while a subscriber is stuck: %v", i, err)
		}
	}
	if err := <-read; err != nil {
		t.Fatal(err)
	}
	// Only now read the stuck stream: what gRPC buffered, then the cut.
	var last uint64
	for {
		chunk, err := stuck.Recv()
		if err != nil {
			st, _ := status.FromError(err)
			if st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "limits.max_subscriber_backlog_bytes") ||
				!strings.Contains(st.Message(), fmt.Sprintf("after_sequence %d", last)) {
				t.Fatalf("stuck stream ended with %v; want ResourceExhausted naming the limit and after_sequence %d", err, last)
			}
			break
		}
		for _, m := range chunk.GetMessages() {
			if m.GetSequence() != last+1 {
				t.Fatalf("stuck stream: sequence %d after %d", m.GetSequence(), last)
			}
			last = m.GetSequence()
		}
	}
	if last >= sends {
		t.Fatalf("the stuck stream got all %d messages before its cut; the test did not make it fall behind", last)
	}
	// Resuming after the last delivered sequence delivers the rest, in order.
	resumed, err := client.Subscribe(ctx, &raftogramv1.SubscribeRequest{ChannelId: "c", AfterSequence: last})
	if err != nil {
		t.Fatal(err)
	}
	for last < sends {
		chunk, err := resumed.Recv()
		if err != nil {
			t.Fatalf("resumed stream after %d: %v", last, err)
		}
		for _, m := range chunk.GetMessages() {
			if m.GetSequence() != last+1 {
				t.Fatalf("resumed stream: sequence %d after %d", m.GetSequence(), last)
			}
			last = m.GetSequence()
		}
	}
}
