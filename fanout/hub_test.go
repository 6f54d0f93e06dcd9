package fanout

import (
	"testing"

	"github.com/raftogram/raftogram/domain"
)

func rung(s *Subscription) bool {
	select {
	case <-s.C:
		return true
	default:
		return false
	}
}

func msgs(ch string, from, to uint64) []domain.Message {
	var out []domain.Message
	for seq := from; seq <= to; seq++ {
		out = append(out, domain.Message{ChannelID: ch, Sequence: seq, Payload: []byte("p")})
	}
	return out
}

func seqs(items []Item) []uint64 {
	var out []uint64
	for _, it := range items {
		out = append(out, it.Sequence)
	}
	return out
}

func TestPublishRingsOnlyThatChannelAndCoalesces(t *testing.T) {
	h := New(nil)
	a, b := h.Subscribe("a"), h.Subscribe("b")
	defer a.Close()
	defer b.Close()
	h.Publish(msgs("a", 1, 1))
	h.Publish(msgs("a", 2, 2)) // must not block although a has not drained
	if !rung(a) {
		t.Fatal("subscriber of a was not rung")
	}
	if rung(a) {
		t.Fatal("two publications were not coalesced")
	}
	if rung(b) {
		t.Fatal("subscriber of b was rung by a commit to a")
	}
	h.Reset()
	if !rung(a) || !rung(b) {
		t.Fatal("Reset missed a subscriber")
	}
}

func TestSinceServesTheWindowOrSaysAskTheStore(t *testing.T) {
	h := New(nil)
	s := h.Subscribe("a")
	defer s.Close()
	if _, ok := s.Since(0, 100, 1<<20); ok {
		t.Fatal("an empty window claimed to know the history")
	}
	h.Publish(append(msgs("a", 5, 7), msgs("other", 1, 3)...)) // "other" has no subscriber: ignored
	for _, tc := range []struct {
		after uint64
		ok    bool
		want  []uint64
	}{
		{0, false, nil}, // 1..4 were committed before the window: read the store
		{3, false, nil}, // 4 is not in the window
		{4, true, []uint64{5, 6, 7}},
		{5, true, []uint64{6, 7}},
		{7, true, nil}, // up to date
		{9, true, nil}, // ahead (the store is ahead of the window): nothing yet
	} {
		got, ok := s.Since(tc.after, 100, 1<<20)
		if ok != tc.ok || len(got) != len(tc.want) || (len(got) > 0 && got[0].Sequence != tc.want[0]) {
			t.Errorf("Since(%d) = %v, %v; want %v, %v", tc.after, seqs(got), ok, tc.want, tc.ok)
		}
	}
	if got, _ := s.Since(4, 2, 1<<20); len(got) != 2 {
		t.Fatalf("limit 2 returned %d", len(got))
	}
	if got, _ := s.Since(4, 100, 1); len(got) != 1 {
		t.Fatalf("byte budget 1 returned %d, want exactly one message", len(got))
	}
	h.Reset()
	if _, ok := s.Since(4, 100, 1<<20); ok {
		t.Fatal("window survived Reset")
	}
}

func TestWindowIsBoundedAndStaysContiguous(t *testing.T) {
	h := New(nil)
	s := h.Subscribe("a")
	defer s.Close()
	h.Publish(msgs("a", 1, windowMessages+10))
	if _, ok := s.Since(5, 10, 1<<20); ok {
		t.Fatal("trimmed messages still served")
	}
	got, ok := s.Since(10, 5, 1<<20)
	if !ok || len(got) != 5 || got[0].Sequence != 11 {
		t.Fatalf("Since(10) = %v, %v", seqs(got), ok)
	}
	h.Publish(msgs("a", windowMessages+20, windowMessages+20)) // a gap restarts the window
	if _, ok := s.Since(windowMessages+10, 10, 1<<20); ok {
		t.Fatal("window served across a gap")
	}
}

func TestCloseUnsubscribesAndDropsTheWindow(t *testing.T) {
	h := New(nil)
	s := h.Subscribe("a")
	if h.Len() != 1 {
		t.Fatalf("Len = %d, want 1", h.Len())
	}
	s.Close()
	s.Close()
	h.Publish(msgs("a", 1, 1))
	if rung(s) || h.Len() != 0 {
		t.Fatal("a closed subscription is still registered")
	}
	again := h.Subscribe("a")
	defer again.Close()
	if _, ok := again.Since(0, 10, 1<<20); ok {
		t.Fatal("a window outlived its last subscriber")
	}
}

// Items handed to one subscriber are never changed by later publishes, and
// every item carries the encoder's output, made once.
func TestItemsAreEncodedOnceAndNeverChangeAfterwards(t *testing.T) {
	encoded := 0
	h := New(func(m domain.Message) []byte { encoded++; return []byte{byte(m.Sequence)} })
	s := h.Subscribe("c")
	defer s.Close()
	other := h.Subscribe("c")
	defer other.Close()
	h.Publish(msgs("c", 1, 3))
	first, ok := s.Since(0, 10, 1<<20)
	if !ok || len(first) != 3 || first[2].Wire[0] != 3 {
		t.Fatalf("Since(0) = %v, %v", first, ok)
	}
	if again, _ := other.Since(0, 10, 1<<20); &again[0] != &first[0] {
		t.Fatal("subscribers got copies of the window, not the shared items")
	}
	// Fill and evict far past the window; the slice handed out stays as it was.
	for seq := uint64(4); seq < 3*windowMessages; seq += 1000 {
		h.Publish(msgs("c", seq, min(seq+999, 3*windowMessages-1)))
	}
	for i, it := range first {
		if it.Sequence != uint64(i+1) || it.Wire[0] != byte(i+1) {
			t.Fatalf("item %d changed after later publishes: %+v", i, it)
		}
	}
	if encoded != 3*windowMessages-1 {
		t.Fatalf("encoder ran %d times for %d messages published once", encoded, 3*windowMessages-1)
	}
	h.Publish(msgs("nobody-listens", 1, 10))
	if encoded != 3*windowMessages-1 {
		t.Fatalf("encoder ran for a channel without subscribers (%d calls)", encoded-(3*windowMessages-1))
	}
}
