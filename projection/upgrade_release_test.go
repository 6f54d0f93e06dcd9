package projection

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftogram/raftogram/domain"
	"github.com/raftogram/raftogram/migrations"
)

// testdata/v0.1-projection.db was written by the release before issue 12
// (schema 0001 only; commit e2e9d13): channels "general" (20 messages,
// client ids m1..m20, created 12:00:01..12:00:20 on 2026-12-01) and
// "empty", applied through index 21.
const frozenProjection = "testdata/v0.1-projection.db"

func copyFrozen(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(frozenProjection)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), FileName)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func schemaVersions(t *testing.T, path string) []int {
	t.Helper()
	db, err := sql.Open("sqlite", dsn(path, "query_only(1)"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var vs []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	return vs
}

// checkUpgraded opens an upgraded copy of the frozen projection and uses
// everything the new schema added on the old data.
func checkUpgraded(t *testing.T, path string) {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ms, _ := migrations.All()
	if got := schemaVersions(t, path); len(got) != len(ms) || got[len(got)-1] != ms[len(ms)-1].Version {
		t.Fatalf("schema versions %v after upgrade; %d migrations", got, len(ms))
	}
	if s.AppliedIndex() != 21 {
		t.Fatalf("applied index %d, want 21", s.AppliedIndex())
	}
	msgs, more, err := s.Page(ctx, "general", Range{NewestFirst: true, Limit: 3})
	if err != nil || fmt.Sprint(sequences(msgs)) != "[20 19 18]" || !more || string(msgs[0].Payload) != "message 20" {
		t.Fatalf("newest page of the old data: %v %v %v", sequences(msgs), more, err)
	}
	at := time.Date(2026, 12, 1, 12, 0, 5, 0, time.UTC) // message 5 (the index was built by the migration)
	if seq, ok, err := s.SequenceAt(ctx, "general", at); err != nil || !ok || seq != 5 {
		t.Fatalf("SequenceAt on old data: %d %v %v", seq, ok, err)
	}
	rs := mustApply(t, s,
		Entry{Index: 22, Term: 2, Events: []domain.Event{domain.MessageRedacted{ChannelID: "general", Sequence: 1}}},
		// Dedup rows from before schema 4: the author was backfilled from
		// the message (alice), the payload hash is unknown, so a repeat by
		// alice is identical whatever its payload and one by anyone else
		// is a conflict.
		Entry{Index: 23, Term: 2, Events: []domain.Event{domain.MessageSent{ChannelID: "general", AuthorID: "alice", ClientMessageID: "m2"}}},
		Entry{Index: 24, Term: 2, Events: []domain.Event{domain.ChannelDeleted{ChannelID: "empty"}}},
		Entry{Index: 25, Term: 2, Events: []domain.Event{
			domain.MessageSent{ChannelID: "general", AuthorID: "alice", Payload: []byte("message 1"), ClientMessageID: "m1"}, // redacted at 22
			domain.MessageSent{ChannelID: "general", AuthorID: "mallory", Payload: []byte("message 3"), ClientMessageID: "m3"},
		}},
	)
	if !rs[0][0].Redacted || rs[1][0].Sequence != 2 || !rs[1][0].Deduplicated || !rs[2][0].Deleted {
		t.Fatalf("new events on old data: %+v", rs)
	}
	if r := rs[3][0]; r.Err != nil || r.Sequence != 1 || !r.Deduplicated {
		t.Fatalf("repeat of a redacted pre-upgrade message: %+v", r)
	}
	if r := rs[3][1]; domain.ErrorCode(r.Err) != domain.EEXISTS || !strings.Contains(r.Err.Error(), "another author") {
		t.Fatalf("repeat of a pre-upgrade id by another author: %+v", r)
	}
	if msgs, _, err := s.History(ctx, "general", 0, 2, 0); err != nil || !msgs[0].Redacted || msgs[1].Redacted {
		t.Fatalf("history after redaction: %+v %v", msgs, err)
	}
	// Retention on old data: the migration counted the payload bytes held
	// (messages 11-20 hold "message NN", 10 bytes each), so a byte limit
	// trims exactly; the file was converted to incremental vacuum.
	mustApply(t, s, Entry{Index: 26, Term: 2, Events: []domain.Event{
		domain.ChannelUpdated{ChannelID: "general", Retention: &domain.Retention{MaxBytes: 25}}}})
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if ch, err := s.Channel(ctx, "general"); err != nil || ch.FirstSequence != 19 || ch.TrimmedThrough != 18 {
		t.Fatalf("a 25-byte limit on the old data: %+v %v", ch, err)
	}
	var mode int
	if err := s.w.QueryRowContext(ctx, `PRAGMA auto_vacuum`).Scan(&mode); err != nil || mode != autoVacuumIncremental {
		t.Fatalf("auto_vacuum %d after opening an old file (%v), want %d", mode, err, autoVacuumIncremental)
	}
}

// The projection a node of the previous release wrote opens, upgrades and
// serves every new read and event.
func TestUpgradeFromPreviousRelease(t *testing.T) {
	path := copyFrozen(t)
	if got := schemaVersions(t, path); fmt.Sprint(got) != "[1]" {
		t.Fatalf("frozen projection has schema %v, want [1]", got)
	}
	checkUpgraded(t, path)
}

// A node that stopped in the middle of the upgrade (a crash after one
// migration committed and before the next; each migration is one
// transaction, so a crash inside one leaves the version before it)
// finishes the upgrade when it starts again.
func TestUpgradeInterruptedAndResumed(t *testing.T) {
	path := copyFrozen(t)
	ms, err := migrations.All()
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		t.Fatal(err)
	}
	if err := applyMigration(context.Background(), db, ms[1], nil); err != nil {
		t.Fatal(err)
	}
	// And one that failed half-way: its transaction rolled back.
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`ALTER TABLE messages ADD COLUMN redacted INTEGER NOT NULL DEFAULT 0`); err != nil {
		t.Fatal(err)
	}
	tx.Rollback()
	db.Close()
	if got := schemaVersions(t, path); fmt.Sprint(got) != "[1 2]" {
		t.Fatalf("interrupted upgrade at %v, want [1 2]", got)
	}
	checkUpgraded(t, path)
}
