package projection

// Upgrade tests on the frozen v1 data directory (testdata/datadir-v1, made
// by server's TestGenerateDatadirFixture): its snapshot restores into this
// build's store and reads back, and a schema migration that crashes or
// fails part-way leaves the file as it was and completes on the next open.

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/raftogram/raftogram/internal/datadirfixture"
	"github.com/raftogram/raftogram/migrations"
)

// crashChildEnv names the projection file a child test process opens with
// futureMigration, dying inside its transaction (see TestMain).
const crashChildEnv = "RAFTOGRAM_TEST_MIGRATION_CRASH"

// crashExitCode is the child's exit status when it died where intended.
const crashExitCode = 73

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		// The child: run the future migration and die like a killed node
		// once its statements have run, before it commits.
		hooks := testHooks{migrations: withFuture(futureMigration), migrationRan: func(m migrations.Migration) {
			if m.Version == futureMigration.Version {
				os.Exit(crashExitCode)
			}
		}}
		_, err := Open(context.Background(), path, Options{hooks: hooks})
		os.Stderr.WriteString("child: the migration did not run: " + errString(err) + "\n")
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

// futureMigration is a schema change a later release might make: several
// statements that alter, create and rewrite.
var futureMigration = migrations.Migration{Version: 9001, Name: "9001_future", SQL: `
ALTER TABLE messages ADD COLUMN edited_at INTEGER NOT NULL DEFAULT 0;
CREATE TABLE reactions (
    channel_id TEXT NOT NULL, sequence INTEGER NOT NULL, emoji TEXT NOT NULL,
    PRIMARY KEY (channel_id, sequence, emoji)
) WITHOUT ROWID;
UPDATE messages SET edited_at = created_at;
`}

// releasedVersion returns the newest released migration's version.
func releasedVersion(t *testing.T) int {
	t.Helper()
	ms, err := migrations.All()
	if err != nil {
		t.Fatal(err)
	}
	return ms[len(ms)-1].Version
}

// withFuture returns the released migrations followed by extra.
func withFuture(extra ...migrations.Migration) func() ([]migrations.Migration, error) {
	return func() ([]migrations.Migration, error) {
		ms, err := migrations.All()
		return append(ms, extra...), err
	}
}

// fixtureProjection copies the v1 node's projection.db into a temporary
// directory and returns its path and the expected history.
func fixtureProjection(t *testing.T) (string, datadirfixture.Expected) {
	t.Helper()
	want, err := datadirfixture.Load(datadirfixture.V1)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := datadirfixture.CopyNode(datadirfixture.V1, filepath.Join(t.TempDir(), datadirfixture.NodeID))
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, FileName), want
}

// schemaOf returns the file's schema version and whether the future
// migration's column and table exist, read without the store.
func schemaOf(t *testing.T, path string) (version int, column, table bool) {
	t.Helper()
	db, err := sql.Open("sqlite", dsn(path, "query_only(1)"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if err := db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info('messages') WHERE name = 'edited_at'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	column = n == 1
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_schema WHERE name = 'reactions'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return version, column, n == 1
}

// checkHolds checks that s holds exactly the fixture's channels and
// messages written at or below upTo.
func checkHolds(t *testing.T, s *Store, want datadirfixture.Expected, upTo uint64) {
	t.Helper()
	ctx := context.Background()
	chs, _, err := s.Channels(ctx, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	var gotIDs, wantIDs []string
	for _, c := range chs {
		gotIDs = append(gotIDs, c.ID)
	}
	for _, c := range want.Channels {
		if c.Index > upTo {
			continue
		}
		wantIDs = append(wantIDs, c.ID)
		msgs, _, err := s.History(ctx, c.ID, 0, 1000, 0)
		if err != nil {
			t.Fatalf("history of %s: %v", c.ID, err)
		}
		var got, exp []string
		for _, m := range msgs {
			got = append(got, fmt.Sprintf("%d|%s|%q|%s|%d", m.Sequence, m.AuthorID, m.Payload, m.ClientMessageID, m.CreatedAt.UnixNano()))
		}
		for _, m := range c.Messages {
			if m.Index <= upTo {
				exp = append(exp, fmt.Sprintf("%d|%s|%q|%s|%d", m.Sequence, m.AuthorID, m.Payload, m.ClientMessageID, m.CreatedAtUnixNano))
			}
		}
		if !reflect.DeepEqual(got, exp) {
			t.Fatalf("history of %s up to index %d:\n got %q\nwant %q", c.ID, upTo, got, exp)
		}
	}
	if !reflect.DeepEqual(gotIDs, wantIDs) {
		t.Fatalf("channels up to index %d: got %q, want %q", upTo, gotIDs, wantIDs)
	}
}

// TestSnapshotV1Restores installs the v1 fixture's raft snapshot (a SQLite
// file copy) into a store of this build and reads back exactly what was
// written up to the snapshot's applied index.
func TestSnapshotV1Restores(t *testing.T) {
	want, err := datadirfixture.Load(datadirfixture.V1)
	if err != nil {
		t.Fatal(err)
	}
	state, err := datadirfixture.SnapshotState(datadirfixture.V1)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t)
	if err := s.Restore(context.Background(), bytes.NewReader(data)); err != nil {
		t.Fatalf("restore the v1 snapshot: %v", err)
	}
	applied := s.AppliedIndex()
	if applied < want.SnapshotIndex || applied >= want.LastIndex {
		t.Fatalf("restored applied index %d, want within [%d, %d)", applied, want.SnapshotIndex, want.LastIndex)
	}
	checkHolds(t, s, want, applied)
	// Something was left out: the fixture wrote after the snapshot.
	if _, _, err := s.History(context.Background(), "late", 0, 10, 0); err == nil {
		t.Fatal(`channel "late", created after the snapshot, is in it`)
	}
}

// TestMigrationCrashMidwayCompletesOnNextOpen kills a process inside a
// future migration's transaction, after its statements ran, on a copy of
// the v1 projection: the file stays at the old schema with its data, and
// the next open runs the migration from its start.
func TestMigrationCrashMidwayCompletesOnNextOpen(t *testing.T) {
	path, want := fixtureProjection(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != crashExitCode {
		t.Fatalf("child did not die inside the migration: %v\n%s", err, out)
	}
	// The released migrations before the future one committed, each in
	// its own transaction; the future one left nothing behind.
	if v, column, table := schemaOf(t, path); v != releasedVersion(t) || column || table {
		t.Fatalf("after the crash: schema version %d, edited_at %v, reactions %v; want %d and neither", v, column, table, releasedVersion(t))
	}
	checkMigratedOpen(t, path, want)
}

// TestMigrationFailingMidwayLeavesFileAndCompletesLater: a migration whose
// third statement fails returns the error and leaves the file as it was;
// the fixed migration then completes.
func TestMigrationFailingMidwayLeavesFileAndCompletesLater(t *testing.T) {
	path, want := fixtureProjection(t)
	broken := futureMigration
	broken.SQL += "INSERT INTO no_such_table VALUES (1);\n"
	_, err := Open(context.Background(), path, Options{hooks: testHooks{migrations: withFuture(broken)}})
	if err == nil || !strings.Contains(err.Error(), "migration 9001_future") || !strings.Contains(err.Error(), "no_such_table") {
		t.Fatalf("open with a failing migration: %v, want the migration's error", err)
	}
	// The released migrations before the future one committed, each in
	// its own transaction; the future one left nothing behind.
	if v, column, table := schemaOf(t, path); v != releasedVersion(t) || column || table {
		t.Fatalf("after the failure: schema version %d, edited_at %v, reactions %v; want %d and neither", v, column, table, releasedVersion(t))
	}
	checkMigratedOpen(t, path, want)
}

// checkMigratedOpen opens path with the future migration, then checks it
// ran once, completely, and the fixture's data reads back unchanged.
func checkMigratedOpen(t *testing.T, path string, want datadirfixture.Expected) {
	t.Helper()
	s, err := Open(context.Background(), path, Options{hooks: testHooks{migrations: withFuture(futureMigration)}})
	if err != nil {
		t.Fatalf("next open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if got := s.AppliedIndex(); got != want.LastIndex {
		t.Fatalf("applied index %d, want %d", got, want.LastIndex)
	}
	checkHolds(t, s, want, want.LastIndex)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if v, column, table := schemaOf(t, path); v != futureMigration.Version || !column || !table {
		t.Fatalf("after the next open: schema version %d, edited_at %v, reactions %v; want %d and both", v, column, table, futureMigration.Version)
	}
	db, err := sql.Open("sqlite", dsn(path, "query_only(1)"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var unset, runs int
	if err := db.QueryRow(`SELECT COUNT(*) FROM messages WHERE edited_at != created_at`).Scan(&unset); err != nil || unset != 0 {
		t.Fatalf("%d messages not rewritten by the migration (%v)", unset, err)
	}
	if err := db.QueryRow(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, futureMigration.Version).Scan(&runs); err != nil || runs != 1 {
		t.Fatalf("migration recorded %d times (%v)", runs, err)
	}
}
