package fanout

import (
	"sync"
	"testing"
	"time"

	"github.com/raftogram/raftogram/domain"
)

type lagRecorder struct {
	mu   sync.Mutex
	lags []time.Duration
}

func (r *lagRecorder) ObserveDeliveryLag(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lags = append(r.lags, d)
}

// Stats counts subscribers, window bytes and projection reads; a chunk
// taken from the window reports one delivery lag.
func TestStatsAndDeliveryLag(t *testing.T) {
	rec := &lagRecorder{}
	h := New(nil, WithObserver(rec))
	sub := h.Subscribe("c")
	if _, ok := sub.Since(0, 10, 1<<20); ok {
		t.Fatal("Since on an empty window = ok; want a projection read")
	}
	h.Publish([]domain.Message{{ChannelID: "c", Sequence: 1, Payload: []byte("ab")}, {ChannelID: "c", Sequence: 2, Payload: []byte("c")},
		{ChannelID: "other", Sequence: 1, Payload: []byte("unsubscribed")}})
	if got, want := h.Stats(), (Stats{Subscribers: 1, WindowBytes: 3, ProjectionReads: 1}); got != want {
		t.Fatalf("Stats() = %+v, want %+v", got, want)
	}
	items, ok := sub.Since(0, 10, 1<<20)
	if !ok || len(items) != 2 {
		t.Fatalf("Since(0) = %d items, ok %v; want 2 from the window", len(items), ok)
	}
	if _, ok := sub.Since(2, 10, 1<<20); !ok {
		t.Fatal("Since(last) not ok")
	}
	rec.mu.Lock()
	if len(rec.lags) != 1 || rec.lags[0] < 0 || rec.lags[0] > time.Minute {
		t.Errorf("delivery lags %v; want one, between 0 and a minute", rec.lags)
	}
	rec.mu.Unlock()
	sub.Close()
	if got, want := h.Stats(), (Stats{ProjectionReads: 1}); got != want {
		t.Errorf("Stats() after Close = %+v, want %+v", got, want)
	}
}
