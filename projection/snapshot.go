package projection

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Backup writes a consistent copy of the projection to dst (which must not
// exist) with VACUUM INTO, on its own connection, so Apply keeps committing
// meanwhile. The copy holds the state of its own read snapshot: at or past
// the committed index the caller observed before calling (Flush first to
// include everything applied). It returns an error if
// the copy cannot be written.
func (s *Store) Backup(ctx context.Context, dst string) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.w == nil {
		return fmt.Errorf("backup: %w", s.goneLocked())
	}
	// auto_vacuum(2) on this connection makes the copy incremental-vacuum
	// even when the live file predates it (the live file is unchanged).
	db, err := sql.Open("sqlite", dsn(s.path, "auto_vacuum(2)", "busy_timeout(5000)"))
	if err != nil {
		return fmt.Errorf("backup: open: %w", err)
	}
	defer db.Close()
	start := time.Now()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		return fmt.Errorf("backup to %s: %w", dst, err)
	}
	if err := syncFile(dst); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if s.observer != nil {
		if fi, err := os.Stat(dst); err == nil {
			s.observer.ObserveSnapshot(fi.Size(), time.Since(start))
		}
	}
	return nil
}

// Restore replaces the projection with the SQLite database read from src
// (a Backup copy). The copy is written beside the live file, fsync'd and
// checked (PRAGMA quick_check and the schema) before it is renamed over the
// live file; readers wait while the file is swapped.
//
// An error before the swap (a copy that cannot be written or fails its
// checks) leaves the current projection as it was. Once the connections are
// closed there is no going back: if closing, swapping or reopening fails,
// the store is left without a database and the error wraps ErrBroken, as do
// the errors of every later Apply, Flush, read and Backup. An error from the
// initial Flush of a broken store wraps ErrBroken too.
func (s *Store) Restore(ctx context.Context, src io.Reader) error {
	if err := s.Flush(ctx); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	tmp := s.path + ".restore"
	if err := writeFile(tmp, src); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("restore: write %s: %w", tmp, err)
	}
	applied, err := verify(ctx, tmp)
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("restore: received copy is unusable: %w", err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.swapLocked(ctx, tmp); err != nil {
		os.Remove(tmp) // gone already if the rename succeeded
		return s.loseLocked(fmt.Errorf("restore: %w", err))
	}
	s.log.Info("projection restored from snapshot", "applied_index", applied)
	return nil
}

// swapLocked closes the connections, renames the verified copy tmp over the
// live file and reopens it. s.mu must be held exclusively. The store has no
// database from the first step on, whatever error it returns.
func (s *Store) swapLocked(ctx context.Context, tmp string) error {
	err := s.closeLocked()
	if err == nil && s.hooks.restoreClosed != nil {
		err = s.hooks.restoreClosed()
	}
	if err != nil {
		return err
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(s.path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove stale %s: %w", suffix, err)
		}
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("rename into place: %w", err)
	}
	if err := syncDir(filepath.Dir(s.path)); err != nil {
		return err
	}
	if err := s.open(ctx, false); err != nil {
		return fmt.Errorf("reopen after swap: %w", err)
	}
	return nil
}

// loseLocked records that the store has lost its database for err: reads
// and Backup return it (s.mu, held exclusively), Apply and Flush too
// (breakLocked). It returns err wrapped in ErrBroken.
func (s *Store) loseLocked(err error) error {
	s.wmu.Lock()
	err = s.breakLocked(err)
	s.wmu.Unlock()
	s.lost = err
	return err
}

// ErrBroken is wrapped by errors after which the store cannot be used: a
// failed commit or write, or a Restore that could not put a database back
// in place. The node must stop; a restart replays the Raft log (or restores
// the snapshot) into the projection.
var ErrBroken = errors.New("projection unusable")

// verify checks a candidate database file and returns its applied index.
func verify(ctx context.Context, path string) (uint64, error) {
	db, err := sql.Open("sqlite", dsn(path, "query_only(1)"))
	if err != nil {
		return 0, err
	}
	defer db.Close()
	if err := quickCheck(ctx, db); err != nil {
		return 0, err
	}
	var applied uint64
	if err := db.QueryRowContext(ctx, `SELECT applied_index FROM raft_applied WHERE id = 1`).Scan(&applied); err != nil {
		return 0, fmt.Errorf("read applied index: %w", err)
	}
	return applied, nil
}

func writeFile(path string, src io.Reader) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, src); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir for sync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}
