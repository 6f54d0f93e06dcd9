package fsm

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/raftogram/raftogram/domain"
	"github.com/raftogram/raftogram/fanout"
	"github.com/raftogram/raftogram/projection"
)

func mustFSM(tb testing.TB) (*FSM, *projection.Store, *fanout.Hub) {
	tb.Helper()
	dir := tb.TempDir()
	store, err := projection.Open(context.Background(), filepath.Join(dir, projection.FileName), projection.Options{CommitDelay: time.Hour})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	hub := fanout.New(nil)
	f, err := New(store, hub, filepath.Join(dir, "tmp"), nil)
	if err != nil {
		tb.Fatal(err)
	}
	return f, store, hub
}

func cmd(tb testing.TB, index uint64, events ...domain.Event) *raft.Log {
	tb.Helper()
	data, err := domain.EncodeEvents(events)
	if err != nil {
		tb.Fatal(err)
	}
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}
}

func results(tb testing.TB, resp any) []domain.Result {
	tb.Helper()
	rs, ok := resp.([]domain.Result)
	if !ok {
		tb.Fatalf("response %T, want []domain.Result", resp)
	}
	return rs
}

func TestApplyBatchRespondsPerEntryAndNotifies(t *testing.T) {
	f, store, hub := mustFSM(t)
	sub := hub.Subscribe("a")
	defer sub.Close()
	now := time.Unix(1700000000, 0)
	resp := f.ApplyBatch([]*raft.Log{
		{Index: 1, Term: 1, Type: raft.LogConfiguration},
		cmd(t, 2, domain.ChannelCreated{ChannelID: "a", Name: "A", CreatedAt: now}),
		cmd(t, 3, domain.MessageSent{ChannelID: "a", AuthorID: "u", ClientMessageID: "k", CreatedAt: now},
			domain.MessageSent{ChannelID: "a", AuthorID: "u", ClientMessageID: "k", CreatedAt: now}),
	})
	if len(resp) != 3 {
		t.Fatalf("%d responses for 3 logs", len(resp))
	}
	if rs := results(t, resp[0]); rs != nil {
		t.Fatalf("configuration entry got results %+v", rs)
	}
	if rs := results(t, resp[1]); !rs[0].Created || rs[0].Index != 2 {
		t.Fatalf("create: %+v", rs)
	}
	rs := results(t, resp[2])
	if rs[0].Sequence != 1 || rs[0].Deduplicated || rs[1].Sequence != 1 || !rs[1].Deduplicated || rs[0].Index != 3 || rs[1].Index != 3 {
		t.Fatalf("batched sends: %+v", rs)
	}
	if store.AppliedIndex() != 3 {
		t.Fatalf("applied index %d, want 3", store.AppliedIndex())
	}
	select {
	case <-sub.C:
	default:
		t.Fatal("subscriber of a was not notified")
	}
	// Only the new message is published, not its deduplicated repeat.
	if got, ok := sub.Since(0, 10, 1<<20); !ok || len(got) != 1 || got[0].Sequence != 1 || got[0].ClientMessageID != "k" {
		t.Fatalf("published %+v, %v", got, ok)
	}
}

func TestUndecodableEntryStopsTheNode(t *testing.T) {
	f, _, _ := mustFSM(t)
	defer func() {
		if recover() == nil {
			t.Fatal("an undecodable entry was applied without stopping")
		}
	}()
	f.ApplyBatch([]*raft.Log{{Index: 1, Term: 1, Type: raft.LogCommand, Data: []byte{99, 1, 2}}})
}

// WaitApplied returns once the index is readable: the store defers its
// commits (mustFSM), so it must have flushed.
func TestWaitApplied(t *testing.T) {
	f, store, _ := mustFSM(t)
	done := make(chan error, 1)
	go func() { done <- f.WaitApplied(context.Background(), 2) }()
	f.ApplyBatch([]*raft.Log{cmd(t, 1, domain.ChannelCreated{ChannelID: "a", Name: "A"})})
	select {
	case err := <-done:
		t.Fatalf("WaitApplied(2) returned %v at index 1", err)
	default:
	}
	f.ApplyBatch([]*raft.Log{cmd(t, 2, domain.ChannelCreated{ChannelID: "b", Name: "B"})})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := store.Channel(context.Background(), "b"); err != nil {
		t.Fatalf("entry 2 not readable after WaitApplied(2): %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.WaitApplied(ctx, 99); err == nil {
		t.Fatal("WaitApplied ignored a cancelled context")
	}
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	src, srcStore, _ := mustFSM(t)
	var logs []*raft.Log
	logs = append(logs, cmd(t, 1, domain.ChannelCreated{ChannelID: "a", Name: "A"}))
	for i := uint64(2); i <= 100; i++ {
		logs = append(logs, cmd(t, i, domain.MessageSent{ChannelID: "a", AuthorID: "u", ClientMessageID: fmt.Sprint(i % 30)}))
	}
	src.ApplyBatch(logs)

	snaps := raft.NewInmemSnapshotStore()
	fs, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink, err := snaps.Create(raft.SnapshotVersionMax, 100, 1, raft.Configuration{}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.Persist(sink); err != nil {
		t.Fatal(err)
	}
	fs.Release()
	list, _ := snaps.List()
	_, rc, err := snaps.Open(list[0].ID)
	if err != nil {
		t.Fatal(err)
	}

	dst, dstStore, hub := mustFSM(t)
	sub := hub.Subscribe("a")
	defer sub.Close()
	if err := dst.Restore(rc); err != nil {
		t.Fatal(err)
	}
	want, _ := srcStore.Digest(context.Background())
	got, _ := dstStore.Digest(context.Background())
	if want != got || dstStore.AppliedIndex() != 100 {
		t.Fatalf("restored digest %s index %d, want %s index 100", got, dstStore.AppliedIndex(), want)
	}
	select {
	case <-sub.C:
	default:
		t.Fatal("restore did not wake subscribers")
	}
	// Raft replays entries after the snapshot index it filed; the ones the
	// copy already holds are skipped.
	resp := dst.ApplyBatch(logs[90:])
	for i, r := range resp {
		if results(t, r) != nil {
			t.Fatalf("replayed entry %d applied again", 91+i)
		}
	}
	if d, _ := dstStore.Digest(context.Background()); d != want {
		t.Fatal("replay after restore changed the projection")
	}
}

// brokenStore is a projection whose Restore fails after the swap began and
// whose database is gone from then on, as projection.Store reports it.
type brokenStore struct {
	*projection.Store
	err error
}

func (b *brokenStore) Restore(context.Context, io.Reader) error {
	return fmt.Errorf("restore: %w", b.err)
}

func (b *brokenStore) Apply(context.Context, []projection.Entry) ([][]domain.Result, error) {
	return nil, b.err
}

// A node must stop rather than run without a database: a Restore that
// broke the projection panics, and so does any later Apply, with the
// store's error rather than a nil dereference.
func TestBrokenProjectionStopsTheNode(t *testing.T) {
	_, store, hub := mustFSM(t)
	b := &brokenStore{Store: store, err: fmt.Errorf("%w: reopen after swap: disk gone", projection.ErrBroken)}
	f, err := New(b, hub, filepath.Join(t.TempDir(), "tmp"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func(){
		"Restore":    func() { f.Restore(io.NopCloser(strings.NewReader("snapshot"))) },
		"ApplyBatch": func() { f.ApplyBatch([]*raft.Log{cmd(t, 1, domain.ChannelCreated{ChannelID: "a", Name: "A"})}) },
	} {
		func() {
			defer func() {
				r := recover()
				msg, ok := r.(string)
				if !ok || !strings.Contains(msg, "projection unusable") {
					t.Errorf("%s on a broken projection: recovered %v (%T), want a panic naming the store's error", name, r, r)
				}
			}()
			call()
		}()
	}
}

// An idempotency conflict is a deterministic rejection: in one batch and
// across batches, the repeat with another author or payload gets EEXISTS,
// is not published, and only the applied index moves.
func TestApplyBatchIdempotencyConflict(t *testing.T) {
	f, store, hub := mustFSM(t)
	sub := hub.Subscribe("a")
	defer sub.Close()
	now := time.Unix(1700000000, 0)
	send := func(author, payload string) domain.MessageSent {
		return domain.MessageSent{ChannelID: "a", AuthorID: author, Payload: []byte(payload), ClientMessageID: "k", CreatedAt: now}
	}
	resp := f.ApplyBatch([]*raft.Log{
		cmd(t, 1, domain.ChannelCreated{ChannelID: "a", Name: "A", CreatedAt: now}),
		cmd(t, 2, send("u", "hi"), send("u", "hi")),
		cmd(t, 3, send("u", "bye")),
	})
	if rs := results(t, resp[1]); rs[0].Sequence != 1 || rs[0].Deduplicated || !rs[1].Deduplicated || rs[1].Sequence != 1 {
		t.Fatalf("send and identical repeat: %+v", rs)
	}
	if rs := results(t, resp[2]); domain.ErrorCode(rs[0].Err) != domain.EEXISTS || rs[0].Index != 3 || rs[0].Sequence != 0 {
		t.Fatalf("repeat with another payload in the batch: %+v", rs)
	}
	before, err := store.Digest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	resp = f.ApplyBatch([]*raft.Log{cmd(t, 4, send("v", "hi")), cmd(t, 5, send("u", "hi"))})
	if rs := results(t, resp[0]); domain.ErrorCode(rs[0].Err) != domain.EEXISTS || !strings.Contains(rs[0].Err.Error(), "another author") {
		t.Fatalf("repeat by another author: %+v", rs)
	}
	if rs := results(t, resp[1]); rs[0].Err != nil || rs[0].Sequence != 1 || !rs[0].Deduplicated {
		t.Fatalf("identical repeat in a later batch: %+v", rs)
	}
	if store.AppliedIndex() != 5 {
		t.Fatalf("applied index %d, want 5", store.AppliedIndex())
	}
	if after, err := store.Digest(context.Background()); err != nil || after != before {
		t.Fatalf("the conflict changed the state (%v)", err)
	}
	if got, ok := sub.Since(0, 10, 1<<20); !ok || len(got) != 1 || string(got[0].Payload) != "hi" {
		t.Fatalf("published %+v, %v; want only the original", got, ok)
	}
}
