package cluster

import (
	"fmt"

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
}

// EntriesInFlight returns how many group-commit entries this node has in
// raft now (proposed, not yet committed and applied).
func (n *Node) EntriesInFlight() int { return int(n.inflight.Load()) }

// proposal is one Apply call waiting for its results.
type proposal struct {
	events []domain.Event
	bytes  int
	done   chan proposalResult // buffered, receives exactly once
}

type proposalResult struct {
	results []domain.Result
	err     error
}

func newProposal(events []domain.Event) *proposal {
	p := &proposal{events: events, done: make(chan proposalResult, 1)}
	for _, ev := range events {
		if m, ok := ev.(domain.MessageSent); ok {
			p.bytes += len(m.Payload)
		}
	}
	return p
}

// runBatcher owns the proposal queue until n.stop closes; then it fails
// whatever is still queued.
func (n *Node) runBatcher() {
	defer n.wg.Done()
	defer close(n.batcherDone)
	slots := make(chan struct{}, maxInflightEntries)
	for {
		var batch []*proposal
		select {
		case p := <-n.proposals:
			batch = append(batch, p)
		case <-n.stop:
			n.failQueued()
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
				case <-n.stop:
					n.fail(batch, n.raftError("write", errShutdown))
					n.failQueued()
					return
				}
				continue
			}
			select {
			case slots <- struct{}{}:
				acquired = true
			case p := <-n.proposals:
				batch = append(batch, p)
				events += len(p.events)
				size += p.bytes
			case <-n.stop:
				n.fail(batch, n.raftError("write", errShutdown))
				n.failQueued()
				return
			}
		}
		// Take what else is queued right now.
		for drained := false; !drained && !full(); {
			select {
			case p := <-n.proposals:
				batch = append(batch, p)
				events += len(p.events)
				size += p.bytes
			default:
				drained = true
			}
		}
		n.wg.Add(1)
		n.inflight.Add(1)
		if n.cfg.Observer != nil {
			n.cfg.Observer.ObserveEntryEvents(events)
		}
		go func() {
			defer n.wg.Done()
			defer func() { <-slots }()
			defer n.inflight.Add(-1)
			n.commit(batch, events)
		}()
	}
}

// commit writes the proposals' events as one entry and hands each proposal
// its slice of the results.
func (n *Node) commit(batch []*proposal, count int) {
	all := make([]domain.Event, 0, count)
	for _, p := range batch {
		all = append(all, p.events...)
	}
	data, err := domain.EncodeEvents(all)
	if err != nil {
		n.fail(batch, fmt.Errorf("cluster apply: %w", err))
		return
	}
	f := n.raft.Apply(data, n.cfg.ApplyTimeout)
	if err := f.Error(); err != nil {
		n.fail(batch, n.raftError("write", err))
		return
	}
	rs, ok := f.Response().([]domain.Result)
	if !ok || len(rs) != len(all) {
		n.fail(batch, fmt.Errorf("cluster apply: state machine answered %T with %d results for %d events", f.Response(), len(rs), len(all)))
		return
	}
	for _, p := range batch {
		p.done <- proposalResult{results: rs[:len(p.events):len(p.events)]}
		rs = rs[len(p.events):]
	}
}

func (n *Node) fail(batch []*proposal, err error) {
	for _, p := range batch {
		p.done <- proposalResult{err: err}
	}
}

func (n *Node) failQueued() {
	for {
		select {
		case p := <-n.proposals:
			n.fail([]*proposal{p}, n.raftError("write", errShutdown))
		default:
			return
		}
	}
}
