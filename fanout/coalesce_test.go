package fanout

import (
	"testing"
	"time"
)

// With a coalescing interval, the first commit after a quiet spell rings at
// once and the commits within the interval ring nobody until the deferred
// ring; a subscriber that reads meanwhile (a heartbeat, a Forget) still
// gets every message in order, from right after its cursor.
func TestCoalescedCommitsRingOnceAndKeepOrder(t *testing.T) {
	h := New(nil, WithCoalesce(time.Hour)) // the deferred ring never comes in this test
	s := h.Subscribe("a")
	defer s.Close()
	h.Publish(msgs("a", 1, 1))
	if !rung(s) {
		t.Fatal("the first commit after a quiet spell did not ring at once")
	}
	items, ok := s.Since(0, 100, 1<<20)
	if got := seqs(items); !ok || len(got) != 1 || got[0] != 1 {
		t.Fatalf("Since(0) = %v, %v; want [1], true", got, ok)
	}
	for seq := uint64(2); seq <= 5; seq++ {
		h.Publish(msgs("a", seq, seq))
	}
	if rung(s) {
		t.Fatal("commits within the interval rang instead of waiting for the deferred ring")
	}
	items, ok = s.Since(1, 100, 1<<20)
	if got := seqs(items); !ok || len(got) != 4 || got[0] != 2 || got[3] != 5 {
		t.Fatalf("Since(1) = %v, %v; want [2 3 4 5], true", got, ok)
	}
	h.Forget("a") // rings at once, whatever the interval
	if !rung(s) {
		t.Fatal("Forget did not ring")
	}
}

// A writer publishes one message per commit while a subscriber follows
// with the doorbell and Since, as a stream does: the deferred rings come,
// so the subscriber gets every message exactly once and in order, never a
// gap or a repeat at the seam between two rings.
func TestCoalescedSubscriberGetsEveryMessageInOrder(t *testing.T) {
	const total = 500
	h := New(nil, WithCoalesce(2*time.Millisecond))
	s := h.Subscribe("a")
	defer s.Close()
	done := make(chan []uint64, 1)
	go func() {
		var got []uint64
		var cursor uint64
		deadline := time.After(30 * time.Second)
		for cursor < total {
			select {
			case <-s.C:
			case <-deadline:
				done <- got
				return
			}
			for {
				items, ok := s.Since(cursor, 64, 1<<20)
				if !ok {
					t.Errorf("Since(%d) left the window", cursor)
					done <- got
					return
				}
				if len(items) == 0 {
					break
				}
				for _, it := range items {
					got = append(got, it.Sequence)
					cursor = it.Sequence
				}
			}
		}
		done <- got
	}()
	for seq := uint64(1); seq <= total; seq++ {
		h.Publish(msgs("a", seq, seq))
	}
	got := <-done
	if len(got) != total {
		t.Fatalf("got %d messages, want %d (the last deferred ring never came?)", len(got), total)
	}
	for i, seq := range got {
		if seq != uint64(i+1) {
			t.Fatalf("message %d has sequence %d, want %d", i, seq, i+1)
		}
	}
}

// The deferred ring wakes the subscribers the channel has when it comes,
// including one that subscribed within the interval.
func TestDeferredRingWakesALaterSubscriber(t *testing.T) {
	h := New(nil, WithCoalesce(time.Millisecond))
	s := h.Subscribe("a")
	defer s.Close()
	h.Publish(msgs("a", 1, 1)) // rings at once
	h.Publish(msgs("a", 2, 2)) // within the interval (or rings, if it passed)
	s2 := h.Subscribe("a")
	defer s2.Close()
	h.Publish(msgs("a", 3, 3))
	select {
	case <-s2.C:
	case <-time.After(10 * time.Second):
		t.Fatal("the subscriber that joined within the interval was never rung")
	}
	items, ok := s2.Since(0, 100, 1<<20)
	if got := seqs(items); !ok || len(got) != 3 || got[2] != 3 {
		t.Fatalf("Since(0) = %v, %v; want [1 2 3], true", got, ok)
	}
}
