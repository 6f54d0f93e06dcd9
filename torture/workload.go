package torture

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
)

// ProbeChannel is the channel the nemesis writes to when it measures
// recovery; it is checked like every other channel.
const ProbeChannel = "probe"

// Workload drives the clients: writers that also read, flooders the
// nemesis switches on, and subscribers.
type Workload struct {
	cs       *Conns
	h        *History
	channels []string
	seed     uint64
	stop     chan struct{}
	wg       sync.WaitGroup

	known  map[string]*atomic.Uint64 // highest sequence any client saw per channel
	nextID atomic.Int64

	floodMu sync.Mutex
	flood   chan struct{} // closed while a flood runs

	subs   []*Subscriber
	subCtx context.CancelFunc
	subWG  sync.WaitGroup
}

// NewWorkload prepares a workload over channels (which must exist).
func NewWorkload(cs *Conns, h *History, channels []string, seed uint64) *Workload {
	w := &Workload{cs: cs, h: h, channels: channels, seed: seed, stop: make(chan struct{}), known: map[string]*atomic.Uint64{}, flood: make(chan struct{})}
	for _, ch := range append([]string{ProbeChannel}, channels...) {
		w.known[ch] = new(atomic.Uint64)
	}
	return w
}

func (w *Workload) client(id int) *Client {
	return &Client{ID: id, cs: w.cs, h: w.h, rng: rand.New(rand.NewPCG(w.seed, uint64(id)+1)), stop: w.stop, avoid: -1}
}

func (w *Workload) cmid(client int) string {
	return fmt.Sprintf("c%d-%d", client, w.nextID.Add(1))
}

func payload(rng *rand.Rand, cmid string) []byte {
	b := make([]byte, len(cmid)+1+rng.IntN(96))
	copy(b, cmid)
	b[len(cmid)] = '|'
	for i := len(cmid) + 1; i < len(b); i++ {
		b[i] = byte('a' + rng.IntN(26))
	}
	return b
}

func (w *Workload) saw(ch string, seq uint64) {
	k := w.known[ch]
	for {
		cur := k.Load()
		if seq <= cur || k.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// Start launches writers (client ids 0..writers-1) and subscribers (one per
// channel).
func (w *Workload) Start(writers int) {
	for i := range writers {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.writer(w.client(i), i)
		}()
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.subCtx = cancel
	for i, ch := range w.channels {
		s := &Subscriber{ID: i, Channel: ch, cs: w.cs, h: w.h, rng: rand.New(rand.NewPCG(w.seed, 1000+uint64(i)))}
		w.subs = append(w.subs, s)
		w.subWG.Add(1)
		go func() {
			defer w.subWG.Done()
			s.Run(ctx)
		}()
	}
}

// writer sends mostly, reads sometimes. Writer i favours channel i mod n,
// so every channel has several concurrent writers.
func (w *Workload) writer(cl *Client, i int) {
	for !cl.stopped() {
		ch := w.channels[i%len(w.channels)]
		if cl.rng.IntN(4) == 0 {
			ch = w.channels[cl.rng.IntN(len(w.channels))]
		}
		if cl.rng.IntN(100) < 70 {
			cmid := w.cmid(cl.ID)
			op := cl.Send(ch, cmid, payload(cl.rng, cmid), cl.rng.IntN(20) == 0)
			if op.Outcome == OK {
				w.saw(ch, op.Seq)
			}
		} else {
			k := w.known[ch].Load()
			back := uint64(cl.rng.IntN(16))
			after := uint64(0)
			if k > back {
				after = k - back
			}
			op := cl.Read(ch, after, 1000)
			if op.Outcome == OK && len(op.Msgs) > 0 {
				w.saw(ch, op.Msgs[len(op.Msgs)-1].Seq)
			}
			if op.Outcome != OK {
				cl.pause(time.Duration(10+cl.rng.IntN(50)) * time.Millisecond)
			}
		}
		cl.pause(time.Duration(cl.rng.IntN(15)) * time.Millisecond)
	}
}

// Flood runs n extra writers (client ids from 100) with no think time until
// done returns true, ctx ends or max passes. It reports whether done became
// true.
func (w *Workload) Flood(ctx context.Context, n int, max time.Duration, done func() bool) bool {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := w.client(100 + i)
			cl.stop = stop
			for !cl.stopped() {
				ch := w.channels[cl.rng.IntN(len(w.channels))]
				cmid := w.cmid(cl.ID)
				if op := cl.Send(ch, cmid, payload(cl.rng, cmid), false); op.Outcome == OK {
					w.saw(ch, op.Seq)
				}
			}
		}()
	}
	err := poll(ctx, max, func() error {
		if done() {
			return nil
		}
		return fmt.Errorf("flood goal not reached")
	})
	close(stop)
	wg.Wait()
	return err == nil
}

// Probe writes to the probe channel until a write succeeds or d passes
// and returns how long it took; ok is false if no write succeeded.
func (w *Workload) Probe(d time.Duration) (time.Duration, bool) {
	return w.ProbeAvoiding(nil, d)
}

// ProbeAvoiding is Probe without ever sending to node avoid (when not
// nil).
func (w *Workload) ProbeAvoiding(avoid *Node, d time.Duration) (time.Duration, bool) {
	start := time.Now()
	cl := w.client(900)
	if avoid != nil {
		cl.avoid = avoid.Index
	}
	stop := make(chan struct{})
	cl.stop = stop
	timer := time.AfterFunc(d, func() { close(stop) })
	defer timer.Stop()
	for {
		cmid := w.cmid(cl.ID)
		op := cl.Send(ProbeChannel, cmid, payload(cl.rng, cmid), false)
		if op.Outcome == OK {
			w.saw(ProbeChannel, op.Seq)
			return time.Since(start), true
		}
		if cl.stopped() {
			return time.Since(start), false
		}
	}
}

// PinnedReads runs n clients (ids from 200) that read from node only,
// back to back, until the time until: aimed at a deposed leader, they show
// whether it serves stale prefixes when it resumes.
func (w *Workload) PinnedReads(node *Node, n int, until time.Time) {
	stop := make(chan struct{})
	t := time.AfterFunc(time.Until(until), func() { close(stop) })
	defer t.Stop()
	w.pinned(node, n, 200, stop)
}

func (w *Workload) pinned(node *Node, n, firstID int, stop <-chan struct{}) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := w.client(firstID + i)
			cl.stop = stop
			for !cl.stopped() {
				ch := w.channels[cl.rng.IntN(len(w.channels))]
				k := w.known[ch].Load()
				after := uint64(0)
				if k > 5 {
					after = k - 5
				}
				if op := cl.readOn(node.Index, ch, after, 1000); op.Outcome != OK {
					cl.pause(time.Duration(1+cl.rng.IntN(3)) * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
}

// ReadStorm reads from every given node with perNode clients each (ids
// from 300) until stop closes: a node that just became leader must not
// serve a read before it has applied everything the old leader
// acknowledged. It returns when the storm is over.
func (w *Workload) ReadStorm(nodes []*Node, perNode int, stop <-chan struct{}) {
	var wg sync.WaitGroup
	for i, nd := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.pinned(nd, perNode, 300+10*i, stop)
		}()
	}
	wg.Wait()
}

// Stop stops the writers and waits for their operations to finish.
func (w *Workload) Stop() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.wg.Wait()
}

// Subscribers returns the subscribers.
func (w *Workload) Subscribers() []*Subscriber { return w.subs }

// StopSubscribers ends every subscription.
func (w *Workload) StopSubscribers() {
	if w.subCtx != nil {
		w.subCtx()
	}
	w.subWG.Wait()
}

// CreateChannels creates the channels (and the probe channel) with
// explicit ids, retrying until each call succeeds or d passes.
func CreateChannels(ctx context.Context, cs *Conns, channels []string, d time.Duration) error {
	for _, ch := range append([]string{ProbeChannel}, channels...) {
		err := poll(ctx, d, func() error {
			i := cs.pick()
			cctx, cancel := context.WithTimeout(ctx, attemptTimeout)
			defer cancel()
			_, err := cs.clients[i].CreateChannel(cctx, &raftogramv1.CreateChannelRequest{ChannelId: ch, Name: "torture " + ch})
			if err != nil {
				cls := classify(err)
				cs.follow(i, cls.leader)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("create channel %s: %w", ch, err)
		}
	}
	return nil
}
