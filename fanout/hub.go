// Package fanout tells live subscribers that their channel has new
// committed messages. It carries no messages: a woken subscriber reads them
// from the projection by sequence, so a slow subscriber never sees a gap, a
// duplicate or a reordering, and publishing never blocks the state machine.
package fanout

import "sync"

// Hub routes commit notifications to subscriptions by channel id. The zero
// value is not usable; call New.
type Hub struct {
	mu   sync.Mutex
	subs map[string]map[*Subscription]struct{}
}

// New returns an empty hub.
func New() *Hub {
	return &Hub{subs: make(map[string]map[*Subscription]struct{})}
}

// Subscription is one subscriber's doorbell. C receives a value whenever
// messages were committed to the channel since the last receive; several
// commits coalesce into one value.
type Subscription struct {
	C <-chan struct{}

	c         chan struct{}
	channelID string
	hub       *Hub
}

// Subscribe returns a subscription for channelID. Subscribe before reading
// history, so no commit between the read and the wait goes unnoticed.
// Close it when done.
func (h *Hub) Subscribe(channelID string) *Subscription {
	c := make(chan struct{}, 1)
	s := &Subscription{C: c, c: c, channelID: channelID, hub: h}
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.subs[channelID]
	if set == nil {
		set = make(map[*Subscription]struct{})
		h.subs[channelID] = set
	}
	set[s] = struct{}{}
	return s
}

// Close removes the subscription from its hub. It is idempotent.
func (s *Subscription) Close() {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if set := h.subs[s.channelID]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(h.subs, s.channelID)
		}
	}
}

// Notify rings every subscription of channelID. It never blocks.
func (h *Hub) Notify(channelID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs[channelID] {
		ring(s.c)
	}
}

// NotifyAll rings every subscription, as after a snapshot restore replaced
// the whole projection.
func (h *Hub) NotifyAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, set := range h.subs {
		for s := range set {
			ring(s.c)
		}
	}
}

// Len returns the number of open subscriptions.
func (h *Hub) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, set := range h.subs {
		n += len(set)
	}
	return n
}

func ring(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default: // already rung; the subscriber will read everything new
	}
}
