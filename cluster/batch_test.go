package cluster

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/raftogram/raftogram/domain"
)

// fakeEntry is one raft.Apply call of the batcher under test: the events it
// carried and the test's answer (nil error: committed).
type fakeEntry struct {
	events []domain.Event
	answer chan fakeAnswer
}

type fakeAnswer struct {
	err     error
	results []domain.Result // nil: one result per event, Sequence = 1000 + position
}

// commit answers the entry as committed.
func (e *fakeEntry) commit() { e.answer <- fakeAnswer{} }

// fakeFuture is the raft.ApplyFuture of a fakeEntry.
type fakeFuture struct {
	r     *fakeRaft
	entry *fakeEntry
	once  sync.Once
	err   error
	resp  any
}

func (f *fakeFuture) Error() error {
	f.once.Do(func() {
		a := <-f.entry.answer
		f.r.mu.Lock()
		f.r.inflight--
		f.r.mu.Unlock()
		f.err = a.err
		if a.err != nil {
			return
		}
		rs := a.results
		if rs == nil {
			rs = make([]domain.Result, len(f.entry.events))
			for i := range rs {
				rs[i] = domain.Result{Index: 7, Sequence: 1000 + uint64(i)}
			}
		}
		f.resp = rs
	})
	return f.err
}

func (f *fakeFuture) Index() uint64 { return 7 }
func (f *fakeFuture) Response() any { return f.resp }

// fakeRaft stands for *raft.Raft: every Apply becomes a fakeEntry on
// entries, answered when the test says; refuse (when set) answers at once.
type fakeRaft struct {
	t       *testing.T
	entries chan *fakeEntry

	mu          sync.Mutex
	inflight    int
	maxInflight int
	refuse      error
}

func (r *fakeRaft) Apply(cmd []byte, timeout time.Duration) raft.ApplyFuture {
	events, err := domain.DecodeEvents(cmd)
	if err != nil {
		r.t.Errorf("batcher wrote an entry that does not decode: %v", err)
	}
	e := &fakeEntry{events: events, answer: make(chan fakeAnswer, 1)}
	r.mu.Lock()
	r.inflight++
	r.maxInflight = max(r.maxInflight, r.inflight)
	if r.refuse != nil {
		e.answer <- fakeAnswer{err: r.refuse}
	}
	r.mu.Unlock()
	r.entries <- e
	return &fakeFuture{r: r, entry: e}
}

// testLeader is the leader a not-leader answer names in these tests.
var testLeader = domain.NotLeaderError{LeaderID: "node2", LeaderGRPCAddr: "127.0.0.1:9002"}

// batcherRig runs a batcher over a fakeRaft.
type batcherRig struct {
	t         *testing.T
	raft      *fakeRaft
	proposals chan *proposal
	stop      chan struct{}
	done      chan struct{} // closed when run returned
	wg        sync.WaitGroup
	stopOnce  sync.Once
}

// newBatcherRig returns a rig whose batcher is not started yet, so
// proposals queued first are there when it starts.
func newBatcherRig(t *testing.T) *batcherRig {
	r := &batcherRig{
		t:         t,
		raft:      &fakeRaft{t: t, entries: make(chan *fakeEntry, 64)},
		proposals: make(chan *proposal, maxBatchEvents),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	t.Cleanup(func() {
		r.shutdown()
		// Commit whatever is still waiting so every commit goroutine ends.
		for {
			select {
			case e := <-r.raft.entries:
				select {
				case e.answer <- fakeAnswer{}:
				default: // answered already
				}
			case <-waitGroupDone(&r.wg):
				return
			}
		}
	})
	return r
}

func waitGroupDone(wg *sync.WaitGroup) <-chan struct{} {
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	return ch
}

func (r *batcherRig) start() {
	b := batcher{
		proposals: r.proposals, stop: r.stop, raft: r.raft, timeout: time.Second,
		mapErr: func(err error) error {
			return mapRaftError("write", err, func() *domain.NotLeaderError { nl := testLeader; return &nl })
		},
		wg: &r.wg,
	}
	go func() {
		defer close(r.done)
		b.run()
	}()
}

func (r *batcherRig) shutdown() {
	r.stopOnce.Do(func() { close(r.stop) })
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		r.t.Fatal("batcher did not return after stop")
	}
}

// propose queues a proposal of n channel creations named prefix-0...
func (r *batcherRig) propose(prefix string, n int) *proposal {
	events := make([]domain.Event, n)
	for i := range events {
		id := fmt.Sprintf("%s-%d", prefix, i)
		events[i] = domain.ChannelCreated{ChannelID: id, Name: id}
	}
	p := newProposal(events)
	r.proposals <- p
	return p
}

// nextEntry waits for the batcher's next raft.Apply.
func (r *batcherRig) nextEntry() *fakeEntry {
	r.t.Helper()
	select {
	case e := <-r.raft.entries:
		return e
	case <-time.After(10 * time.Second):
		r.t.Fatal("no raft.Apply within 10s")
		return nil
	}
}

// queueTaken waits until the batcher has taken every queued proposal.
func (r *batcherRig) queueTaken() {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(r.proposals) > 0 {
		if time.Now().After(deadline) {
			r.t.Fatalf("%d proposals still queued after 10s", len(r.proposals))
		}
		time.Sleep(time.Millisecond)
	}
}

// result waits for p's answer.
func result(t *testing.T, p *proposal) proposalResult {
	t.Helper()
	select {
	case res := <-p.done:
		return res
	case <-time.After(10 * time.Second):
		t.Fatal("proposal not answered within 10s")
		return proposalResult{}
	}
}

// ids returns the channel ids of an entry's events.
func ids(events []domain.Event) string {
	var out []string
	for _, ev := range events {
		out = append(out, ev.(domain.ChannelCreated).ChannelID)
	}
	return strings.Join(out, " ")
}

// Proposals queued together become one entry, in queue order, and each
// caller gets exactly its own events' results.
func TestBatcherCoalescesQueuedProposals(t *testing.T) {
	r := newBatcherRig(t)
	a, b, c := r.propose("a", 1), r.propose("b", 3), r.propose("c", 2)
	r.start()
	e := r.nextEntry()
	if got, want := ids(e.events), "a-0 b-0 b-1 b-2 c-0 c-1"; got != want {
		t.Fatalf("entry holds %q, want %q", got, want)
	}
	e.commit()
	for _, tc := range []struct {
		p     *proposal
		first uint64
		n     int
	}{{a, 1000, 1}, {b, 1001, 3}, {c, 1004, 2}} {
		res := result(t, tc.p)
		if res.err != nil || len(res.results) != tc.n {
			t.Fatalf("proposal of %d events: %d results, %v", tc.n, len(res.results), res.err)
		}
		for i, rs := range res.results {
			if rs.Sequence != tc.first+uint64(i) || rs.Index != 7 {
				t.Fatalf("proposal of %d events: result %d = %+v, want sequence %d at index 7", tc.n, i, rs, tc.first+uint64(i))
			}
		}
		if cap(res.results) != tc.n {
			t.Fatalf("result slice has capacity %d: an append would overwrite the next caller's results", cap(res.results))
		}
	}
	// A lone writer afterwards is not held back: its entry goes at once.
	d := r.propose("d", 1)
	r.nextEntry().commit()
	if res := result(t, d); res.err != nil || len(res.results) != 1 {
		t.Fatalf("lone proposal: %+v", res)
	}
}

// At most maxInflightEntries entries are in raft at once; what arrives
// meanwhile waits and becomes the next entry together.
func TestBatcherKeepsTheInflightLimit(t *testing.T) {
	if maxInflightEntries != 2 {
		t.Fatalf("test written for 2 entries in flight, batch.go has %d", maxInflightEntries)
	}
	r := newBatcherRig(t)
	r.start()
	p1 := r.propose("p1", 1)
	e1 := r.nextEntry()
	p2 := r.propose("p2", 1)
	e2 := r.nextEntry()
	p3, p4, p5 := r.propose("p3", 1), r.propose("p4", 1), r.propose("p5", 1)
	r.queueTaken() // the batcher holds p3..p5 while it waits for a slot
	select {
	case e := <-r.raft.entries:
		t.Fatalf("a third entry (%s) went to raft with two in flight", ids(e.events))
	default:
	}
	e2.commit()
	e3 := r.nextEntry()
	if got := ids(e3.events); got != "p3-0 p4-0 p5-0" {
		t.Fatalf("entry after a slot freed holds %q, want the three waiting proposals", got)
	}
	e1.commit()
	e3.commit()
	for _, p := range []*proposal{p1, p2, p3, p4, p5} {
		if res := result(t, p); res.err != nil {
			t.Fatal(res.err)
		}
	}
	r.raft.mu.Lock()
	defer r.raft.mu.Unlock()
	if r.raft.maxInflight != maxInflightEntries {
		t.Fatalf("at most %d entries were in flight, want %d", r.raft.maxInflight, maxInflightEntries)
	}
}

// A proposal that reaches the event cap does not wait for more company: the
// batch is full and goes as soon as a slot frees.
func TestBatcherStopsGatheringAtTheEventCap(t *testing.T) {
	r := newBatcherRig(t)
	r.start()
	r.propose("x", 1)
	e1 := r.nextEntry()
	r.propose("y", 1)
	e2 := r.nextEntry()
	r.propose("big", maxBatchEvents)
	r.queueTaken() // the batcher holds the full batch and reads no further
	r.propose("after", 1)
	e1.commit()
	if e := r.nextEntry(); len(e.events) != maxBatchEvents {
		t.Fatalf("entry of %d events, want the full proposal alone (%d)", len(e.events), maxBatchEvents)
	} else {
		e.commit()
	}
	e2.commit()
	if e := r.nextEntry(); ids(e.events) != "after-0" {
		t.Fatalf("next entry %q, want after-0", ids(e.events))
	} else {
		e.commit()
	}
}

// A failed entry fails every proposal in it, with the mapped error, and the
// batcher goes on with the next.
func TestBatcherFailsEveryProposalOfAFailedEntry(t *testing.T) {
	for _, tc := range []struct {
		name    string
		answer  fakeAnswer
		code    string
		message string
	}{
		{"enqueue timeout", fakeAnswer{err: raft.ErrEnqueueTimeout}, domain.EUNAVAILABLE, "write not accepted: the leader is overloaded; retry"},
		{"leadership lost", fakeAnswer{err: raft.ErrLeadershipLost}, domain.EUNAVAILABLE, "write outcome unknown"},
		{"unexpected raft error", fakeAnswer{err: errors.New("disk on fire")}, domain.EINTERNAL, "disk on fire"},
		{"too few results", fakeAnswer{results: []domain.Result{{}}}, domain.EINTERNAL, "1 results for 3 events"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newBatcherRig(t)
			a, b := r.propose("a", 1), r.propose("b", 2)
			r.start()
			r.nextEntry().answer <- tc.answer
			for _, p := range []*proposal{a, b} {
				res := result(t, p)
				if res.results != nil || domain.ErrorCode(res.err) != tc.code || !strings.Contains(res.err.Error(), tc.message) {
					t.Fatalf("proposal of a failed entry: %v (%s), %d results; want %s %q", res.err, domain.ErrorCode(res.err), len(res.results), tc.code, tc.message)
				}
			}
			c := r.propose("c", 1)
			r.nextEntry().commit()
			if res := result(t, c); res.err != nil || len(res.results) != 1 {
				t.Fatalf("proposal after the failure: %+v", res)
			}
		})
	}
}

// When leadership is lost with entries in flight and more waiting: the
// in-flight ones may still commit, so their callers hear "outcome unknown"
// (retry with the same id), never "not leader"; the waiting ones reach raft
// after it stepped down, so they hear "not leader" with the new leader.
func TestBatcherLeaderLossMidBatch(t *testing.T) {
	r := newBatcherRig(t)
	r.start()
	p1 := r.propose("p1", 1)
	e1 := r.nextEntry()
	p2 := r.propose("p2", 1)
	e2 := r.nextEntry()
	p3, p4 := r.propose("p3", 1), r.propose("p4", 1)
	r.queueTaken()

	r.raft.mu.Lock()
	r.raft.refuse = raft.ErrNotLeader // raft stepped down: new entries are refused
	r.raft.mu.Unlock()
	e1.answer <- fakeAnswer{err: raft.ErrLeadershipLost}
	e2.answer <- fakeAnswer{err: raft.ErrLeadershipLost}

	for _, p := range []*proposal{p1, p2} {
		res := result(t, p)
		var nl *domain.NotLeaderError
		if errors.As(res.err, &nl) || domain.ErrorCode(res.err) != domain.EUNAVAILABLE || !strings.Contains(res.err.Error(), "outcome unknown") {
			t.Fatalf("in-flight proposal on leader loss: %v; want EUNAVAILABLE outcome unknown", res.err)
		}
	}
	if e := r.nextEntry(); ids(e.events) != "p3-0 p4-0" {
		t.Fatalf("waiting proposals went to raft as %q, want one entry p3-0 p4-0", ids(e.events))
	}
	for _, p := range []*proposal{p3, p4} {
		res := result(t, p)
		var nl *domain.NotLeaderError
		if !errors.As(res.err, &nl) || *nl != testLeader {
			t.Fatalf("waiting proposal after leader loss: %v; want not leader naming %+v", res.err, testLeader)
		}
	}
}

// Stopping fails the batch waiting for a slot and everything queued with
// the shutdown error; entries already in raft are still answered by raft.
func TestBatcherStopFailsWaitingProposals(t *testing.T) {
	r := newBatcherRig(t)
	r.start()
	p1 := r.propose("p1", 1)
	e1 := r.nextEntry()
	p2 := r.propose("p2", 1)
	e2 := r.nextEntry()
	p3 := r.propose("p3", 1)
	r.queueTaken()
	r.shutdown()
	res := result(t, p3)
	if domain.ErrorCode(res.err) != domain.EUNAVAILABLE || !strings.Contains(res.err.Error(), raft.ErrRaftShutdown.Error()) {
		t.Fatalf("proposal waiting at stop: %v; want EUNAVAILABLE naming %v", res.err, raft.ErrRaftShutdown)
	}
	e1.commit()
	e2.answer <- fakeAnswer{err: raft.ErrRaftShutdown}
	if res := result(t, p1); res.err != nil {
		t.Fatalf("in-flight entry committed after stop: %v", res.err)
	}
	if res := result(t, p2); domain.ErrorCode(res.err) != domain.EUNAVAILABLE {
		t.Fatalf("in-flight entry cut by the shutdown: %v; want EUNAVAILABLE", res.err)
	}
}
