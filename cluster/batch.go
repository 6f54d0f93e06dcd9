package cluster

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/raftogram/raftogram/domain"
)

// Group commit. Concurrent Apply calls are coalesced into one log entry
// carrying all their events, so a burst of N writes costs one raft entry,
// one log append and one projection transaction on every node instead of N.
// At most maxInflightEntries entries are in raft at once; while they are,
// new calls queue and become the next entry. A lone writer therefore sees no
// extra delay, and a crowd fills large entries.
const (
	maxInflightEntries = 2
	maxBatchEvents     = 1024
	maxBatchBytes      = 4 << 20 // payload bytes; a larger single event goes alone
)

// Observer receives group-commit measurements (a *metrics.Metrics). Its
// methods must be cheap and safe for concurrent use.
type Observer interface {
	// ObserveEntryEvents records an entry proposed with n events.
	ObserveEntryEvents(n int)
	// ObserveWriteStage records that a write spent d in stage (one of
	// WriteStages).
	ObserveWriteStage(stage string, d time.Duration)
}

// EntriesInFlight returns how many group-commit entries this node has in
// raft now (proposed, not yet committed and applied).
func (n *Node) EntriesInFlight() int { return int(n.inflight.Load()) }

// proposal is one Apply call waiting for its results.
type proposal struct {
	events []domain.Event
	bytes  int
	queued time.Time           // when Apply queued it
	done   chan proposalResult // buffered, receives exactly once
}

type proposalResult struct {
	results []domain.Result
	err     error
}

func newProposal(events []domain.Event) *proposal {
	p := &proposal{events: events, queued: time.Now(), done: make(chan proposalResult, 1)}
	for _, ev := range events {
		if m, ok := ev.(domain.MessageSent); ok {
			p.bytes += len(m.Payload)
		}
	}
	return p
}

// raftApplier is the part of *raft.Raft the batcher writes through.
type raftApplier interface {
	Apply(cmd []byte, timeout time.Duration) raft.ApplyFuture
}

// batcher turns queued proposals into log entries: it coalesces whatever is
// queued while it waits for one of maxInflightEntries slots, and commits
// each entry on its own goroutine.
type batcher struct {
	proposals <-chan *proposal
	stop      <-chan struct{}
	raft      raftApplier
	timeout   time.Duration     // raft.Apply's enqueue timeout
	mapErr    func(error) error // a raft future's error, or errShutdown, to the caller's error
	wg        *sync.WaitGroup   // counts the commit goroutines
	inflight  *atomic.Int64     // entries in raft, for metrics (nil: not counted)
	observer  Observer          // group-commit measurements (nil: none)
}

// runBatcher owns n's proposal queue until n.stop closes; then it fails
// whatever is still queued.
func (n *Node) runBatcher() {
	defer n.wg.Done()
	defer close(n.batcherDone)
	b := batcher{
		proposals: n.proposals, stop: n.stop, raft: n.raft, timeout: n.cfg.ApplyTimeout,
		mapErr: func(err error) error { return n.raftError("write", err) },
		wg:     &n.wg, inflight: &n.inflight, observer: n.cfg.Observer,
	}
	b.run()
}

// run batches proposals until b.stop closes, then fails the batch it holds
// and whatever is still queued, and returns. Commits it started may still
// run; b.wg counts them.
func (b *batcher) run() {
	slots := make(chan struct{}, maxInflightEntries)
	for {
		var batch []*proposal
		select {
		case p := <-b.proposals:
			batch = append(batch, p)
		case <-b.stop:
			b.failQueued()
			return
		}
		events, size := len(batch[0].events), batch[0].bytes
		full := func() bool { return events >= maxBatchEvents || size >= maxBatchBytes }
		// Wait for a free slot, gathering the proposals that arrive meanwhile.
		for acquired := false; !acquired; {
			if full() {
				select {
				case slots <- struct{}{}:
					acquired = true
				case <-b.stop:
					fail(batch, b.mapErr(errShutdown))
					b.failQueued()
					return
				}
				continue
			}
			select {
			case slots <- struct{}{}:
				acquired = true
			case p := <-b.proposals:
				batch = append(batch, p)
				events += len(p.events)
				size += p.bytes
			case <-b.stop:
				fail(batch, b.mapErr(errShutdown))
				b.failQueued()
				return
			}
		}
		// Take what else is queued right now.
		for drained := false; !drained && !full(); {
			select {
			case p := <-b.proposals:
				batch = append(batch, p)
				events += len(p.events)
				size += p.bytes
			default:
				drained = true
			}
		}
		b.wg.Add(1)
		if b.inflight != nil {
			b.inflight.Add(1)
		}
		if b.observer != nil {
			b.observer.ObserveEntryEvents(events)
		}
		go func() {
			defer b.wg.Done()
			defer func() { <-slots }()
			if b.inflight != nil {
				defer b.inflight.Add(-1)
			}
			b.commit(batch, events)
		}()
	}
}

// commit writes the proposals' events as one entry and hands each proposal
// its slice of the results.
func (b *batcher) commit(batch []*proposal, count int) {
	all := make([]domain.Event, 0, count)
	for _, p := range batch {
		all = append(all, p.events...)
	}
	data, err := domain.EncodeEvents(all)
	if err != nil {
		fail(batch, fmt.Errorf("cluster apply: %w", err))
		return
	}
	proposed := time.Now()
	f := b.raft.Apply(data, b.timeout)
	if err := f.Error(); err != nil {
		fail(batch, b.mapErr(err))
		return
	}
	if b.observer != nil {
		inRaft := time.Since(proposed)
		for _, p := range batch {
			b.observer.ObserveWriteStage(StageQueue, proposed.Sub(p.queued))
			b.observer.ObserveWriteStage(StageRaft, inRaft)
		}
	}
	rs, ok := f.Response().([]domain.Result)
	if !ok || len(rs) != len(all) {
		fail(batch, fmt.Errorf("cluster apply: state machine answered %T with %d results for %d events", f.Response(), len(rs), len(all)))
		return
	}
	for _, p := range batch {
		p.done <- proposalResult{results: rs[:len(p.events):len(p.events)]}
		rs = rs[len(p.events):]
	}
}

// fail answers every proposal of batch with err.
func fail(batch []*proposal, err error) {
	for _, p := range batch {
		p.done <- proposalResult{err: err}
	}
}

// failQueued answers every proposal still queued with the shutdown error.
func (b *batcher) failQueued() {
	for {
		select {
		case p := <-b.proposals:
			fail([]*proposal{p}, b.mapErr(errShutdown))
		default:
			return
		}
	}
}
