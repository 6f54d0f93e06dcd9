// Package projection is the SQLite adapter: the per-node projection of the
// Raft log into channels, messages and the dedup index, and the queries the
// API serves from it.
//
// One writer connection applies committed log entries, each batch in one
// transaction that also records the last applied Raft index; a separate pool
// of query-only connections serves reads without blocking the writer (WAL).
// Snapshots are consistent file copies (VACUUM INTO); Restore swaps a received
// copy in atomically.
package projection

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftogram/raftogram/migrations"
	"modernc.org/sqlite" // registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"
)

// FileName is the projection's file name inside a node's data directory.
const FileName = "projection.db"

// Store is a node's SQLite projection. Apply, Restore and Close must be
// called from one goroutine at a time (the FSM's); reads, Flush and Backup
// are safe from any goroutine, concurrently with them.
type Store struct {
	path        string
	log         *slog.Logger
	commitDelay time.Duration

	// mu is held shared by readers and backups and exclusively while
	// Restore swaps the file and the connections. Lock order: mu, then wmu.
	mu    sync.RWMutex
	w     *sql.DB // exactly one connection: the FSM's
	r     *sql.DB // query-only pool
	stmts writeStmts
	reads readStmts // on r
	lost  error     // why w and r are nil after a failed Restore (wraps ErrBroken)

	// wmu guards the open write transaction (commit.go).
	wmu    sync.Mutex
	pend   *pendingTx
	broken atomic.Pointer[error] // set once, under wmu; wraps ErrBroken

	applied   atomic.Uint64 // last entry applied, committed or not
	committed atomic.Uint64 // last entry committed: what readers see

	kick        chan time.Time // a transaction began then; buffered 1
	stop        chan struct{}  // closed by Close
	stopOnce    sync.Once
	flusherDone chan struct{}

	ck        *sql.DB       // the checkpointer's connection (deferred commits only)
	ckKick    chan struct{} // a commit happened; buffered 1
	ckDone    chan struct{}
	walFrames atomic.Int64 // frames in the WAL at the last checkpoint

	observer    Observer      // nil: none
	pendBegan   atomic.Int64  // UnixNano when the open transaction began; 0: none open
	checkpoints atomic.Uint64 // checkpoint passes run

	hooks testHooks
}

// testHooks let tests stop or fail the store at chosen points. A nil field
// does nothing; production code never sets them.
type testHooks struct {
	// applyBegun runs in Apply once its transaction is open, before any
	// entry is written (wmu is held).
	applyBegun func()
	// flusherFired runs in the flusher when a commit deadline has passed,
	// before it looks at the open transaction.
	flusherFired func()
	// restoreClosed runs in Restore right after the connections are
	// closed; a non-nil error fails the restore at that point.
	restoreClosed func() error
	// migrations replaces migrations.All (a test adds a future migration).
	migrations func() ([]migrations.Migration, error)
	// migrationRan runs inside a migration's transaction once its SQL has
	// run, before the migration is recorded and committed.
	migrationRan func(migrations.Migration)
}

// Options tunes a Store. The zero value commits every Apply at once.
type Options struct {
	// Logger receives the store's logs; nil discards them.
	Logger *slog.Logger
	// CommitDelay is how long applied entries may wait in the open
	// transaction before a commit (see Flush); 0 commits in every Apply.
	CommitDelay time.Duration
	// Observer receives the store's measurements; nil records none.
	Observer Observer

	hooks testHooks // for tests only
}

// Observer receives a Store's measurements (a *metrics.Metrics). Its
// methods must be cheap and safe for concurrent use.
type Observer interface {
	// ObserveApply records an Apply of entries into the open transaction
	// that took d (commit excluded).
	ObserveApply(entries int, d time.Duration)
	// ObserveCommit records a commit of the open transaction that took d.
	ObserveCommit(d time.Duration)
	// ObserveSnapshot records a Backup copy of size bytes written in d.
	ObserveSnapshot(size int64, d time.Duration)
}

// Stats is a point-in-time view of a Store's files and transaction.
type Stats struct {
	OpenTxAge   time.Duration // how long the open transaction has been open; 0 when none is
	DBBytes     int64         // size of the database file
	WALBytes    int64         // size of its write-ahead log (0 when absent)
	Checkpoints uint64        // WAL checkpoint passes run since Open
}

// Stats returns the age of the open transaction, the sizes of the database
// file and its WAL, and the checkpoints run. A file it cannot stat counts
// as 0 bytes.
func (s *Store) Stats() Stats {
	st := Stats{Checkpoints: s.checkpoints.Load()}
	if began := s.pendBegan.Load(); began != 0 {
		st.OpenTxAge = max(0, time.Since(time.Unix(0, began)))
	}
	if fi, err := os.Stat(s.path); err == nil {
		st.DBBytes = fi.Size()
	}
	if fi, err := os.Stat(s.path + "-wal"); err == nil {
		st.WALBytes = fi.Size()
	}
	return st
}

// Open opens (creating if needed) the projection at path, applies pending
// migrations and loads the applied index. It returns an error if the file
// cannot be opened or migrated, wrapping ErrCorrupt if it fails its
// integrity check.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create projection dir: %w", err)
	}
	s := &Store{path: path, log: log, commitDelay: opts.CommitDelay, observer: opts.Observer,
		kick: make(chan time.Time, 1), stop: make(chan struct{}), flusherDone: make(chan struct{}),
		ckKick: make(chan struct{}, 1), ckDone: make(chan struct{}), hooks: opts.hooks}
	if err := s.open(ctx, true); err != nil {
		return nil, err
	}
	if s.commitDelay > 0 {
		go s.runFlusher()
		go s.runCheckpointer()
	} else {
		close(s.flusherDone)
		close(s.ckDone)
	}
	return s, nil
}

// ErrCorrupt is wrapped by Open's error when the database file fails its
// integrity check. The file can be moved aside (Quarantine) and the
// projection rebuilt from the Raft snapshot and log.
var ErrCorrupt = errors.New("projection database is corrupt")

// quickCheck runs PRAGMA quick_check over the whole file of db.
func quickCheck(ctx context.Context, db *sql.DB) error {
	var result string
	if err := db.QueryRowContext(ctx, `PRAGMA quick_check`).Scan(&result); err != nil {
		return fmt.Errorf("quick_check: %w", err)
	}
	if result != "ok" {
		return fmt.Errorf("quick_check: %s", result)
	}
	return nil
}

// Quarantine moves the projection at path (with its -wal and -shm files)
// aside to path.corrupt-<suffix> and returns the new name, so a fresh
// projection can be built in its place.
func Quarantine(path, suffix string) (string, error) {
	dst := path + ".corrupt-" + suffix
	for _, ext := range []string{"", "-wal", "-shm"} {
		if err := os.Rename(path+ext, dst+ext); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("quarantine %s: %w", path+ext, err)
		}
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return "", fmt.Errorf("quarantine: %w", err)
	}
	return dst, nil
}

// dsn returns the driver's URI for path with the given pragmas. The path is
// percent-encoded where a URI would misread it ('%', '?', '#'), so a
// data_dir such as "run#2" opens the file it names.
func dsn(path string, pragmas ...string) string {
	q := url.Values{}
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	return "file:" + uriPathEscaper.Replace(path) + "?" + q.Encode()
}

var uriPathEscaper = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")

// open opens the connections; with check it first verifies the file with
// PRAGMA quick_check (Restore has verified its copy already).
func (s *Store) open(ctx context.Context, check bool) error {
	// The writer: WAL without fsync per commit (the Raft log is the durable
	// record; a lost tail is re-applied) and a 64 MiB page cache, because a
	// batch touches pages of many channels.
	// With deferred commits the checkpointer, not the writer, checkpoints
	// (commit.go).
	autocheckpoint := "wal_autocheckpoint(1000)"
	if s.commitDelay > 0 {
		autocheckpoint = "wal_autocheckpoint(0)"
	}
	// secure_delete: content a deletion or redaction removes is overwritten
	// in the file, not left in free pages (erasure requests).
	// auto_vacuum(INCREMENTAL), first: a new file is created with it, so
	// pages that retention and deletions free can be given back (reclaim).
	w, err := sql.Open("sqlite", dsn(s.path, "auto_vacuum(2)", "busy_timeout(5000)", "journal_mode(WAL)", "synchronous(NORMAL)",
		"cache_size(-65536)", "temp_store(MEMORY)", "secure_delete(ON)", autocheckpoint)+"&_txlock=immediate")
	if err != nil {
		return fmt.Errorf("open projection %s: %w", s.path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if check {
		if err := quickCheck(ctx, w); err != nil {
			w.Close()
			return fmt.Errorf("%w: %s: %w", ErrCorrupt, s.path, err)
		}
	}
	if err := migrate(ctx, w, s.hooks); err != nil {
		w.Close()
		if isCorruption(err) {
			return fmt.Errorf("%w: %s: %w", ErrCorrupt, s.path, err)
		}
		return fmt.Errorf("migrate projection %s: %w", s.path, err)
	}
	if err := s.convertToIncrementalVacuum(ctx, w); err != nil {
		w.Close()
		return fmt.Errorf("open projection %s: %w", s.path, err)
	}
	stmts, err := prepareWrites(ctx, w)
	if err != nil {
		w.Close()
		return fmt.Errorf("prepare projection %s: %w", s.path, err)
	}
	r, err := sql.Open("sqlite", dsn(s.path, "busy_timeout(5000)", "query_only(1)"))
	if err != nil {
		stmts.close()
		w.Close()
		return fmt.Errorf("open projection readers %s: %w", s.path, err)
	}
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	reads, err := prepareReads(ctx, r)
	if err != nil {
		stmts.close()
		w.Close()
		r.Close()
		return fmt.Errorf("prepare projection reads %s: %w", s.path, err)
	}
	var applied uint64
	if err := w.QueryRowContext(ctx, `SELECT applied_index FROM raft_applied WHERE id = 1`).Scan(&applied); err != nil {
		reads.close()
		stmts.close()
		w.Close()
		r.Close()
		return fmt.Errorf("read applied index of %s: %w", s.path, err)
	}
	var ck *sql.DB
	if s.commitDelay > 0 {
		if ck, err = sql.Open("sqlite", dsn(s.path, "busy_timeout(5000)")); err != nil {
			reads.close()
			stmts.close()
			w.Close()
			r.Close()
			return fmt.Errorf("open projection checkpointer %s: %w", s.path, err)
		}
		ck.SetMaxOpenConns(1)
	}
	s.w, s.r, s.stmts, s.reads, s.ck = w, r, stmts, reads, ck
	s.applied.Store(applied)
	s.committed.Store(applied)
	return nil
}

// isCorruption reports whether err is SQLite's SQLITE_CORRUPT or
// SQLITE_NOTADB (the file is damaged or not a database at all).
func isCorruption(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
		return true
	}
	return false
}

// migrate applies the migrations newer than the file's schema version, each
// in its own transaction together with its schema_migrations row: a crash
// or an error part-way through a migration leaves the file at the previous
// version, and the next open runs that migration again from its start.
func migrate(ctx context.Context, db *sql.DB, hooks testHooks) error {
	all := migrations.All
	if hooks.migrations != nil {
		all = hooks.migrations
	}
	ms, err := all()
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var current int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	for _, m := range ms {
		if m.Version <= current {
			continue
		}
		if err := applyMigration(ctx, db, m, hooks.migrationRan); err != nil {
			return err
		}
	}
	return nil
}

func applyMigration(ctx context.Context, db *sql.DB, m migrations.Migration, ran func(migrations.Migration)) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration %s: %w", m.Name, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return fmt.Errorf("migration %s: %w", m.Name, err)
	}
	if ran != nil {
		ran(m)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name) VALUES (?, ?)`, m.Version, m.Name); err != nil {
		return fmt.Errorf("record migration %s: %w", m.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit migration %s: %w", m.Name, err)
	}
	return nil
}

// Path returns the projection's file path.
func (s *Store) Path() string { return s.path }

// AppliedIndex returns the last Raft log index applied to the projection.
// Its effects are visible to reads after a Flush.
func (s *Store) AppliedIndex() uint64 { return s.applied.Load() }

// CommittedIndex returns the last Raft log index whose effects are
// committed: visible to every read now.
func (s *Store) CommittedIndex() uint64 { return s.committed.Load() }

// Close stops the flusher, commits what is pending and closes every
// connection. The store must not be used afterwards. It returns the commit's
// or the close's error.
func (s *Store) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.flusherDone
	<-s.ckDone
	ferr := s.Flush(context.Background())
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(ferr, s.closeLocked())
}

func (s *Store) closeLocked() error {
	if s.w == nil {
		return nil
	}
	s.stmts.close()
	s.reads.close()
	err := errors.Join(s.r.Close(), s.w.Close())
	if s.ck != nil {
		err = errors.Join(err, s.ck.Close())
	}
	s.w, s.r, s.ck = nil, nil, nil
	if err != nil {
		return fmt.Errorf("close projection %s: %w", s.path, err)
	}
	return nil
}

// convertToIncrementalVacuum rewrites a file made before auto_vacuum was
// set (a data directory of an earlier release) once, with VACUUM, so that
// it too can give freed pages back. It takes as long as copying the file
// and needs as much free space again; it is logged.
func (s *Store) convertToIncrementalVacuum(ctx context.Context, w *sql.DB) error {
	var mode int
	if err := w.QueryRowContext(ctx, `PRAGMA auto_vacuum`).Scan(&mode); err != nil {
		return fmt.Errorf("read auto_vacuum: %w", err)
	}
	if mode == autoVacuumIncremental {
		return nil
	}
	start := time.Now()
	s.log.Info("converting the projection to incremental vacuum (once, rewrites the file)", "path", s.path)
	if _, err := w.ExecContext(ctx, `VACUUM`); err != nil {
		return fmt.Errorf("convert to incremental vacuum: %w", err)
	}
	s.log.Info("projection converted to incremental vacuum", "path", s.path, "duration", time.Since(start))
	return nil
}

// autoVacuumIncremental is PRAGMA auto_vacuum's value for INCREMENTAL.
const autoVacuumIncremental = 2
