package fanout

import "testing"

func rung(s *Subscription) bool {
	select {
	case <-s.C:
		return true
	default:
		return false
	}
}

func TestNotifyRingsOnlyThatChannelAndCoalesces(t *testing.T) {
	h := New()
	a, b := h.Subscribe("a"), h.Subscribe("b")
	defer a.Close()
	defer b.Close()
	h.Notify("a")
	h.Notify("a") // must not block although a has not drained
	if !rung(a) {
		t.Fatal("subscriber of a was not rung")
	}
	if rung(a) {
		t.Fatal("two notifications were not coalesced")
	}
	if rung(b) {
		t.Fatal("subscriber of b was rung by a commit to a")
	}
	h.NotifyAll()
	if !rung(a) || !rung(b) {
		t.Fatal("NotifyAll missed a subscriber")
	}
}

func TestCloseUnsubscribes(t *testing.T) {
	h := New()
	s := h.Subscribe("a")
	if h.Len() != 1 {
		t.Fatalf("Len = %d, want 1", h.Len())
	}
	s.Close()
	s.Close()
	h.Notify("a")
	if rung(s) || h.Len() != 0 {
		t.Fatal("a closed subscription is still registered")
	}
}
