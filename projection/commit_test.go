package projection

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/raftogram/raftogram/domain"
)

// openDeferred opens a store at path whose commits wait for delay (or for a
// Flush).
func openDeferred(tb testing.TB, path string, delay time.Duration) *Store {
	tb.Helper()
	s, err := Open(context.Background(), path, Options{CommitDelay: delay})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func historyLen(tb testing.TB, s *Store, ch string) int {
	tb.Helper()
	msgs, _, err := s.History(context.Background(), ch, 0, 1000, 0)
	if err != nil {
		tb.Fatalf("History(%s) = %v", ch, err)
	}
	return len(msgs)
}

// crash drops the open transaction and the connections without committing,
// as a killed process would.
func crash(s *Store) {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.flusherDone
	<-s.ckDone
	s.wmu.Lock()
	if s.pend != nil {
		s.pend.tx.Rollback()
		s.pend = nil
	}
	s.wmu.Unlock()
	s.mu.Lock()
	s.closeLocked()
	s.mu.Unlock()
}

func TestDeferredCommitIsVisibleAfterFlush(t *testing.T) {
	s := openDeferred(t, filepath.Join(t.TempDir(), FileName), time.Hour)
	defer s.Close()
	rs := mustApply(t, s, create(1, "c", "C"), send(2, "c", "m1"), send(3, "c", "m2"))
	if rs[2][0].Sequence != 2 {
		t.Fatalf("second message got sequence %d before any commit, want 2", rs[2][0].Sequence)
	}
	if s.AppliedIndex() != 3 || s.CommittedIndex() != 0 {
		t.Fatalf("applied %d committed %d, want 3 and 0 before a flush", s.AppliedIndex(), s.CommittedIndex())
	}
	if _, err := s.Channel(context.Background(), "c"); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatalf("uncommitted channel visible to readers: %v", err)
	}
	// Later batches join the open transaction and see its writes.
	if rs := mustApply(t, s, send(4, "c", "m1"), send(5, "c", "m3")); !rs[0][0].Deduplicated || rs[0][0].Sequence != 1 || rs[1][0].Sequence != 3 {
		t.Fatalf("batch in the same open transaction: %+v", rs)
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.CommittedIndex() != 5 || historyLen(t, s, "c") != 3 {
		t.Fatalf("after Flush: committed %d, %d messages; want 5 and 3", s.CommittedIndex(), historyLen(t, s, "c"))
	}
}

func TestFlusherCommitsAfterTheDelay(t *testing.T) {
	s := openDeferred(t, filepath.Join(t.TempDir(), FileName), 5*time.Millisecond)
	defer s.Close()
	for round := uint64(0); round < 3; round++ {
		mustApply(t, s, create(2*round+1, fmt.Sprint("c", round), "C"), send(2*round+2, fmt.Sprint("c", round), "m"))
		deadline := time.Now().Add(10 * time.Second)
		for s.CommittedIndex() < 2*round+2 {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: committed index stuck at %d, want %d", round, s.CommittedIndex(), 2*round+2)
			}
			time.Sleep(time.Millisecond)
		}
		if n := historyLen(t, s, fmt.Sprint("c", round)); n != 1 {
			t.Fatalf("round %d: %d messages visible after the flusher's commit, want 1", round, n)
		}
	}
}

func TestLargePendingTransactionCommitsInline(t *testing.T) {
	s := openDeferred(t, filepath.Join(t.TempDir(), FileName), time.Hour)
	defer s.Close()
	mustApply(t, s, create(1, "c", "C"))
	events := make([]domain.Event, maxPendingEvents)
	for i := range events {
		events[i] = domain.MessageSent{ChannelID: "c", AuthorID: "a", ClientMessageID: fmt.Sprint(i), CreatedAt: t0}
	}
	mustApply(t, s, Entry{Index: 2, Term: 1, Events: events})
	if s.CommittedIndex() != 2 {
		t.Fatalf("committed index %d after %d pending events, want 2 (inline commit)", s.CommittedIndex(), maxPendingEvents+1)
	}
}

func TestCloseCommitsPendingWork(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openDeferred(t, path, time.Hour)
	mustApply(t, s, create(1, "c", "C"), send(2, "c", "m1"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openDeferred(t, path, time.Hour)
	defer s.Close()
	if s.AppliedIndex() != 2 || historyLen(t, s, "c") != 1 {
		t.Fatalf("after close and reopen: applied %d, %d messages; want 2 and 1", s.AppliedIndex(), historyLen(t, s, "c"))
	}
}

// A crash loses only the open transaction; replaying the log from the
// committed index rebuilds exactly what a store committing every batch holds.
func TestCrashLosesOnlyTheOpenTransactionAndReplayRestoresIt(t *testing.T) {
	log := []Entry{create(1, "c", "C"), send(2, "c", "m1"), send(3, "c", "m2"), create(4, "d", "D"),
		send(5, "d", "m1"), send(6, "c", "m1"), send(7, "c", "m3"), send(8, "d", "m9")}
	ref := mustOpen(t)
	want := mustApply(t, ref, log...)

	path := filepath.Join(t.TempDir(), FileName)
	s := openDeferred(t, path, time.Hour)
	mustApply(t, s, log[:3]...)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, log[3:]...)
	crash(s)

	s = openDeferred(t, path, time.Hour)
	defer s.Close()
	if s.AppliedIndex() != 3 {
		t.Fatalf("applied index after crash = %d, want the committed 3", s.AppliedIndex())
	}
	got := mustApply(t, s, log...) // raft replays from its log
	for i := range log {
		if i < 3 {
			if got[i] != nil {
				t.Fatalf("entry %d applied twice: %+v", log[i].Index, got[i])
			}
			continue
		}
		if got[i][0].Sequence != want[i][0].Sequence || got[i][0].Deduplicated != want[i][0].Deduplicated {
			t.Fatalf("entry %d replayed as %+v, want %+v", log[i].Index, got[i][0], want[i][0])
		}
	}
	if mustDigest(t, s) != mustDigest(t, ref) {
		t.Fatal("projection rebuilt after a crash differs from one that never crashed")
	}
}

// With deferred commits the checkpointer copies frames in the background and
// the WAL starts over once it passes walRestartFrames, however the commits
// and transactions interleave; the data stays intact.
func TestWALStaysBoundedWithBackgroundCheckpoints(t *testing.T) {
	oldFrames, oldEvery := walRestartFrames, checkpointEvery
	walRestartFrames, checkpointEvery = 64, time.Millisecond
	defer func() { walRestartFrames, checkpointEvery = oldFrames, oldEvery }()
	path := filepath.Join(t.TempDir(), FileName)
	s := openDeferred(t, path, time.Millisecond)
	defer s.Close()
	ref := mustOpen(t)
	var setup []Entry
	for c := range 50 {
		setup = append(setup, create(uint64(c+1), fmt.Sprint("c", c), "x"))
	}
	mustApply(t, s, setup...)
	mustApply(t, ref, setup...)
	index := uint64(len(setup))
	var largest int64
	for round := range 200 {
		batch := make([]Entry, 0, 50)
		for c := range 50 {
			index++
			batch = append(batch, Entry{Index: index, Term: 1, Events: []domain.Event{domain.MessageSent{
				ChannelID: fmt.Sprint("c", c), AuthorID: "a", Payload: make([]byte, 128),
				ClientMessageID: fmt.Sprintf("%x", (index*2654435761)%1000003), CreatedAt: t0}}})
		}
		mustApply(t, s, batch...)
		mustApply(t, ref, batch...)
		if round%10 == 0 { // a reader now and then, as in production
			if err := s.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > largest {
			largest = fi.Size()
		}
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	// 64 frames before a restart plus one commit's worth (a few hundred
	// pages at most here): far below the ~10,000 frames written in all.
	const bound = (64 + 1000) * (4096 + 24)
	if largest > bound {
		t.Fatalf("WAL grew to %d bytes, want <= %d: it never started over", largest, bound)
	}
	if mustDigest(t, s) != mustDigest(t, ref) {
		t.Fatal("projection with background checkpoints differs from one committing every batch")
	}
}

// waitCommitted polls until s has committed through index, failing the test
// if that takes longer than within.
func waitCommitted(tb testing.TB, s *Store, index uint64, within time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for s.CommittedIndex() < index {
		if time.Now().After(deadline) {
			tb.Fatalf("committed index stuck at %d for %v, want %d (applied %d)", s.CommittedIndex(), within, index, s.AppliedIndex())
		}
		time.Sleep(time.Millisecond)
	}
}

// Regression: an Apply that began a transaction and outlasted the commit
// delay let the flusher's deadline pass while it still ran; the flusher
// found nothing newly applied and went back to sleep, and the small Applies
// that followed joined the open transaction without waking it, so nothing
// committed again until 2048 events or a reader's Flush. Every open
// transaction must commit about CommitDelay after it began, however long
// the Apply that began it took.
func TestSlowFirstApplyStillCommitsWithinTheDelay(t *testing.T) {
	const delay = 20 * time.Millisecond
	fired := make(chan struct{})
	var fireOnce, slowOnce sync.Once
	hooks := testHooks{
		flusherFired: func() { fireOnce.Do(func() { close(fired) }) },
		// The first Apply holds its fresh transaction open until the
		// flusher's deadline for it has passed.
		applyBegun: func() {
			slowOnce.Do(func() {
				select {
				case <-fired:
				case <-time.After(10 * time.Second):
					t.Error("the flusher never reached the deadline of the first transaction")
				}
			})
		},
	}
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), FileName), Options{CommitDelay: delay, hooks: hooks})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	mustApply(t, s, create(1, "c", "C"))
	// The bound is generous for a loaded test machine; without the fix the
	// index never moves at all.
	const within = 2 * time.Second
	waitCommitted(t, s, 1, within)
	for i := uint64(2); i <= 11; i++ { // a trickle of small batches
		mustApply(t, s, send(i, "c", fmt.Sprint("m", i)))
		waitCommitted(t, s, i, within)
	}
	if n := historyLen(t, s, "c"); n != 10 {
		t.Fatalf("%d messages visible, want 10", n)
	}
}
