package projection

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Regression: a Restore that failed after closing the connections returned
// an error that did not say the store was unusable, so the node kept running
// and the next Apply dereferenced the nil writer. Every failure from the
// close on must leave the store answering ErrBroken everywhere.
func TestRestoreFailingAfterCloseBreaksTheStore(t *testing.T) {
	ctx := context.Background()
	src := mustOpen(t)
	mustApply(t, src, workload(20)...)
	copyPath := filepath.Join(t.TempDir(), "copy.db")
	if err := src.Backup(ctx, copyPath); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(copyPath)
	if err != nil {
		t.Fatal(err)
	}

	injected := errors.New("injected close failure")
	for name, sabotage := range map[string]func(path string) error{
		// The connections fail to close (or a step we cannot provoke, such
		// as the directory fsync, fails).
		"close": func(string) error { return injected },
		// The stale WAL cannot be removed: a non-empty directory stands in
		// its place.
		"remove stale wal": func(path string) error {
			if err := os.RemoveAll(path + "-wal"); err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Join(path+"-wal", "x"), 0o755); err != nil {
				return err
			}
			return nil
		},
		// The file renamed into place is not a database, so the reopen
		// fails.
		"reopen": func(path string) error {
			return os.WriteFile(path+".restore", bytes.Repeat([]byte("not sqlite"), 1000), 0o644)
		},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			hooks := testHooks{restoreClosed: func() error { return sabotage(path) }}
			s, err := Open(ctx, path, Options{CommitDelay: time.Hour, hooks: hooks})
			if err != nil {
				t.Fatal(err)
			}
			mustApply(t, s, create(1, "old", "O"))

			err = s.Restore(ctx, bytes.NewReader(data))
			if !errors.Is(err, ErrBroken) {
				t.Fatalf("Restore = %v, want an error wrapping ErrBroken", err)
			}
			if name == "close" && !errors.Is(err, injected) {
				t.Fatalf("Restore = %v, want it to wrap the failure", err)
			}
			// Nothing may panic on the missing database; everything says why.
			_, err = s.Apply(ctx, []Entry{send(21, "a", "after")})
			assertBroken(t, "Apply", err)
			assertBroken(t, "Flush", s.Flush(ctx))
			_, err = s.Channel(ctx, "a")
			assertBroken(t, "Channel", err)
			_, _, err = s.Channels(ctx, "", 10)
			assertBroken(t, "Channels", err)
			_, _, err = s.History(ctx, "a", 0, 10, 0)
			assertBroken(t, "History", err)
			_, err = s.Digest(ctx)
			assertBroken(t, "Digest", err)
			assertBroken(t, "Backup", s.Backup(ctx, filepath.Join(t.TempDir(), "b.db")))
			assertBroken(t, "Restore again", s.Restore(ctx, bytes.NewReader(data)))
			assertBroken(t, "Close", s.Close())
		})
	}
}

func assertBroken(tb testing.TB, what string, err error) {
	tb.Helper()
	if !errors.Is(err, ErrBroken) {
		tb.Errorf("%s after a failed restore = %v, want an error wrapping ErrBroken", what, err)
	}
}

// A failed commit breaks the store the same way: Apply and Flush keep
// answering ErrBroken.
func TestFailedCommitBreaksTheStore(t *testing.T) {
	ctx := context.Background()
	s := openDeferred(t, filepath.Join(t.TempDir(), FileName), time.Hour)
	defer s.Close()
	mustApply(t, s, create(1, "c", "C"))
	s.wmu.Lock()
	s.pend.tx.Rollback() // the commit that follows fails
	s.wmu.Unlock()
	assertBroken(t, "Flush", s.Flush(ctx))
	_, err := s.Apply(ctx, []Entry{send(2, "c", "m")})
	assertBroken(t, "Apply", err)
	assertBroken(t, "Flush again", s.Flush(ctx))
}
