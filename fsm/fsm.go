// Package fsm is the Raft adapter: it turns committed log entries into
// projection transactions, one per batch, and snapshots the projection as a
// SQLite file copy.
//
// Apply is deterministic: every value it stores comes from the event (the
// leader stamped times and ids before raft.Apply) or from the projection's
// own state in log order. It reads no clock and no randomness.
package fsm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/raftogram/raftogram/domain"
	"github.com/raftogram/raftogram/projection"
)

// Projection is what the FSM applies entries to (a *projection.Store).
type Projection interface {
	Apply(ctx context.Context, entries []projection.Entry) ([][]domain.Result, error)
	AppliedIndex() uint64
	CommittedIndex() uint64
	Flush(ctx context.Context) error
	Backup(ctx context.Context, dst string) error
	Restore(ctx context.Context, src io.Reader) error
}

// Notifier hears about commits (a *fanout.Hub).
type Notifier interface {
	Publish(msgs []domain.Message) // new messages of one committed batch, in order
	Forget(channelID string)       // messages of the channel were redacted or deleted
	Reset()                        // the whole projection was replaced
}

// FSM implements raft.BatchingFSM over a Projection. The response of every
// command entry is a []domain.Result, one per event, each carrying the
// entry's index, or nil when the entry had been applied before.
type FSM struct {
	store  Projection
	notify Notifier
	tmpDir string
	log    *slog.Logger

	mu      sync.Mutex
	applied chan struct{} // closed and replaced after every apply or restore

	applyingSince atomic.Int64 // UnixNano when the running ApplyBatch began; 0 between batches
}

var _ raft.BatchingFSM = (*FSM)(nil)

// New returns an FSM applying into store, ringing notify after each commit
// and writing snapshot copies under tmpDir, which it creates and clears of
// copies left by an earlier crash. It returns an error if tmpDir is unusable.
func New(store Projection, notify Notifier, tmpDir string, log *slog.Logger) (*FSM, error) {
	if err := os.MkdirAll(tmpDir, 0o755); err != nil {
		return nil, fmt.Errorf("fsm: create %s: %w", tmpDir, err)
	}
	stale, err := filepath.Glob(filepath.Join(tmpDir, "snapshot-*.db"))
	if err != nil {
		return nil, fmt.Errorf("fsm: list stale snapshot copies: %w", err)
	}
	for _, p := range stale {
		if err := os.Remove(p); err != nil {
			return nil, fmt.Errorf("fsm: remove stale snapshot copy: %w", err)
		}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &FSM{store: store, notify: notify, tmpDir: tmpDir, log: log, applied: make(chan struct{})}, nil
}

// AppliedIndex returns the last log index applied to the projection.
func (f *FSM) AppliedIndex() uint64 { return f.store.AppliedIndex() }

// CommittedIndex returns the last log index committed to the projection's
// file: readable without a flush. It trails AppliedIndex by at most the
// store's commit delay (longer only while an Apply outlasts it).
func (f *FSM) CommittedIndex() uint64 { return f.store.CommittedIndex() }

// WaitApplied blocks until the projection has applied index and made it
// visible to reads (committing its open transaction if need be), returning
// nil; or until ctx ends, returning ctx's error; or returns the I/O error of
// a failed commit.
func (f *FSM) WaitApplied(ctx context.Context, index uint64) error {
	for {
		f.mu.Lock()
		ch := f.applied
		f.mu.Unlock()
		if f.store.AppliedIndex() >= index {
			if err := f.store.Flush(ctx); err != nil {
				return fmt.Errorf("wait for index %d: %w", index, err)
			}
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for index %d: %w", index, ctx.Err())
		}
	}
}

func (f *FSM) wake() {
	f.mu.Lock()
	close(f.applied)
	f.applied = make(chan struct{})
	f.mu.Unlock()
}

// Apply applies one entry; raft calls ApplyBatch instead.
func (f *FSM) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies logs to the projection, publishes their new messages
// and returns one response per log. The messages are published before the
// projection commits them: they are committed in the Raft log, and whoever
// reads the projection for them flushes it first (WaitApplied, Subscribe). An undecodable entry or a failed transaction panics:
// raft never offers an entry twice, so continuing would diverge from the
// other nodes. Restarting replays the entry from the durable log.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	f.applyingSince.Store(time.Now().UnixNano())
	defer f.applyingSince.Store(0)
	applied := f.store.AppliedIndex()
	entries := make([]projection.Entry, len(logs))
	for i, l := range logs {
		entries[i] = projection.Entry{Index: l.Index, Term: l.Term}
		if l.Type != raft.LogCommand || l.Index <= applied {
			continue
		}
		events, err := domain.DecodeEvents(l.Data)
		if err != nil {
			f.fatal(fmt.Errorf("log entry %d: %w", l.Index, err))
		}
		entries[i].Events = events
	}
	results, err := f.store.Apply(context.Background(), entries)
	if err != nil {
		f.fatal(err)
	}
	resp := make([]any, len(logs))
	var published []domain.Message
	var forget map[string]bool   // channels with a deletion or redaction in this batch
	var redacted map[msgKey]bool // (channel, sequence) keys redacted in this batch
	for i := range entries {
		for j := range results[i] {
			results[i][j].Index = entries[i].Index
		}
		resp[i] = results[i]
		for j, r := range results[i] {
			if r.Err != nil {
				continue
			}
			switch ev := entries[i].Events[j].(type) {
			case domain.MessageSent:
				if !r.Deduplicated {
					published = append(published, domain.Message{
						ChannelID: ev.ChannelID, Sequence: r.Sequence, AuthorID: ev.AuthorID, Payload: ev.Payload,
						ClientMessageID: ev.ClientMessageID, CreatedAt: ev.CreatedAt,
					})
				}
			case domain.ChannelDeleted:
				if r.Deleted {
					forget = setOf(forget, ev.ChannelID)
				}
			case domain.MessageRedacted:
				if r.Redacted {
					forget = setOf(forget, ev.ChannelID)
					if redacted == nil {
						redacted = map[msgKey]bool{}
					}
					redacted[msgKey{ev.ChannelID, ev.Sequence}] = true
				}
			}
		}
	}
	f.wake()
	if len(forget) > 0 {
		// Windows first, so no subscriber reads a redacted payload or a
		// deleted channel's message from them afterwards; then the batch's
		// own messages, redacted ones blanked and those of deleted channels
		// left to the projection.
		for id := range forget {
			f.notify.Forget(id)
		}
		kept := published[:0]
		for _, m := range published {
			if forget[m.ChannelID] && deletedIn(entries, m.ChannelID) {
				continue
			}
			if redacted[msgKey{m.ChannelID, m.Sequence}] {
				m.Payload, m.Redacted = nil, true
			}
			kept = append(kept, m)
		}
		published = kept
	}
	if len(published) > 0 {
		f.notify.Publish(published)
	}
	return resp
}

// msgKey names one message.
type msgKey struct {
	channelID string
	sequence  uint64
}

func setOf(m map[string]bool, id string) map[string]bool {
	if m == nil {
		m = map[string]bool{}
	}
	m[id] = true
	return m
}

// deletedIn reports whether entries delete the channel id.
func deletedIn(entries []projection.Entry, id string) bool {
	for _, e := range entries {
		for _, ev := range e.Events {
			if d, ok := ev.(domain.ChannelDeleted); ok && d.ChannelID == id {
				return true
			}
		}
	}
	return false
}

// ApplyingSince returns when the ApplyBatch now running began, or the zero
// time between batches (what /livez reads to tell a stuck apply loop from
// an idle one).
func (f *FSM) ApplyingSince() time.Time {
	if ns := f.applyingSince.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

func (f *FSM) fatal(err error) {
	f.log.Error("state machine cannot continue; stopping the node", "error", err)
	panic(fmt.Sprintf("fsm: %v", err))
}

// Snapshot commits the projection's open transaction and returns a handle
// whose Persist copies the projection; the copy happens in Persist,
// concurrently with Apply. It returns the commit's I/O error.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	if err := f.store.Flush(context.Background()); err != nil {
		return nil, fmt.Errorf("fsm snapshot: %w", err)
	}
	return &snapshot{f: f}, nil
}

// Restore replaces the projection with a snapshot copy and wakes every
// subscriber. A copy that fails verification leaves the projection as it
// was and returns the error; a failure after the swap panics.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	err := f.store.Restore(context.Background(), rc)
	if errors.Is(err, projection.ErrBroken) {
		f.fatal(err)
	}
	if err != nil {
		return fmt.Errorf("fsm restore: %w", err)
	}
	f.wake()
	f.notify.Reset()
	return nil
}

type snapshot struct{ f *FSM }

// Persist writes a VACUUM INTO copy of the projection to sink. The copy may
// include entries past the index raft files it under; replaying them after a
// restore is harmless because the projection skips indexes it has applied.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	tmp := filepath.Join(s.f.tmpDir, "snapshot-"+strings.ReplaceAll(sink.ID(), string(filepath.Separator), "_")+".db")
	defer os.Remove(tmp)
	start := time.Now()
	size, err := s.persist(tmp, sink)
	if err != nil {
		sink.Cancel()
		s.f.log.Error("snapshot failed", "id", sink.ID(), "error", err)
		return err
	}
	if err := sink.Close(); err != nil {
		s.f.log.Error("snapshot failed", "id", sink.ID(), "error", err)
		return err
	}
	s.f.log.Info("snapshot persisted", "id", sink.ID(), "bytes", size, "duration", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// persist copies the projection into sink through tmp and returns the
// copy's size.
func (s *snapshot) persist(tmp string, sink raft.SnapshotSink) (int64, error) {
	if err := s.f.store.Backup(context.Background(), tmp); err != nil {
		return 0, fmt.Errorf("snapshot: %w", err)
	}
	file, err := os.Open(tmp)
	if err != nil {
		return 0, fmt.Errorf("snapshot: %w", err)
	}
	defer file.Close()
	n, err := io.Copy(sink, file)
	if err != nil {
		return 0, fmt.Errorf("snapshot: write sink: %w", err)
	}
	return n, nil
}

// Release is a no-op: Persist removes its own temporary copy.
func (s *snapshot) Release() {}
