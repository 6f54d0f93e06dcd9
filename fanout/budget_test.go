package fanout

import (
	"testing"

	"github.com/raftogram/raftogram/domain"
)

func sized(ch string, seq uint64, n int) []domain.Message {
	return []domain.Message{{ChannelID: ch, Sequence: seq, Payload: make([]byte, n)}}
}

func isSlow(s *Subscription) bool {
	select {
	case <-s.Slow():
		return true
	default:
		return false
	}
}

func TestSlowSubscriberIsMarkedOnceItsBacklogPassesTheLimit(t *testing.T) {
	h := New(nil, WithMaxBacklog(100))
	reader, stuck := h.Subscribe("a"), h.Subscribe("a")
	defer reader.Close()
	defer stuck.Close()
	// One commit larger than the limit is not a backlog by itself: the
	// subscriber had no chance to take it yet.
	h.Publish(append(sized("a", 1, 60), sized("a", 2, 60)...))
	if isSlow(stuck) || isSlow(reader) {
		t.Fatal("a subscriber was marked slow by the latest commit alone")
	}
	// The reader sends everything and asks for more; stuck sends message 1
	// and takes message 2, which it never finishes sending.
	if items, ok := reader.Since(0, 100, 1<<20); !ok || len(items) != 2 {
		t.Fatalf("reader Since(0) = %v, %v", seqs(items), ok)
	}
	if items, ok := reader.Since(2, 100, 1<<20); !ok || len(items) != 0 {
		t.Fatalf("reader Since(2) = %v, %v", seqs(items), ok)
	}
	if items, ok := stuck.Since(0, 1, 1<<20); !ok || len(items) != 1 {
		t.Fatalf("stuck Since(0) = %v, %v", seqs(items), ok)
	}
	if items, ok := stuck.Since(1, 1, 1<<20); !ok || len(items) != 1 {
		t.Fatalf("stuck Since(1) = %v, %v", seqs(items), ok)
	}
	// stuck has sent message 1 and is behind by message 2 (60 bytes).
	h.Publish(sized("a", 3, 60))
	if isSlow(stuck) {
		t.Fatal("stuck marked slow 60 bytes behind a limit of 100")
	}
	if _, ok := reader.Since(2, 100, 1<<20); !ok {
		t.Fatal("reader fell out of the window")
	}
	h.Publish(sized("a", 4, 60)) // stuck: 120 bytes before this commit
	if !isSlow(stuck) {
		t.Fatal("stuck was not marked slow 120 bytes behind a limit of 100")
	}
	if isSlow(reader) {
		t.Fatal("the reader, 60 bytes behind, was marked slow")
	}
	// Slow stays closed.
	if !isSlow(stuck) {
		t.Fatal("Slow reopened")
	}
}

func TestSubscriberBehindTheWindowCountsAtLeastTheWindow(t *testing.T) {
	h := New(nil, WithMaxBacklog(100), WithMaxWindowBytes(50))
	s := h.Subscribe("a")
	defer s.Close()
	h.Publish(sized("a", 1, 40))
	h.Publish(sized("a", 2, 40)) // the window cap trims message 1
	if _, ok := s.Since(0, 100, 1<<20); ok {
		t.Fatal("Since(0) answered from a window that lost message 1")
	}
	// The mark moved to message 2's start (40): behind by 40, 80, then
	// 120 bytes before each next commit.
	for seq := uint64(3); seq <= 4; seq++ {
		h.Publish(sized("a", seq, 40))
		if isSlow(s) {
			t.Fatalf("marked slow %d bytes behind the window's start", (seq-2)*40)
		}
	}
	h.Publish(sized("a", 5, 40))
	if !isSlow(s) {
		t.Fatal("not marked slow 120 bytes behind the window's start")
	}
}

func TestNoBacklogLimitNeverMarks(t *testing.T) {
	h := New(nil)
	s := h.Subscribe("a")
	defer s.Close()
	for seq := uint64(1); seq <= 10; seq++ {
		h.Publish(sized("a", seq, 1<<20))
	}
	if isSlow(s) {
		t.Fatal("marked slow without a limit")
	}
}

func TestWindowsTogetherStayWithinTheCapLeastRecentFirst(t *testing.T) {
	h := New(nil, WithMaxWindowBytes(250))
	a, b, c := h.Subscribe("a"), h.Subscribe("b"), h.Subscribe("c")
	defer a.Close()
	defer b.Close()
	defer c.Close()
	h.Publish(sized("a", 1, 100))
	h.Publish(sized("b", 1, 100))
	if got := h.Stats().WindowBytes; got != 200 {
		t.Fatalf("WindowBytes = %d, want 200", got)
	}
	h.Publish(sized("c", 1, 100)) // 300 > 250: a, the least recent, goes
	if got := h.Stats().WindowBytes; got != 200 {
		t.Fatalf("WindowBytes = %d after the cap, want 200", got)
	}
	if _, ok := a.Since(0, 10, 1<<20); ok {
		t.Fatal("a's window survived although it was the least recently written")
	}
	for _, s := range []*Subscription{b, c} {
		if items, ok := s.Since(0, 10, 1<<20); !ok || len(items) != 1 {
			t.Fatalf("%s: Since(0) = %v, %v; want its message from the window", s.channelID, seqs(items), ok)
		}
	}
	// A single channel larger than the cap keeps its newest messages.
	h.Publish(append(sized("c", 2, 100), sized("c", 3, 100)...))
	if got := h.Stats().WindowBytes; got > 250 {
		t.Fatalf("WindowBytes = %d, over the cap of 250", got)
	}
	if items, ok := c.Since(2, 10, 1<<20); !ok || len(items) != 1 || items[0].Sequence != 3 {
		t.Fatalf("c: Since(2) = %v, %v; want [3] from the window", seqs(items), ok)
	}
	// Closing the last subscriber of a channel returns its bytes.
	c.Close()
	b.Close()
	if got := h.Stats().WindowBytes; got != 0 {
		t.Fatalf("WindowBytes = %d with no subscribers, want 0", got)
	}
	h.mu.RLock()
	total := h.bytes
	h.mu.RUnlock()
	if total != 0 {
		t.Fatalf("hub byte count = %d with no windows, want 0", total)
	}
}
