package client

import (
	"errors"
	"testing"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"google.golang.org/grpc"
)

// A node that stops sending on a level stream (no messages, no heartbeat)
// without closing it is abandoned after Config.StreamSilence, and the
// stream resumes on another node after the last delivered sequence.
func TestSilentStreamResumesElsewhere(t *testing.T) {
	// Both nodes hang after the first chunk of a fresh stream; only a
	// resumed stream (after 2) brings message 3, so getting it proves the
	// silent stream was abandoned and resumed at the right place.
	handler := func(name string) func(int, *raftogramv1.SubscribeRequest, grpc.ServerStreamingServer[raftogramv1.SubscribeChunk]) error {
		return func(_ int, req *raftogramv1.SubscribeRequest, st grpc.ServerStreamingServer[raftogramv1.SubscribeChunk]) error {
			switch req.GetAfterSequence() {
			case 0:
				st.Send(chunk(name, 5, 1, 2))
			case 2:
				st.Send(chunk(name, 6, 3))
			default:
				t.Errorf("%s: resumed after %d, want 2", name, req.GetAfterSequence())
			}
			<-st.Context().Done() // silent from now on, connection open
			return nil
		}
	}
	a, b := startFake(t, &fake{}), startFake(t, &fake{})
	a.subscribe, b.subscribe = handler("a"), handler("b")
	var resumed []Retry
	c := newTestClient(t, Config{Addrs: []string{a.addr, b.addr}, StreamSilence: 200 * time.Millisecond,
		OnRetry: func(r Retry) { resumed = append(resumed, r) }})
	sub, err := c.Subscribe(testCtx(t), "g", SubscribeOptions{Consistency: Local})
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
	if len(resumed) != 1 || resumed[0].Op != "Subscribe" || !errors.Is(resumed[0].Err, ErrUnavailable) {
		t.Fatalf("OnRetry saw %+v, want one resumed Subscribe after Unavailable", resumed)
	}
}
