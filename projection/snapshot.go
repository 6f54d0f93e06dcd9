package projection

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
		return errClosed
	}
	db, err := sql.Open("sqlite", dsn(s.path, "busy_timeout(5000)"))
	if err != nil {
		return fmt.Errorf("backup: open: %w", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		return fmt.Errorf("backup to %s: %w", dst, err)
	}
	if err := syncFile(dst); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// Restore replaces the projection with the SQLite database read from src
// (a Backup copy). The copy is written beside the live file, fsync'd and
// checked (PRAGMA quick_check and the schema) before it is renamed over the
// live file; readers wait while the file is swapped. On error the current
// projection is left as it was, unless reopening failed after the swap,
// which the error says.
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
	if err := s.closeLocked(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("restore: %w", err)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(s.path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("restore: remove stale %s: %w", suffix, err)
		}
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("restore: rename into place: %w", err)
	}
	if err := syncDir(filepath.Dir(s.path)); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := s.open(ctx, false); err != nil {
		return fmt.Errorf("restore: reopen after swap: %w: %w", ErrBroken, err)
	}
	s.log.Info("projection restored from snapshot", "applied_index", applied)
	return nil
}

// ErrBroken is wrapped by errors after which the store has no open database
// and cannot be used; the node must stop.
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
