package projection

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/raftogram/raftogram/domain"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func mustOpen(tb testing.TB) *Store {
	tb.Helper()
	s, err := Open(context.Background(), filepath.Join(tb.TempDir(), FileName), Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func mustApply(tb testing.TB, s *Store, entries ...Entry) [][]domain.Result {
	tb.Helper()
	rs, err := s.Apply(context.Background(), entries)
	if err != nil {
		tb.Fatal(err)
	}
	return rs
}

func create(index uint64, id, name string) Entry {
	return Entry{Index: index, Term: 1, Events: []domain.Event{domain.ChannelCreated{ChannelID: id, Name: name, CreatedAt: t0}}}
}

func send(index uint64, ch, cmid string) Entry {
	return Entry{Index: index, Term: 1, Events: []domain.Event{domain.MessageSent{
		ChannelID: ch, AuthorID: "alice", Payload: []byte("p" + cmid), ClientMessageID: cmid, CreatedAt: t0.Add(time.Duration(index)),
	}}}
}

// Regression: a path with URI metacharacters ('#' began a fragment) made
// every store under "x#1" and "x#2" open the same file "x".
func TestPathsWithURIMetacharactersStaySeparate(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	var stores []*Store
	for _, name := range []string{"run#1", "run#2", "q?x=1", "pct%41"} {
		s, err := Open(ctx, filepath.Join(dir, name, FileName), Options{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		defer s.Close()
		stores = append(stores, s)
	}
	mustApply(t, stores[0], create(1, "a", "A"))
	for i, s := range stores[1:] {
		if s.AppliedIndex() != 0 {
			t.Fatalf("store %d shares a file with store 0", i+1)
		}
	}
	for _, name := range []string{"run#1", "run#2", "q?x=1", "pct%41"} {
		if _, err := os.Stat(filepath.Join(dir, name, FileName)); err != nil {
			t.Fatalf("%s: file not where it was asked: %v", name, err)
		}
	}
}

func TestCreateChannelIdempotentAndAssignedID(t *testing.T) {
	s := mustOpen(t)
	rs := mustApply(t, s, create(1, "general", "General"), create(2, "general", "Other name"), create(3, "", "auto"))
	if r := rs[0][0]; !r.Created || r.Channel.ID != "general" || r.Channel.Name != "General" {
		t.Fatalf("first create = %+v", r)
	}
	if r := rs[1][0]; r.Created || r.Channel.Name != "General" {
		t.Fatalf("second create = %+v, want created=false with stored name", r)
	}
	if r := rs[2][0]; !r.Created || r.Channel.ID != "channel-3" {
		t.Fatalf("assigned id = %q, want channel-3", r.Channel.ID)
	}
	if got := s.AppliedIndex(); got != 3 {
		t.Fatalf("applied index = %d, want 3", got)
	}
}

func TestSendAssignsContiguousSequencesAndDedups(t *testing.T) {
	s := mustOpen(t)
	mustApply(t, s, create(1, "a", "A"), create(2, "b", "B"))
	rs := mustApply(t, s, send(3, "a", "m1"), send(4, "a", "m2"), send(5, "b", "m1"), send(6, "a", "m1"), send(7, "a", ""), send(8, "a", ""))
	want := []domain.Result{{Sequence: 1}, {Sequence: 2}, {Sequence: 1}, {Sequence: 1, Deduplicated: true}, {Sequence: 3}, {Sequence: 4}}
	for i, w := range want {
		if got := rs[i][0]; got != w {
			t.Errorf("entry %d: got %+v, want %+v", i, got, w)
		}
	}
	msgs, more, err := s.History(context.Background(), "a", 0, 100, 0)
	if err != nil || more {
		t.Fatalf("history: %v more=%v", err, more)
	}
	for i, m := range msgs {
		if m.Sequence != uint64(i+1) {
			t.Fatalf("sequence %d at position %d", m.Sequence, i)
		}
	}
	if len(msgs) != 4 {
		t.Fatalf("history has %d messages, want 4 (the dedup stored nothing)", len(msgs))
	}
}

func TestRejectionsChangeNothing(t *testing.T) {
	s := mustOpen(t)
	mustApply(t, s, create(1, "a", "A"))
	before := mustDigest(t, s)
	rs := mustApply(t, s,
		send(2, "missing", "x"),
		Entry{Index: 3, Term: 1, Events: []domain.Event{domain.MessageSent{ChannelID: "a", AuthorID: ""}}},
		create(4, "bad id!", "x"),
		create(5, "ok", ""),
	)
	wantCodes := []string{domain.ENOTFOUND, domain.EINVALID, domain.EINVALID, domain.EINVALID}
	for i, code := range wantCodes {
		if got := domain.ErrorCode(rs[i][0].Err); got != code {
			t.Errorf("entry %d: code %q, want %q (%v)", i, got, code, rs[i][0].Err)
		}
	}
	if after := mustDigest(t, s); after != before {
		t.Fatal("rejected events changed the projection")
	}
	if got := s.AppliedIndex(); got != 5 {
		t.Fatalf("applied index = %d, want 5: rejected entries still count as applied", got)
	}
}

func TestReplayOfAppliedEntriesIsNoOp(t *testing.T) {
	s := mustOpen(t)
	mustApply(t, s, create(1, "a", "A"), send(2, "a", ""), send(3, "a", ""))
	before := mustDigest(t, s)
	rs := mustApply(t, s, create(1, "a", "A"), send(2, "a", ""), send(3, "a", ""))
	for i, r := range rs {
		if r != nil {
			t.Fatalf("replayed entry %d produced results %+v", i, r)
		}
	}
	if mustDigest(t, s) != before {
		t.Fatal("replay changed the projection")
	}
	// A batch straddling the applied index applies only the new part.
	rs = mustApply(t, s, send(3, "a", ""), send(4, "a", ""))
	if rs[0] != nil || rs[1][0].Sequence != 3 {
		t.Fatalf("straddling batch results = %+v", rs)
	}
}

func TestReplayAfterReopenIsNoOp(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	ctx := context.Background()
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, create(1, "a", "A"), send(2, "a", "k"))
	before := mustDigest(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.AppliedIndex() != 2 {
		t.Fatalf("applied index after reopen = %d, want 2", s.AppliedIndex())
	}
	mustApply(t, s, create(1, "a", "A"), send(2, "a", "k"))
	if mustDigest(t, s) != before {
		t.Fatal("replay after reopen changed the projection")
	}
}

// workload is a deterministic mix of events over a few channels.
func workload(n int) []Entry {
	entries := []Entry{create(1, "a", "A"), create(2, "b", "B"), create(3, "", "auto")}
	for i := 0; len(entries) < n; i++ {
		idx := uint64(len(entries) + 1)
		ch := []string{"a", "b", "channel-3", "nope"}[i%4]
		cmid := ""
		if i%3 != 0 {
			cmid = fmt.Sprintf("m%d", i%50) // repeats: exercises dedup
		}
		entries = append(entries, send(idx, ch, cmid))
	}
	return entries
}

func TestBatchApplyEqualsOneByOne(t *testing.T) {
	entries := workload(300)
	one, batch := mustOpen(t), mustOpen(t)
	var oneResults [][]domain.Result
	for _, e := range entries {
		oneResults = append(oneResults, mustApply(t, one, e)...)
	}
	var batchResults [][]domain.Result
	for i := 0; i < len(entries); i += 64 {
		batchResults = append(batchResults, mustApply(t, batch, entries[i:min(i+64, len(entries))]...)...)
	}
	for i := range oneResults {
		if fmt.Sprint(oneResults[i]) != fmt.Sprint(batchResults[i]) {
			t.Fatalf("entry %d: one-by-one %+v, batched %+v", i, oneResults[i], batchResults[i])
		}
	}
	if mustDigest(t, one) != mustDigest(t, batch) {
		t.Fatal("batched and one-by-one projections differ")
	}
}

func TestHistoryPagingAndErrors(t *testing.T) {
	s := mustOpen(t)
	entries := []Entry{create(1, "a", "A")}
	for i := 2; i <= 26; i++ {
		entries = append(entries, send(uint64(i), "a", ""))
	}
	mustApply(t, s, entries...)
	ctx := context.Background()
	msgs, more, err := s.History(ctx, "a", 10, 5, 0)
	if err != nil || !more || len(msgs) != 5 || msgs[0].Sequence != 11 || msgs[4].Sequence != 15 {
		t.Fatalf("page = %d msgs, more=%v, err=%v", len(msgs), more, err)
	}
	msgs, more, err = s.History(ctx, "a", 20, 5, 0)
	if err != nil || more || len(msgs) != 5 || msgs[4].Sequence != 25 {
		t.Fatalf("last page = %d msgs, more=%v, err=%v", len(msgs), more, err)
	}
	// Each payload here is the 1-byte "p": a 3-byte budget stops after three.
	if msgs, more, err := s.History(ctx, "a", 0, 100, 3); err != nil || !more || len(msgs) != 3 {
		t.Fatalf("byte-bounded page = %d msgs, more=%v, err=%v; want 3, true", len(msgs), more, err)
	}
	if msgs, _, err := s.History(ctx, "a", 0, 100, 1); err != nil || len(msgs) != 1 {
		t.Fatalf("a budget smaller than one message must still return one, got %d (%v)", len(msgs), err)
	}
	if msgs[0].AuthorID != "alice" || !msgs[0].CreatedAt.Equal(t0.Add(22)) {
		t.Fatalf("message fields = %+v", msgs[0])
	}
	if msgs, more, err = s.History(ctx, "a", 1000, 5, 0); err != nil || more || len(msgs) != 0 {
		t.Fatalf("past the end = %d msgs, more=%v, err=%v", len(msgs), more, err)
	}
	if _, _, err := s.History(ctx, "zzz", 0, 5, 0); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatalf("unknown channel: %v", err)
	}
	if _, err := s.Channel(ctx, "zzz"); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatalf("unknown channel: %v", err)
	}
}

func TestBackupRestoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	src, dst := mustOpen(t), mustOpen(t)
	mustApply(t, src, workload(200)...)
	mustApply(t, dst, create(1, "stale", "will be discarded"))

	copyPath := filepath.Join(t.TempDir(), "copy.db")
	if err := src.Backup(ctx, copyPath); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(copyPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := dst.Restore(ctx, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if mustDigest(t, src) != mustDigest(t, dst) {
		t.Fatal("restored projection differs from the source")
	}
	if dst.AppliedIndex() != 200 {
		t.Fatalf("restored applied index = %d, want 200", dst.AppliedIndex())
	}
	if _, err := dst.Channel(ctx, "stale"); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatal("restore kept state from before the snapshot")
	}
	// The restored store keeps applying where the copy left off.
	rs := mustApply(t, dst, send(201, "a", "fresh"))
	if rs[0][0].Err != nil || rs[0][0].Sequence == 0 {
		t.Fatalf("apply after restore = %+v", rs[0][0])
	}
}

func TestRestoreRejectsCorruptCopy(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t)
	mustApply(t, s, workload(50)...)
	before := mustDigest(t, s)
	for name, data := range map[string][]byte{
		"garbage":   bytes.Repeat([]byte("not sqlite"), 1000),
		"truncated": truncatedCopy(t, s),
	} {
		if err := s.Restore(ctx, bytes.NewReader(data)); err == nil {
			t.Fatalf("%s: restore accepted a corrupt copy", name)
		} else if errors.Is(err, ErrBroken) {
			t.Fatalf("%s: a rejected copy broke the store: %v", name, err)
		}
		if mustDigest(t, s) != before {
			t.Fatalf("%s: a rejected restore changed the projection", name)
		}
	}
}

func truncatedCopy(t *testing.T, s *Store) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "copy.db")
	if err := s.Backup(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data[:len(data)/2]
}

func mustDigest(tb testing.TB, s *Store) string {
	tb.Helper()
	d, err := s.Digest(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

func TestOpenDetectsCorruptionAndQuarantineMovesItAside(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, workload(300)...)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Damage every page after the first two (the header and schema stay
	// readable, the tables do not).
	for off := 2 * 4096; off+64 < len(data); off += 4096 {
		copy(data[off+8:off+64], bytes.Repeat([]byte{0xa5}, 56))
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, path, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open of a damaged file: %v, want ErrCorrupt", err)
	}
	if err := os.WriteFile(path, []byte("not a database at all, just text"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, path, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open of a non-database: %v, want ErrCorrupt", err)
	}
	moved, err := Quarantine(path, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(moved); err != nil {
		t.Fatalf("quarantined file missing: %v", err)
	}
	fresh, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if fresh.AppliedIndex() != 0 {
		t.Fatalf("fresh projection at index %d", fresh.AppliedIndex())
	}
}
