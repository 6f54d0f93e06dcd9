package client

import (
	"errors"
	"sync"
	"testing"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A stream the node cuts off as too slow (ResourceExhausted, the
// subscriber backlog limit) is resumed, after a backoff, after the last
// delivered sequence: the subscription goes on without a gap or a repeat.
func TestSubscribeResumesAfterSlowConsumerCutOff(t *testing.T) {
	a := startFake(t, &fake{})
	a.subscribe = func(_ int, req *raftogramv1.SubscribeRequest, st grpc.ServerStreamingServer[raftogramv1.SubscribeChunk]) error {
		switch req.GetAfterSequence() {
		case 0:
			st.Send(chunk("a", 5, 1, 2))
			return status.Error(codes.ResourceExhausted, "subscriber too slow: more than 8388608 bytes were committed to channel g after the last message this stream sent (limits.max_subscriber_backlog_bytes); resubscribe with after_sequence 2")
		case 2:
			st.Send(chunk("a", 6, 3))
		default:
			t.Errorf("resumed after %d, want 2", req.GetAfterSequence())
		}
		<-st.Context().Done()
		return nil
	}
	var mu sync.Mutex
	var retries []Retry
	c := newTestClient(t, Config{Addrs: []string{a.addr}, OnRetry: func(r Retry) { mu.Lock(); retries = append(retries, r); mu.Unlock() }})
	sub, err := c.Subscribe(testCtx(t), "g", SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var got []uint64
	for sub.LastSequence() < 3 {
		batch, err := sub.Recv()
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		for _, m := range batch.Messages {
			got = append(got, m.Sequence)
		}
	}
	if len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 3 {
		t.Fatalf("delivered %v, want [1 2 3] exactly once", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(retries) != 1 || retries[0].Op != "Subscribe" || !errors.Is(retries[0].Err, ErrResourceExhausted) {
		t.Fatalf("OnRetry saw %+v, want one resumed Subscribe after ResourceExhausted", retries)
	}
}
