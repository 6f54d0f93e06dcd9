package cluster

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftogram/raftogram/domain"
	"github.com/raftogram/raftogram/fanout"
	"github.com/raftogram/raftogram/fsm"
	"github.com/raftogram/raftogram/projection"
)

// Regression for stale reads after a freeze (torture: pause-leader): a
// leader resumed after SIGSTOP could pass VerifyLeader on heartbeat
// responses to requests sent before the freeze. After a stall, a read must
// commit a fresh barrier entry first.
func TestReadAfterStallReprovesLeadershipWithABarrier(t *testing.T) {
	ctx := context.Background()
	n, _ := openSingleNode(t)
	if err := n.ReadBarrier(ctx); err != nil {
		t.Fatal(err)
	}
	before := n.raft.LastIndex()
	if err := n.ReadBarrier(ctx); err != nil {
		t.Fatal(err)
	}
	if got := n.raft.LastIndex(); got != before {
		t.Fatalf("a read without a stall wrote %d entries", got-before)
	}
	// Freeze: the watcher's last tick is far in the past, as right after SIGCONT.
	n.lastTick.Store(time.Now().Add(-time.Second).UnixNano())
	if err := n.ReadBarrier(ctx); err != nil {
		t.Fatal(err)
	}
	if got := n.raft.LastIndex(); got != before+1 {
		t.Fatalf("read after a stall: log grew by %d entries, want one barrier", got-before)
	}
}

// Concurrent reads share confirmation rounds, and each still sees every
// write acknowledged before it began (the store defers its commits, so the
// barrier must also have made them readable).
func TestConcurrentReadsShareRoundsAndSeeEarlierWrites(t *testing.T) {
	ctx := context.Background()
	n, store := openSingleNode(t)
	const workers, rounds = 32, 20
	errs := make(chan error, workers)
	var reads atomic.Uint64
	for w := 0; w < workers; w++ {
		go func() {
			for i := 0; i < rounds; i++ {
				id := fmt.Sprintf("w%d-%d", w, i)
				if _, err := n.Apply(ctx, []domain.Event{domain.ChannelCreated{ChannelID: id, Name: id}}); err != nil {
					errs <- err
					return
				}
				if err := n.ReadBarrier(ctx); err != nil {
					errs <- err
					return
				}
				reads.Add(1)
				if _, err := store.Channel(ctx, id); err != nil {
					errs <- fmt.Errorf("read after acknowledged write of %s: %w", id, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for w := 0; w < workers; w++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if r := n.readRounds.Load(); r >= reads.Load() {
		t.Fatalf("%d reads took %d confirmation rounds; concurrent reads should share them", reads.Load(), r)
	}
}

// openSingleNode starts a one-node cluster whose projection defers commits,
// and waits until it leads.
func openSingleNode(t *testing.T) (*Node, *projection.Store) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	store, err := projection.Open(ctx, filepath.Join(dir, projection.FileName), projection.Options{CommitDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	f, err := fsm.New(store, fanout.New(nil), filepath.Join(dir, "tmp"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n, err := Open(ctx, Config{
		NodeID: "node1", Peers: []Peer{{ID: "node1", RaftAddr: ln.Addr().String(), GRPCAddr: "127.0.0.1:1"}},
		DataDir: dir, Listener: ln,
		HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond,
		LeaderLeaseTimeout: 100 * time.Millisecond, CommitTimeout: 10 * time.Millisecond,
		MaxAppendEntries: 64, SnapshotThreshold: 1024, SnapshotInterval: time.Minute, TrailingLogs: 1024,
		ApplyTimeout: 5 * time.Second,
	}, f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(ctx) })
	// Leading, and past the barrier a new leader commits when it takes
	// office (observe), which would otherwise race with the test's entries.
	deadline := time.Now().Add(10 * time.Second)
	for !n.Status().IsLeader || n.readyTerm.Load() != n.Term() {
		if time.Now().After(deadline) {
			t.Fatalf("not a ready leader within 10s: %+v, ready term %d", n.Status(), n.readyTerm.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return n, store
}

// ReadIndex answers an index the state machine reaches: the last write's
// entry, never a later barrier or no-op entry (a follower's applied index
// would never reach those).
func TestReadIndexIsTheLastStateMachineEntry(t *testing.T) {
	ctx := context.Background()
	n, _ := openSingleNode(t)
	rs, err := n.Apply(ctx, []domain.Event{domain.ChannelCreated{ChannelID: "c", Name: "c"}})
	if err != nil {
		t.Fatal(err)
	}
	// A read after a stall commits a barrier entry after the write (set
	// what the stall watcher sets on a stall; TestReadAfterStall... covers
	// the watcher).
	n.readyTerm.Store(0)
	idx, term, err := n.ReadIndex(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if idx != rs[0].Index || term != n.Term() {
		t.Fatalf("ReadIndex = %d (term %d), want the write's %d (term %d); log ends at %d", idx, term, rs[0].Index, n.Term(), n.raft.LastIndex())
	}
	if n.raft.LastIndex() <= idx {
		t.Fatalf("no barrier entry after the write (log ends at %d)", n.raft.LastIndex())
	}
	if err := n.WaitApplied(ctx, idx); err != nil || n.AppliedIndex() < idx {
		t.Fatalf("WaitApplied(%d) = %v, applied %d", idx, err, n.AppliedIndex())
	}
}

func TestTransferLeadershipToRefusesUnknownNodes(t *testing.T) {
	n, _ := openSingleNode(t)
	if err := n.TransferLeadershipTo("nobody"); domain.ErrorCode(err) != domain.EINVALID {
		t.Fatalf("unknown node: %v", err)
	}
	if err := n.TransferLeadershipTo("node1"); err != nil {
		t.Fatalf("to itself while leading: %v", err)
	}
	if !n.LastLeaderContact().After(time.Now().Add(-time.Second)) {
		t.Fatalf("leader: last contact %v, want about now", n.LastLeaderContact())
	}
	// A new leader's commit index is 0 until its first entry commits.
	deadline := time.Now().Add(10 * time.Second)
	for n.LeaderCommitIndex() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("leader: commit index still 0")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
