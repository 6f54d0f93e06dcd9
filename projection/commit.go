package projection

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Deferred commits.
//
// Apply writes each batch into an open transaction and returns without
// committing it. The transaction commits when Options.CommitDelay has passed
// since it began (the flusher goroutine), when it holds maxPendingEvents
// events, or as soon as someone needs to read what it holds: Flush, which a
// linearizable read, a snapshot, a subscriber catching up from the database,
// Digest and Close all call. Nothing acknowledged depends on the commit:
// the Raft log is the durable record, and a crash loses at most the open
// transaction, whose entries raft replays on restart (the applied index is
// committed in the same transaction).
//
// Committing a group of batches at once writes each touched page to the WAL
// once per group instead of once per batch: the tail page of a busy channel
// takes many appends between commits.

// maxPendingEvents bounds the events one open transaction may hold before
// Apply commits it inline, so a commit never has to write an unbounded
// number of pages at once and a catching-up subscriber's projection read
// never trails the fan-out window (fanout keeps 4096 messages a channel).
const maxPendingEvents = 2048

// pendingTx is the open write transaction and what it has applied.
type pendingTx struct {
	tx     *sql.Tx
	a      *applier
	began  time.Time // when tx began: it is due to commit CommitDelay later
	index  uint64    // last entry applied in tx
	term   uint64
	events int
}

// beginLocked returns the open transaction, beginning one if none is open.
// The transaction outlives the Apply call that began it, so it is not bound
// to that call's context.
//
// Beginning a transaction hands its begin time to the flusher (kick, buffered
// 1). If the buffer is full, the time already in it is earlier, so the
// flusher wakes no later than this transaction is due, finds it open and
// waits for the rest of its delay (runFlusher): every open transaction has
// a flusher deadline at or before its own.
func (s *Store) beginLocked() (*pendingTx, error) {
	if s.pend != nil {
		return s.pend, nil
	}
	tx, err := s.w.BeginTx(context.Background(), nil)
	if err != nil {
		return nil, fmt.Errorf("apply: begin: %w", err)
	}
	began := time.Now()
	s.pendBegan.Store(began.UnixNano())
	s.pend = &pendingTx{tx: tx, a: newApplier(context.Background(), tx, s.stmts), began: began}
	if s.commitDelay > 0 {
		select {
		case s.kick <- began:
		default:
		}
	}
	return s.pend, nil
}

// commitLocked commits the open transaction, if any, recording its last
// entry as applied. On failure the store is broken: every later Apply and
// Flush returns the error, which wraps ErrBroken.
func (s *Store) commitLocked() error {
	p := s.pend
	if p == nil {
		return nil
	}
	s.pend = nil
	s.pendBegan.Store(0)
	start := time.Now()
	err := p.a.flushChannels()
	if err == nil {
		if _, err = p.a.stmt(p.a.st.setApplied).ExecContext(context.Background(), p.index, p.term); err != nil {
			err = fmt.Errorf("record applied index %d: %w", p.index, err)
		}
	}
	if err == nil {
		if err = p.tx.Commit(); err != nil {
			err = fmt.Errorf("commit through index %d: %w", p.index, err)
		}
	}
	if err != nil {
		p.tx.Rollback()
		return s.breakLocked(fmt.Errorf("apply: %w", err))
	}
	s.committed.Store(p.index)
	if s.observer != nil {
		s.observer.ObserveCommit(time.Since(start))
	}
	s.reclaimLocked()
	if s.commitDelay > 0 {
		if s.walFrames.Load() > walRestartFrames {
			s.restartWALLocked()
		}
		select {
		case s.ckKick <- struct{}{}:
		default:
		}
	}
	return nil
}

// Checkpoints. With deferred commits the writer does not checkpoint the WAL
// itself (wal_autocheckpoint=0): after each commit the checkpointer copies
// the new frames into the database file on a connection of its own, in
// PASSIVE mode, which never blocks the writer or the readers, so Apply never
// waits for a checkpoint. The WAL file starts over only when a write
// transaction begins with every frame copied, which a transaction kept open
// across batches rarely does; so once the WAL holds more than
// walRestartFrames frames, the next commit checkpoints on the writer
// connection before a new transaction can begin. The frames are mostly
// copied already, so that pass is short, and the next commit writes the WAL
// from its start again.

// walRestartFrames bounds the WAL: 16384 frames are 64 MiB of 4 KiB pages.
// checkpointEvery spaces the checkpointer's passes, so that a page rewritten
// by many commits in between is copied once. Variables so that tests can
// make them small.
var (
	walRestartFrames int64 = 16384
	checkpointEvery        = time.Second
)

// runCheckpointer checkpoints after commits, at most once per
// checkpointEvery, until s.stop closes.
func (s *Store) runCheckpointer() {
	defer close(s.ckDone)
	pause := time.NewTimer(checkpointEvery)
	pause.Stop()
	for {
		select {
		case <-s.ckKick:
		case <-s.stop:
			return
		}
		s.checkpoint()
		pause.Reset(checkpointEvery)
		select {
		case <-pause.C:
		case <-s.stop:
			return
		}
	}
}

// checkpoint copies committed WAL frames into the database file without
// waiting for anyone and records how many frames the WAL holds.
func (s *Store) checkpoint() {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.ck == nil {
		return
	}
	if frames, _, ok := s.passiveCheckpoint(s.ck); ok {
		s.walFrames.Store(frames)
	}
}

// restartWALLocked checkpoints on the writer connection between
// transactions, so the next transaction finds every frame copied and
// writes the WAL from its start.
func (s *Store) restartWALLocked() {
	if frames, copied, ok := s.passiveCheckpoint(s.w); ok && copied == frames {
		s.walFrames.Store(0)
	}
}

// passiveCheckpoint runs a PASSIVE checkpoint on db and returns the frames
// in the WAL and how many of them are copied; a failure is logged (the next
// commit tries again) and returns ok false.
func (s *Store) passiveCheckpoint(db *sql.DB) (frames, copied int64, ok bool) {
	var busy int64
	if err := db.QueryRowContext(context.Background(), `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied); err != nil {
		s.log.Warn("projection checkpoint failed; will retry after the next commit", "error", err)
		return 0, 0, false
	}
	s.checkpoints.Add(1)
	return frames, copied, true
}

// breakLocked rolls back whatever is pending and makes err, wrapped in
// ErrBroken, the answer of every later Apply and Flush. It returns the
// wrapped error.
func (s *Store) breakLocked(err error) error {
	if s.pend != nil {
		s.pend.tx.Rollback()
		s.pend = nil
		s.pendBegan.Store(0)
	}
	if !errors.Is(err, ErrBroken) {
		err = fmt.Errorf("%w: %w", ErrBroken, err)
	}
	s.applied.Store(s.committed.Load())
	s.broken.Store(&err)
	return err
}

// brokenErr returns the error that broke the store, or nil.
func (s *Store) brokenErr() error {
	if p := s.broken.Load(); p != nil {
		return *p
	}
	return nil
}

// Flush commits what Apply has written but not yet committed, so that every
// read that starts after it returns sees all applied entries. It returns
// ctx's error if ctx ends first, or an error wrapping ErrBroken if a commit
// failed or a Restore could not reopen the database (the store is unusable
// and the node must stop).
func (s *Store) Flush(ctx context.Context) error {
	// The lock-free fast path is sound for a reader: whatever applied index
	// it observed before calling is at most applied now, hence committed.
	// It says nothing about an Apply still running, which is why the
	// flusher never relies on it (commitIfDue).
	if s.committed.Load() == s.applied.Load() {
		return s.brokenErr()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.brokenErr(); err != nil {
		return err
	}
	return s.commitLocked()
}

// runFlusher commits each transaction CommitDelay after it began, unless
// something committed it sooner. It sleeps while no transaction is open,
// wakes on the begin time beginLocked hands it, and decides under wmu from
// the open transaction itself, never from the applied and committed
// indexes, which lag an Apply still running. It returns when s.stop closes.
func (s *Store) runFlusher() {
	defer close(s.flusherDone)
	t := time.NewTimer(time.Hour)
	t.Stop()
	var due time.Time // the armed deadline; zero while none is
	arm := func(at time.Time) {
		if due.IsZero() || at.Before(due) {
			due = at
			t.Reset(time.Until(at))
		}
	}
	for {
		var fire <-chan time.Time
		if !due.IsZero() {
			fire = t.C
		}
		select {
		case began := <-s.kick:
			arm(began.Add(s.commitDelay))
		case <-fire:
			due = time.Time{}
			if s.hooks.flusherFired != nil {
				s.hooks.flusherFired()
			}
			next, err := s.commitIfDue()
			if err != nil {
				s.log.Error("projection commit failed; the node must stop", "error", err)
			}
			if !next.IsZero() {
				arm(next)
			}
		case <-s.stop:
			t.Stop()
			return
		}
	}
}

// commitIfDue commits the open transaction if CommitDelay has passed since
// it began. It returns the transaction's deadline if one is open and not
// yet due (the flusher waits for it), the zero time otherwise, and the
// commit's error.
func (s *Store) commitIfDue() (time.Time, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.pend == nil || s.brokenErr() != nil {
		return time.Time{}, nil
	}
	if due := s.pend.began.Add(s.commitDelay); time.Now().Before(due) {
		return due, nil
	}
	return time.Time{}, s.commitLocked()
}

// Reclaiming disk space. The file is in auto_vacuum=INCREMENTAL mode:
// pages freed by retention, deletions and redactions go to SQLite's free
// list (and are reused by later writes); after a commit that leaves more
// than reclaimAbove of them, reclaimLocked gives up to reclaimStep back to
// the file system with PRAGMA incremental_vacuum, between transactions on
// the writer. Each step moves a bounded number of pages, so Apply waits at
// most one step; a large trim is given back over a few commits.
var (
	reclaimAbove int64 = 1024 // pages (4 MiB)
	reclaimStep  int64 = 2048 // pages (8 MiB) per commit
)

// reclaimLocked runs one incremental vacuum step if the free list is long.
// A failure is logged, not fatal: the pages stay on the free list, where
// SQLite reuses them. s.wmu must be held and no transaction open.
func (s *Store) reclaimLocked() {
	ctx := context.Background()
	var free int64
	if err := s.w.QueryRowContext(ctx, `PRAGMA freelist_count`).Scan(&free); err != nil || free <= reclaimAbove {
		return
	}
	start := time.Now()
	if _, err := s.w.ExecContext(ctx, fmt.Sprintf(`PRAGMA incremental_vacuum(%d)`, reclaimStep)); err != nil {
		s.log.Warn("incremental vacuum failed; the free pages stay for reuse", "error", err)
		return
	}
	s.log.Debug("reclaimed free pages", "pages", min(free, reclaimStep), "duration", time.Since(start))
}
