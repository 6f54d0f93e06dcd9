package torture

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftogram/raftogram/client"
)

// ProbeChannel is the channel the nemesis writes to when it measures
// recovery; it is checked like every other channel.
const ProbeChannel = "probe"

// ScratchChannel is deleted and created again now and then while writers
// send to it (Workload.writer); the checkers know its history may have
// been deleted (Final.Recreated).
const ScratchChannel = "scratch"

// Workload drives the clients: writers that also read, flooders the
// nemesis switches on, and subscribers.
type Workload struct {
	c        *Cluster
	h        *History
	channels []string
	seed     uint64
	stop     context.Context // ends when the writers stop
	stopNow  context.CancelFunc
	wg       sync.WaitGroup

	known      map[string]*atomic.Uint64 // highest sequence any client saw per channel
	knownIndex atomic.Uint64             // highest Raft index of an acknowledged write
	nextID     atomic.Int64

	flood chan struct{} // closed while a flood runs

	subs   []*Subscriber
	subCtx context.CancelFunc
	subWG  sync.WaitGroup
}

// NewWorkload prepares a workload over channels (which must exist) of the
// cluster c.
func NewWorkload(c *Cluster, h *History, channels []string, seed uint64) *Workload {
	w := &Workload{c: c, h: h, channels: channels, seed: seed, known: map[string]*atomic.Uint64{}, flood: make(chan struct{})}
	w.stop, w.stopNow = context.WithCancel(context.Background())
	for _, ch := range append([]string{ProbeChannel}, channels...) {
		w.known[ch] = new(atomic.Uint64)
	}
	return w
}

// client returns user id's Client, which stops issuing operations when
// stop ends; close it when done. A client that cannot be made (a bad
// address: never with this harness's clusters) is reported and nil.
func (w *Workload) client(id int, stop context.Context) *Client {
	return w.clientAvoiding(id, stop, nil, attemptTimeout)
}

func (w *Workload) clientAvoiding(id int, stop context.Context, avoid *Node, timeout time.Duration) *Client {
	cl, err := newClient(w.c, w.h, id, rand.New(rand.NewPCG(w.seed, uint64(id)+1)), stop, avoid, timeout)
	if err != nil {
		w.c.anomaly("client %d: %v", id, err)
		return nil
	}
	return cl
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

func (w *Workload) saw(ch string, seq uint64) { storeMax(w.known[ch], seq) }

// acked records an acknowledged write.
func (w *Workload) acked(op Op) {
	w.saw(op.Channel, op.Seq)
	storeMax(&w.knownIndex, op.Index)
}

// storeMax raises v to x unless it is higher already.
func storeMax(v *atomic.Uint64, x uint64) {
	for {
		cur := v.Load()
		if x <= cur || v.CompareAndSwap(cur, x) {
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
			if cl := w.client(i, w.stop); cl != nil {
				defer cl.Close()
				w.writer(cl, i)
			}
		}()
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.subCtx = cancel
	for i, ch := range w.channels {
		cl, err := dial(w.c, nil, attemptTimeout, nil)
		if err != nil {
			w.c.anomaly("subscriber %d: %v", i, err)
			continue
		}
		s := &Subscriber{ID: i, Channel: ch, c: w.c, cl: cl, h: w.h, rng: rand.New(rand.NewPCG(w.seed, 1000+uint64(i))), known: w.knownIndex.Load}
		w.subs = append(w.subs, s)
		w.subWG.Add(1)
		go func() {
			defer w.subWG.Done()
			defer cl.Close()
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
		if q := cl.rng.IntN(1000); q < 30 {
			// The scratch channel: mostly sends, now and then a moderator
			// deletes it (and creates it again).
			if q < 2 {
				cl.DeleteAndCreate(ScratchChannel)
			} else {
				cmid := w.cmid(cl.ID)
				cl.Send(ScratchChannel, cmid, payload(cl.rng, cmid), cl.rng.IntN(20) == 0)
			}
		} else if r := cl.rng.IntN(1000); r < 5 {
			// A moderator's redaction of a message the workload has seen.
			if k := w.known[ch].Load(); k > 0 {
				cl.Redact(ch, 1+uint64(cl.rng.IntN(int(k))))
			}
		} else if r < 55 {
			// A burst of 2-8 messages on one Publish stream.
			cmids := make([]string, 2+cl.rng.IntN(7))
			for j := range cmids {
				cmids[j] = w.cmid(cl.ID)
			}
			for _, op := range cl.Publish(ch, cmids) {
				if op.Outcome == OK {
					w.acked(op)
				}
			}
		} else if r < 700 {
			cmid := w.cmid(cl.ID)
			op := cl.Send(ch, cmid, payload(cl.rng, cmid), cl.rng.IntN(20) == 0)
			if op.Outcome == OK {
				w.acked(op)
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
	stop, stopNow := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := w.client(100+i, stop)
			if cl == nil {
				return
			}
			defer cl.Close()
			for !cl.stopped() {
				ch := w.channels[cl.rng.IntN(len(w.channels))]
				cmid := w.cmid(cl.ID)
				if op := cl.Send(ch, cmid, payload(cl.rng, cmid), false); op.Outcome == OK {
					w.acked(op)
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
	stopNow()
	wg.Wait()
	return err == nil
}

// Probe writes to the probe channel until a write succeeds or d passes
// and returns how long it took; ok is false if no write succeeded.
func (w *Workload) Probe(d time.Duration) (time.Duration, bool) {
	return w.ProbeAvoiding(nil, d)
}

// ProbeAvoiding is Probe through a client that is not given node avoid
// (when not nil) and bounds attempts to a second, so that a leader hint
// naming a paused avoid costs little.
func (w *Workload) ProbeAvoiding(avoid *Node, d time.Duration) (time.Duration, bool) {
	start := time.Now()
	stop, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	timeout := attemptTimeout
	if avoid != nil {
		timeout = time.Second
	}
	cl := w.clientAvoiding(900, stop, avoid, timeout)
	if cl == nil {
		return time.Since(start), false
	}
	defer cl.Close()
	cl.grace = 0 // the probe's deadline is d
	for {
		cmid := w.cmid(cl.ID)
		op := cl.Send(ProbeChannel, cmid, payload(cl.rng, cmid), false)
		if op.Outcome == OK {
			w.acked(op)
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
	stop, cancel := context.WithDeadline(context.Background(), until)
	defer cancel()
	w.pinned(node, n, 200, stop)
}

func (w *Workload) pinned(node *Node, n, firstID int, stop context.Context) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := w.client(firstID+i, stop)
			if cl == nil {
				return
			}
			defer cl.Close()
			for !cl.stopped() {
				ch := w.channels[cl.rng.IntN(len(w.channels))]
				k := w.known[ch].Load()
				after := uint64(0)
				if k > 5 {
					after = k - 5
				}
				if op := cl.ReadOn(node, ch, after, 1000, w.knownIndex.Load()); op.Outcome != OK {
					cl.pause(time.Duration(1+cl.rng.IntN(3)) * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
}

// ReadStorm reads from every given node with perNode clients each (ids
// from 300) until stop ends: a node that just became leader must not
// serve a read before it has applied everything the old leader
// acknowledged, nor a follower a linearizable one before it has applied
// the leader's commit index. It returns when the storm is over.
func (w *Workload) ReadStorm(nodes []*Node, perNode int, stop context.Context) {
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
	w.stopNow()
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

// CreateChannels creates the channels (and the probe channel, which never
// gets opts) with explicit ids through cl, which retries each until it
// succeeds; d bounds each channel.
func CreateChannels(ctx context.Context, cl *client.Client, channels []string, d time.Duration, opts ...client.ChannelOption) error {
	for _, ch := range append([]string{ProbeChannel}, channels...) {
		cctx, cancel := context.WithTimeout(ctx, d)
		var o []client.ChannelOption
		if ch != ProbeChannel {
			o = opts
		}
		_, err := cl.CreateChannel(cctx, ch, "torture "+ch, o...)
		cancel()
		if err != nil {
			return fmt.Errorf("create channel %s: %w", ch, err)
		}
	}
	return nil
}
