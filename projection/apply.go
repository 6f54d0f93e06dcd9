package projection

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/raftogram/raftogram/domain"
)

// Entry is one committed Raft log entry to apply. Events is empty for
// entries that carry none (configuration changes): they only advance the
// applied index.
type Entry struct {
	Index  uint64
	Term   uint64
	Events []domain.Event
}

type writeStmts struct {
	getChannel, insertChannel, bumpSequence *sql.Stmt
	getDedup, insertDedup, insertMessage    *sql.Stmt
	setApplied                              *sql.Stmt
}

func prepareWrites(ctx context.Context, db *sql.DB) (writeStmts, error) {
	var s writeStmts
	var err error
	prep := func(dst **sql.Stmt, query string) {
		if err == nil {
			*dst, err = db.PrepareContext(ctx, query)
		}
	}
	prep(&s.getChannel, `SELECT name, created_at, last_sequence FROM channels WHERE channel_id = ?`)
	prep(&s.insertChannel, `INSERT INTO channels (channel_id, name, created_at, created_index) VALUES (?, ?, ?, ?)`)
	prep(&s.bumpSequence, `UPDATE channels SET last_sequence = ? WHERE channel_id = ?`)
	prep(&s.getDedup, `SELECT sequence FROM dedup WHERE channel_id = ? AND client_message_id = ?`)
	prep(&s.insertDedup, `INSERT INTO dedup (channel_id, client_message_id, sequence) VALUES (?, ?, ?)`)
	prep(&s.insertMessage, `INSERT INTO messages (channel_id, sequence, author_id, payload, client_message_id, created_at, raft_index)
		VALUES (?, ?, ?, ?, ?, ?, ?)`)
	prep(&s.setApplied, `UPDATE raft_applied SET applied_index = ?, applied_term = ? WHERE id = 1`)
	if err != nil {
		s.close()
		return writeStmts{}, err
	}
	return s, nil
}

func (s writeStmts) close() {
	for _, st := range []*sql.Stmt{s.getChannel, s.insertChannel, s.bumpSequence, s.getDedup, s.insertDedup, s.insertMessage, s.setApplied} {
		if st != nil {
			st.Close()
		}
	}
}

// Apply applies entries, in order, in one transaction that also records the
// last entry's index as applied. Entries at or below the applied index were
// applied before (a replay after restart or snapshot install) and are
// skipped. It returns one []domain.Result per entry, nil for skipped
// entries; a domain rejection is a Result.Err, not an error. A returned
// error is an I/O failure: nothing of the batch was applied and the node
// must stop, because Raft will not offer the entries again.
func (s *Store) Apply(ctx context.Context, entries []Entry) ([][]domain.Result, error) {
	results := make([][]domain.Result, len(entries))
	applied := s.applied.Load()
	var last *Entry
	for i := range entries {
		if entries[i].Index > applied {
			last = &entries[i]
		}
	}
	if last == nil {
		return results, nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("apply: begin: %w", err)
	}
	defer tx.Rollback()
	a := newApplier(ctx, tx, s.stmts)
	for i, e := range entries {
		if e.Index <= applied {
			continue
		}
		if len(e.Events) == 0 {
			continue
		}
		rs := make([]domain.Result, len(e.Events))
		for j, ev := range e.Events {
			if rs[j], err = a.apply(e.Index, j, ev); err != nil {
				return nil, fmt.Errorf("apply index %d event %d: %w", e.Index, j, err)
			}
		}
		results[i] = rs
	}
	if err := a.flushSequences(); err != nil {
		return nil, fmt.Errorf("apply: %w", err)
	}
	if _, err := a.st.setApplied.ExecContext(ctx, last.Index, last.Term); err != nil {
		return nil, fmt.Errorf("apply: record applied index %d: %w", last.Index, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("apply: commit through index %d: %w", last.Index, err)
	}
	s.applied.Store(last.Index)
	return results, nil
}

// applier applies events inside one transaction. Its methods return an
// error only for I/O failures; rejections go into the Result.
//
// It keeps each touched channel's last sequence in memory for the length of
// the transaction and writes it back once, in flushSequences, rather than
// once per message.
type applier struct {
	ctx   context.Context
	st    writeStmts // bound to the transaction
	last  map[string]uint64
	dirty map[string]bool
}

func newApplier(ctx context.Context, tx *sql.Tx, st writeStmts) *applier {
	bind := func(s *sql.Stmt) *sql.Stmt { return tx.StmtContext(ctx, s) }
	return &applier{
		ctx: ctx,
		st: writeStmts{
			getChannel: bind(st.getChannel), insertChannel: bind(st.insertChannel), bumpSequence: bind(st.bumpSequence),
			getDedup: bind(st.getDedup), insertDedup: bind(st.insertDedup), insertMessage: bind(st.insertMessage),
			setApplied: bind(st.setApplied),
		},
		last:  map[string]uint64{},
		dirty: map[string]bool{},
	}
}

// flushSequences writes back the last sequence of every channel that got
// messages in this transaction.
func (a *applier) flushSequences() error {
	for id := range a.dirty {
		if _, err := a.st.bumpSequence.ExecContext(a.ctx, a.last[id], id); err != nil {
			return fmt.Errorf("update last_sequence of %q: %w", id, err)
		}
	}
	return nil
}

func (a *applier) apply(index uint64, pos int, ev domain.Event) (domain.Result, error) {
	if err := domain.Validate(ev); err != nil {
		return domain.Result{Err: err}, nil
	}
	switch ev := ev.(type) {
	case domain.ChannelCreated:
		return a.createChannel(index, pos, ev)
	case domain.MessageSent:
		return a.sendMessage(index, ev)
	default:
		return domain.Result{Err: domain.Errorf(domain.EINVALID, "unknown event %T", ev)}, nil
	}
}

// AssignedChannelID returns the id the state machine gives a channel created
// without one by event pos of the entry at index: "channel-<index>", with
// ".<pos>" appended for any event but the first of a batched entry.
func AssignedChannelID(index uint64, pos int) string {
	if pos == 0 {
		return fmt.Sprintf("channel-%d", index)
	}
	return fmt.Sprintf("channel-%d.%d", index, pos)
}

func (a *applier) createChannel(index uint64, pos int, ev domain.ChannelCreated) (domain.Result, error) {
	id := ev.ChannelID
	if id == "" {
		id = AssignedChannelID(index, pos)
	}
	ch, err := a.channel(id)
	switch {
	case err == nil:
		return domain.Result{Channel: ch, Created: false}, nil
	case !errors.Is(err, sql.ErrNoRows):
		return domain.Result{}, err
	}
	if _, err := a.st.insertChannel.ExecContext(a.ctx, id, ev.Name, ev.CreatedAt.UnixNano(), index); err != nil {
		return domain.Result{}, fmt.Errorf("insert channel: %w", err)
	}
	ch = domain.Channel{ID: id, Name: ev.Name, CreatedAt: ev.CreatedAt.UTC()}
	return domain.Result{Channel: ch, Created: true}, nil
}

func (a *applier) channel(id string) (domain.Channel, error) {
	ch := domain.Channel{ID: id}
	var created int64
	err := a.st.getChannel.QueryRowContext(a.ctx, id).Scan(&ch.Name, &created, &ch.LastSequence)
	if err != nil {
		return domain.Channel{}, err
	}
	ch.CreatedAt = time.Unix(0, created).UTC()
	if seq, ok := a.last[id]; ok {
		ch.LastSequence = seq
	}
	return ch, nil
}

// lastSequence returns the channel's last sequence, whether it exists, or an
// I/O error.
func (a *applier) lastSequence(id string) (uint64, bool, error) {
	if seq, ok := a.last[id]; ok {
		return seq, true, nil
	}
	ch, err := a.channel(id)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("read channel: %w", err)
	}
	a.last[id] = ch.LastSequence
	return ch.LastSequence, true, nil
}

func (a *applier) sendMessage(index uint64, ev domain.MessageSent) (domain.Result, error) {
	last, ok, err := a.lastSequence(ev.ChannelID)
	switch {
	case err != nil:
		return domain.Result{}, err
	case !ok:
		return domain.Result{Err: domain.Errorf(domain.ENOTFOUND, "channel %q not found", ev.ChannelID)}, nil
	}
	if ev.ClientMessageID != "" {
		var seq uint64
		err := a.st.getDedup.QueryRowContext(a.ctx, ev.ChannelID, ev.ClientMessageID).Scan(&seq)
		switch {
		case err == nil:
			return domain.Result{Sequence: seq, Deduplicated: true}, nil
		case !errors.Is(err, sql.ErrNoRows):
			return domain.Result{}, fmt.Errorf("read dedup: %w", err)
		}
	}
	seq := last + 1
	payload := ev.Payload
	if payload == nil {
		payload = []byte{}
	}
	if _, err := a.st.insertMessage.ExecContext(a.ctx, ev.ChannelID, seq, ev.AuthorID, payload,
		ev.ClientMessageID, ev.CreatedAt.UnixNano(), index); err != nil {
		return domain.Result{}, fmt.Errorf("insert message: %w", err)
	}
	if ev.ClientMessageID != "" {
		if _, err := a.st.insertDedup.ExecContext(a.ctx, ev.ChannelID, ev.ClientMessageID, seq); err != nil {
			return domain.Result{}, fmt.Errorf("insert dedup: %w", err)
		}
	}
	a.last[ev.ChannelID] = seq
	a.dirty[ev.ChannelID] = true
	return domain.Result{Sequence: seq}, nil
}
