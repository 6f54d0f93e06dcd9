package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/raftogram/raftogram/client"
)

// pendingPublish is a message of the publish workload awaiting its
// acknowledgement.
type pendingPublish struct {
	f        *client.PublishFuture
	ch       *channelState
	t0       time.Time // the op's start (its scheduled start under -rate)
	began    time.Time // when PublishAsync was called
	measured bool
}

// publisher is one client of the publish workload: it publishes through
// its own client.Publisher (one Publish stream, cfg.Inflight messages in
// flight) to random channels until stop, and records each message from
// its PublishAsync to its acknowledgement. Acknowledgements are taken in
// publish order, so a message acknowledged before an earlier one is timed
// when that one is (an upper bound on its latency).
func (r *runner) publisher(stop, hard context.Context, w int, lim *Limiter, st *workerStats) {
	cfg := r.cfg
	rng := rand.New(rand.NewPCG(uint64(w)+1, uint64(time.Now().UnixNano())))
	author := fmt.Sprintf("bench-%d", w)
	p := r.client.NewPublisher(client.PublisherOptions{MaxPending: cfg.Inflight})
	defer p.Close()
	q := make(chan pendingPublish, cfg.Inflight)
	acks := make(chan struct{})
	go func() { // owned by this worker: it ends once q is closed and drained
		defer close(acks)
		for pd := range q {
			r.awaitPublish(hard, pd, st)
		}
	}()
	defer func() { close(q); <-acks }()
	var seq int64
	for stop.Err() == nil {
		at, err := lim.Wait(stop)
		if err != nil {
			return
		}
		began := time.Now()
		t0 := began
		if lim != nil {
			t0 = at
		}
		measured := !t0.Before(r.measureFrom)
		if measured {
			if cfg.N > 0 {
				if r.remaining.Add(-1) < 0 {
					return
				}
			} else if !t0.Before(r.measureUntil) {
				return
			}
		}
		seq++
		buf := append([]byte(nil), r.template...) // the Publisher holds it until acknowledged
		putStamp(buf, stampFor(measured))
		ch := r.channels[rng.IntN(len(r.channels))]
		f, err := p.PublishAsync(hard, client.SendRequest{ChannelID: ch.id, AuthorID: author, Payload: buf,
			ClientMessageID: fmt.Sprintf("%s-%d-%d", r.runTag, w, seq)})
		if err != nil {
			r.done.Add(1)
			r.failed.Add(1)
			r.opFailed(hard, hard, err)
			if measured {
				st.errors++
			} else {
				st.warmupOps++
			}
			continue
		}
		q <- pendingPublish{f: f, ch: ch, t0: t0, began: began, measured: measured}
	}
}

// awaitPublish waits for one message's outcome (at most OpTimeout from its
// publish) and records it as worker records an op.
func (r *runner) awaitPublish(hard context.Context, pd pendingPublish, st *workerStats) {
	octx, cancel := context.WithDeadline(hard, pd.began.Add(r.cfg.OpTimeout))
	res, err := pd.f.Wait(octx)
	cancel()
	t1 := time.Now()
	r.done.Add(1)
	if err != nil {
		r.failed.Add(1)
		r.opFailed(hard, octx, err)
	} else {
		r.acked(pd.ch, res.Sequence, res.Index)
	}
	if !pd.measured {
		st.warmupOps++
		return
	}
	if st.firstStart.IsZero() {
		st.firstStart = pd.t0
	}
	st.lastEnd = t1
	if err != nil {
		st.errors++
		return
	}
	st.hist[opSend].Record(t1.Sub(pd.t0))
	if r.cfg.Rate > 0 {
		st.service.Record(t1.Sub(pd.began))
	}
	st.ops[opSend]++
	if res.Deduplicated {
		st.dups++
	}
}
