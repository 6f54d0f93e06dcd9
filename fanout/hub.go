// Package fanout delivers newly committed messages to live subscribers.
//
// The state machine publishes each batch's new messages once, as it applies
// them (committed in the Raft log; the projection may commit them a little
// later, and a reader of the projection flushes it first). The hub keeps a bounded window of the latest messages
// of every channel that has subscribers and rings each subscriber's
// doorbell. A woken subscriber takes what follows its cursor from the window;
// one that fell behind the window (or joined before it filled) reads from
// the projection instead. Either way it reads by sequence, so it never sees
// a gap, a duplicate or a reordering, and publishing never blocks the state
// machine.
package fanout

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftogram/raftogram/domain"
)

// Window bounds: the latest messages kept per subscribed channel.
const (
	windowMessages = 4096
	windowBytes    = 16 << 20
)

// Hub routes committed messages to subscriptions by channel id. The zero
// value is not usable; call New.
type Hub struct {
	encode   Encoder
	observer Observer // nil: none

	projectionReads atomic.Uint64 // Since calls answered !ok

	// maxBacklog cuts off a subscription more than this many payload bytes
	// behind its channel's head (0: never); maxWindows caps the bytes of
	// every window together (0: no cap beyond each window's own).
	maxBacklog, maxWindows int64
	// coalesce is the least time between two rings of a channel's
	// subscribers (0: ring at every Publish); see WithCoalesce.
	coalesce time.Duration

	mu       sync.RWMutex // Publish, Subscribe, Close write; Since reads
	channels map[string]*channel
	bytes    int64  // payload bytes in every window
	clock    uint64 // counts Publish calls: a channel's last use
}

type channel struct {
	id   string
	subs map[*Subscription]struct{}
	// bells are the subscribers' doorbells, replaced (never modified) by
	// Subscribe and Close, so a ring after the lock is released reads a
	// consistent list.
	bells []chan struct{}
	// window holds contiguous sequences, oldest first. Its elements are
	// never modified once published (Publish only appends and reslices), so
	// Since hands out sub-slices of it without copying.
	window []Item
	bytes  int
	// total counts the payload bytes published to the channel since its
	// entry was made; each Item's end is total just after it.
	total uint64
	prev  uint64 // total before the current Publish call's messages
	used  uint64 // the hub's clock at the channel's last Publish
	// rung is when the subscribers were last rung (since epoch); late is
	// set while a deferred ring is scheduled (WithCoalesce).
	rung time.Duration
	late bool
}

// Item is a published message with its wire encoding.
type Item struct {
	domain.Message
	// Wire is the Encoder's encoding of Message, made once at Publish for
	// every subscriber to send as is; nil without an Encoder (or, rarely,
	// for a channel subscribed while Publish ran).
	Wire []byte

	published time.Duration // when Publish added it, since epoch
	end       uint64        // the channel's total just after this item
}

// epoch is the hub's monotonic time origin for publish times.
var epoch = time.Now()

// Observer receives the hub's measurements (a *metrics.Metrics). Its
// methods must be cheap and safe for concurrent use.
type Observer interface {
	// ObserveDeliveryLag records how long the oldest message a stream took
	// from a window had waited there since Publish.
	ObserveDeliveryLag(d time.Duration)
}

// Option configures a Hub.
type Option func(*Hub)

// WithObserver has the hub report its measurements to o.
func WithObserver(o Observer) Option { return func(h *Hub) { h.observer = o } }

// WithMaxBacklog has the hub cut off a subscription once more than n
// payload bytes were published to its channel after the last message its
// stream has sent, not counting the latest commit's messages (see
// [Subscription.Slow]); n <= 0 means never.
func WithMaxBacklog(n int64) Option { return func(h *Hub) { h.maxBacklog = max(n, 0) } }

// WithMaxWindowBytes caps the payload bytes all windows hold together at n:
// beyond it Publish empties the least recently published windows (their
// subscribers read the projection instead); n <= 0 means no cap beyond each
// window's own.
func WithMaxWindowBytes(n int64) Option { return func(h *Hub) { h.maxWindows = max(n, 0) } }

// WithCoalesce has the hub ring a channel's subscribers at most once per d:
// a Publish within d of the channel's last ring defers its ring to d after
// that ring, and the Publish calls in between share it, so each subscriber
// wakes once and sends every message of those commits as one chunk. A
// Publish after a quiet spell of at least d rings at once, so a lone
// message waits for no timer; a message waits at most d for its ring.
// Backlog checks (WithMaxBacklog) still run at every Publish. d <= 0 rings
// at every Publish.
func WithCoalesce(d time.Duration) Option { return func(h *Hub) { h.coalesce = max(d, 0) } }

// Stats is a point-in-time view of a hub.
type Stats struct {
	Subscribers     int    // open subscriptions
	WindowBytes     int64  // payload bytes held in every window
	ProjectionReads uint64 // times Since sent a subscriber to the projection
}

// Stats returns the hub's subscribers, window bytes and projection reads.
func (h *Hub) Stats() Stats {
	h.mu.RLock()
	defer h.mu.RUnlock()
	st := Stats{ProjectionReads: h.projectionReads.Load()}
	for _, ch := range h.channels {
		st.Subscribers += len(ch.subs)
		st.WindowBytes += int64(ch.bytes)
	}
	return st
}

// Encoder encodes a message for the wire. It must be safe to call from the
// publishing goroutine and must not retain the message.
type Encoder func(domain.Message) []byte

// New returns an empty hub that encodes each published message of a
// subscribed channel once with encode (nil: no encoding).
func New(encode Encoder, opts ...Option) *Hub {
	h := &Hub{encode: encode, channels: make(map[string]*channel)}
	for _, o := range opts {
		o(h)
	}
	return h
}

// Subscription is one subscriber's doorbell. C receives a value whenever
// messages were committed to the channel since the last receive; several
// commits coalesce into one value.
type Subscription struct {
	C <-chan struct{}

	c         chan struct{}
	channelID string
	hub       *Hub

	// mark is the channel's total at the end of message `after` of the
	// latest Since call: the last message the stream has sent (at most; the
	// head when it subscribed, found nothing newer or no window). Written
	// by Since under the read lock, read by Publish.
	mark     atomic.Uint64
	slow     chan struct{} // closed once the backlog passed maxBacklog
	slowOnce sync.Once
}

// Slow returns a channel closed once more than the hub's maximum backlog
// (WithMaxBacklog) was published to the subscription's channel after the
// last message the subscriber has sent (the after of its latest Since
// call), not counting the latest commit: the subscriber cannot keep up and
// should end its stream. It stays closed.
func (s *Subscription) Slow() <-chan struct{} { return s.slow }

// Subscribe returns a subscription for channelID. Subscribe before reading
// history, so no commit between the read and the wait goes unnoticed.
// Close it when done.
func (h *Hub) Subscribe(channelID string) *Subscription {
	c := make(chan struct{}, 1)
	s := &Subscription{C: c, c: c, channelID: channelID, hub: h, slow: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := h.channels[channelID]
	if ch == nil {
		ch = &channel{id: channelID, subs: make(map[*Subscription]struct{})}
		h.channels[channelID] = ch
	}
	ch.subs[s] = struct{}{}
	ch.bells = append(slices.Clip(ch.bells), c)
	s.mark.Store(ch.total)
	return s
}

// Close removes the subscription from its hub; the channel's window goes
// with its last subscriber. It is idempotent.
func (s *Subscription) Close() {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if ch := h.channels[s.channelID]; ch != nil {
		delete(ch.subs, s)
		ch.bells = slices.DeleteFunc(slices.Clone(ch.bells), func(c chan struct{}) bool { return c == s.c })
		if len(ch.subs) == 0 && h.channels[s.channelID] == ch {
			h.bytes -= int64(ch.bytes)
			delete(h.channels, s.channelID)
		}
	}
}

// Since returns up to limit messages (and about maxBytes of payload, at
// least one message) of the subscription's channel with sequence greater
// than after, from the window. ok is false when the window cannot tell (it
// does not reach back to after+1): read the projection instead. An empty
// result with ok means nothing newer has been published. The items are
// shared with other subscribers: read them, never modify them.
func (s *Subscription) Since(after uint64, limit, maxBytes int) (items []Item, ok bool) {
	items, ok = s.since(after, limit, maxBytes)
	if !ok {
		s.hub.projectionReads.Add(1)
	} else if len(items) > 0 && s.hub.observer != nil {
		s.hub.observer.ObserveDeliveryLag(time.Since(epoch) - items[0].published)
	}
	return items, ok
}

func (s *Subscription) since(after uint64, limit, maxBytes int) (items []Item, ok bool) {
	h := s.hub
	h.mu.RLock()
	defer h.mu.RUnlock()
	ch := h.channels[s.channelID]
	if ch == nil || len(ch.window) == 0 {
		if ch != nil {
			// Without a window the backlog is unknown: count from here.
			s.mark.Store(ch.total)
		}
		return nil, false
	}
	first, last := ch.window[0].Sequence, ch.window[len(ch.window)-1].Sequence
	switch {
	case after >= last:
		s.mark.Store(ch.total)
		return nil, true
	case after+1 < first:
		// Behind the window: at least the whole window behind (the mark
		// only moves forward to the window's start, never past the
		// subscriber).
		if start := ch.window[0].end - uint64(len(ch.window[0].Payload)); start > s.mark.Load() {
			s.mark.Store(start)
		}
		return nil, false
	}
	start := int(after + 1 - first)
	if start > 0 {
		s.mark.Store(ch.window[start-1].end)
	} else {
		s.mark.Store(ch.window[0].end - uint64(len(ch.window[0].Payload)))
	}
	end, size := start, 0
	for _, m := range ch.window[start:] {
		if end-start == limit || (end > start && size >= maxBytes) {
			break
		}
		end++
		size += len(m.Payload)
	}
	return ch.window[start:end:end], true
}

// Publish adds newly committed messages (in commit order) to the windows of
// subscribed channels and rings their subscribers. Messages of channels
// without subscribers are ignored. It never blocks. The messages are
// encoded before the hub is locked, so streams reading the windows do not
// wait for the encoder; a channel subscribed in between gets its items
// without Wire (its streams encode those themselves).
func (h *Hub) Publish(msgs []domain.Message) {
	var wires [][]byte
	if h.encode != nil {
		wires = make([][]byte, len(msgs))
		h.mu.RLock()
		for i, m := range msgs {
			if h.channels[m.ChannelID] != nil {
				wires[i] = []byte{} // subscribed: encode below
			}
		}
		h.mu.RUnlock()
		for i, m := range msgs {
			if wires[i] != nil {
				wires[i] = h.encode(m)
			}
		}
	}
	// The doorbells ring after the lock is released, so a woken stream's
	// Since does not wait for (and park behind) the rest of Publish.
	for _, bells := range h.publish(msgs, wires, time.Since(epoch)) {
		for _, c := range bells {
			ring(c)
		}
	}
}

// publish is Publish's part under the lock; it returns the doorbells to
// ring.
func (h *Hub) publish(msgs []domain.Message, wires [][]byte, published time.Duration) (ringing [][]chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clock++
	var touched []*channel
	for i, m := range msgs {
		ch := h.channels[m.ChannelID]
		if ch == nil {
			continue
		}
		if n := len(ch.window); n > 0 && ch.window[n-1].Sequence+1 != m.Sequence {
			// Not contiguous (cannot happen in log order); start afresh so
			// subscribers fall back to the projection rather than skip.
			h.empty(ch)
		}
		if ch.used != h.clock {
			ch.prev, ch.used = ch.total, h.clock
		}
		ch.total += uint64(len(m.Payload))
		it := Item{Message: m, published: published, end: ch.total}
		if wires != nil && len(wires[i]) > 0 {
			it.Wire = wires[i]
		}
		ch.window = append(ch.window, it)
		ch.bytes += len(m.Payload)
		h.bytes += int64(len(m.Payload))
		// Evicted items are resliced away, not cleared: a subscriber may
		// still hold them. append copies the live ones to a new array when
		// the old one fills, and the old one is garbage once unreferenced.
		for len(ch.window) > windowMessages || (ch.bytes > windowBytes && len(ch.window) > 1) {
			h.dropOldest(ch)
		}
		if len(touched) == 0 || touched[len(touched)-1] != ch {
			touched = append(touched, ch)
		}
	}
	for _, ch := range touched {
		h.evictFor(ch)
		if h.maxBacklog > 0 {
			for s := range ch.subs {
				// Only what was published before this call counts: a
				// subscriber gets the time between two commits to take a
				// batch, however large.
				if mark := s.mark.Load(); ch.prev > mark && ch.prev-mark > uint64(h.maxBacklog) {
					s.slowOnce.Do(func() { close(s.slow) })
				}
			}
		}
		if bells := h.ringSoon(ch, published); len(bells) > 0 {
			ringing = append(ringing, bells)
		}
	}
	return ringing
}

// ringSoon returns ch's doorbells to ring now, or, within the coalescing
// interval of its last ring, schedules one ring for the interval's end
// (unless one is scheduled already) and returns nil. h.mu must be held for
// writing.
func (h *Hub) ringSoon(ch *channel, now time.Duration) []chan struct{} {
	if ch.late {
		return nil
	}
	if wait := ch.rung + h.coalesce - now; h.coalesce > 0 && ch.rung > 0 && wait > 0 {
		ch.late = true
		time.AfterFunc(wait, func() { h.ringLate(ch) })
		return nil
	}
	ch.rung = now
	return ch.bells
}

// ringLate is a deferred ring of ringSoon. It rings nothing when ch has
// lost its last subscriber since (its entry is gone or replaced).
func (h *Hub) ringLate(ch *channel) {
	h.mu.Lock()
	ch.late = false
	var bells []chan struct{}
	if h.channels[ch.id] == ch {
		ch.rung = time.Since(epoch)
		bells = ch.bells
	}
	h.mu.Unlock()
	for _, c := range bells {
		ring(c)
	}
}

// dropOldest removes ch's oldest item. h.mu must be held for writing.
func (h *Hub) dropOldest(ch *channel) {
	n := len(ch.window[0].Payload)
	ch.bytes -= n
	h.bytes -= int64(n)
	ch.window = ch.window[1:]
}

// empty drops ch's window. h.mu must be held for writing.
func (h *Hub) empty(ch *channel) {
	h.bytes -= int64(ch.bytes)
	ch.window, ch.bytes = nil, 0
}

// evictSample is how many other windows evictFor compares to find the
// least recently published one (an approximate LRU, as Redis does).
const evictSample = 8

// evictFor brings the windows within maxWindows after a Publish to keep:
// it empties the least recently published of a few sampled other windows
// at a time and, if they are all empty, trims keep's oldest items (keeping
// its newest). h.mu must be held for writing.
func (h *Hub) evictFor(keep *channel) {
	for h.maxWindows > 0 && h.bytes > h.maxWindows {
		var victim *channel
		seen := 0
		for _, ch := range h.channels { // random start: a fair sample
			if ch == keep || ch.bytes == 0 {
				continue
			}
			if victim == nil || ch.used < victim.used {
				victim = ch
			}
			if seen++; seen == evictSample {
				break
			}
		}
		if victim == nil {
			for h.bytes > h.maxWindows && len(keep.window) > 1 {
				h.dropOldest(keep)
			}
			return
		}
		h.empty(victim) // its subscribers read the projection when next woken
	}
}

// Forget drops the window of channelID and rings its subscribers, so they
// read the projection (where a redaction or deletion has taken effect)
// instead of messages the window still holds as they were. It never blocks
// on subscribers.
func (h *Hub) Forget(channelID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := h.channels[channelID]
	if ch == nil {
		return
	}
	h.empty(ch)
	for s := range ch.subs {
		ring(s.c)
	}
}

// Reset forgets every window and rings every subscription, as after a
// snapshot restore replaced the whole projection.
func (h *Hub) Reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ch := range h.channels {
		h.empty(ch)
		for s := range ch.subs {
			ring(s.c)
		}
	}
}

// Len returns the number of open subscriptions.
func (h *Hub) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, ch := range h.channels {
		n += len(ch.subs)
	}
	return n
}

func ring(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default: // already rung; the subscriber will read everything new
	}
}
