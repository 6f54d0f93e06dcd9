package projection

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"strings"
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

// writeStmts are the writer connection's prepared statements. The
// multi-row ones come in the sizes of rowChunks: a batch of n rows is
// written with the fewest statements whose sizes add up to n.
type writeStmts struct {
	getChannel, insertChannel, bumpSequence, setApplied *sql.Stmt
	getDedup, insertDedup, insertMessages               map[int]*sql.Stmt // by rows
}

// rowChunks are the row counts of the multi-row statements, largest first.
// 64 message rows take 448 parameters, well under SQLite's limit.
var rowChunks = []int{64, 16, 4, 1}

func prepareWrites(ctx context.Context, db *sql.DB) (writeStmts, error) {
	s := writeStmts{getDedup: map[int]*sql.Stmt{}, insertDedup: map[int]*sql.Stmt{}, insertMessages: map[int]*sql.Stmt{}}
	var err error
	prep := func(query string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var st *sql.Stmt
		st, err = db.PrepareContext(ctx, query)
		return st
	}
	s.getChannel = prep(`SELECT name, created_at, last_sequence, max_messages, max_age, max_bytes, retained_bytes, trimmed_through
		FROM channels WHERE channel_id = ?`)
	s.insertChannel = prep(`INSERT INTO channels (channel_id, name, created_at, created_index, max_messages, max_age, max_bytes)
		VALUES (?, ?, ?, ?, ?, ?, ?)`)
	s.bumpSequence = prep(`UPDATE channels SET last_sequence = ?, retained_bytes = ?, trimmed_through = ? WHERE channel_id = ?`)
	s.setApplied = prep(`UPDATE raft_applied SET applied_index = ?, applied_term = ? WHERE id = 1`)
	for _, n := range rowChunks {
		// The CROSS JOIN makes SQLite probe the primary key once per
		// wanted key instead of scanning the table.
		s.getDedup[n] = prep(`SELECT d.channel_id, d.client_message_id, d.sequence, d.author_id, d.payload_sha256 FROM (VALUES ` +
			rowPlaceholders(n, 2) + `) AS k CROSS JOIN dedup AS d ON d.channel_id = k.column1 AND d.client_message_id = k.column2`)
		// OR FAIL: a conflict would be a bug that breaks the store anyway
		// (the whole transaction rolls back), and unlike the default ABORT
		// it spares SQLite a statement journal for every multi-row insert.
		s.insertDedup[n] = prep(`INSERT OR FAIL INTO dedup (channel_id, client_message_id, sequence, author_id, payload_sha256) VALUES ` +
			rowPlaceholders(n, dedupCols))
		s.insertMessages[n] = prep(`INSERT OR FAIL INTO messages (channel_id, sequence, author_id, payload, client_message_id, created_at, raft_index) VALUES ` +
			rowPlaceholders(n, 7))
	}
	if err != nil {
		s.close()
		return writeStmts{}, err
	}
	return s, nil
}

// rowPlaceholders returns "(?, ?), (?, ?)" for rows=2, cols=2.
func rowPlaceholders(rows, cols int) string {
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", cols), ", ") + ")"
	return strings.TrimSuffix(strings.Repeat(row+", ", rows), ", ")
}

func (s writeStmts) all() []*sql.Stmt {
	out := []*sql.Stmt{s.getChannel, s.insertChannel, s.bumpSequence, s.setApplied}
	for _, m := range []map[int]*sql.Stmt{s.getDedup, s.insertDedup, s.insertMessages} {
		for _, st := range m {
			out = append(out, st)
		}
	}
	return out
}

func (s writeStmts) close() {
	for _, st := range s.all() {
		if st != nil {
			st.Close()
		}
	}
}

// Apply applies entries, in order, and returns one []domain.Result per
// entry, nil for skipped entries; a domain rejection is a Result.Err, not an
// error. Entries at or below the applied index were applied before (a
// replay after restart or snapshot install) and are skipped. The effects go
// into the open transaction (see Flush): readers see them once it commits,
// together with the last entry's index as applied. It returns ctx's error
// if ctx has ended before anything is written; any other error wraps
// ErrBroken: an I/O failure (or an earlier one, or a Restore that could not
// reopen the database), after which the open transaction is rolled back
// and the node must stop, because Raft will not offer the entries again (it
// replays them from its log after a restart).
func (s *Store) Apply(ctx context.Context, entries []Entry) ([][]domain.Result, error) {
	results := make([][]domain.Result, len(entries))
	s.wmu.Lock()
	defer s.wmu.Unlock()
	start := time.Now()
	if err := s.brokenErr(); err != nil {
		return nil, err
	}
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
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := s.beginLocked()
	if err != nil {
		return nil, s.breakLocked(err)
	}
	if s.hooks.applyBegun != nil {
		s.hooks.applyBegun()
	}
	if err := p.a.prefetchDedup(entries, applied); err != nil {
		return nil, s.breakLocked(fmt.Errorf("apply through index %d: %w", last.Index, err))
	}
	for i, e := range entries {
		if e.Index <= applied || len(e.Events) == 0 {
			continue
		}
		rs := make([]domain.Result, len(e.Events))
		for j, ev := range e.Events {
			if rs[j], err = p.a.apply(e.Index, j, ev); err != nil {
				return nil, s.breakLocked(fmt.Errorf("apply index %d event %d: %w", e.Index, j, err))
			}
		}
		results[i] = rs
		p.events += len(e.Events)
	}
	if err := p.a.writeRows(); err != nil {
		return nil, s.breakLocked(fmt.Errorf("apply through index %d: %w", last.Index, err))
	}
	p.index, p.term = last.Index, last.Term
	s.applied.Store(last.Index)
	if s.observer != nil {
		s.observer.ObserveApply(len(entries), time.Since(start))
	}
	if s.commitDelay <= 0 || p.events >= maxPendingEvents {
		if err := s.commitLocked(); err != nil {
			return nil, err
		}
	}
	return results, nil
}

// applier applies events inside one transaction. Its methods return an
// error only for I/O failures; rejections go into the Result.
//
// It keeps each touched channel's last sequence, byte total and retention
// in memory for the length of the transaction and trims and writes them back
// once, in flushChannels before the commit, rather than once per message. New messages and dedup rows are
// buffered and written by writeRows with multi-row statements; the dedup
// keys an Apply call needs are looked up together first (prefetchDedup).
type applier struct {
	ctx   context.Context
	tx    *sql.Tx
	st    writeStmts              // prepared on the writer connection
	bound map[*sql.Stmt]*sql.Stmt // st's statements bound to tx, as used
	chans map[string]*chanState
	dirty map[string]bool
	// horizon is the dedup horizon (retention_settings), once read.
	horizon    time.Duration
	horizonSet bool

	// Per Apply call: the dedup row of every key looked up or assigned,
	// and the rows not yet written.
	known    map[dedupKey]dedupRow
	messages []any // insertMessages arguments, 7 per row
	dedups   []any // insertDedup arguments, dedupCols per row
}

type dedupKey struct{ channelID, clientMessageID string }

// dedupRow is what a dedup row remembers of the message that took its key.
// An unknown author or payload hash (rows migrated from before schema 4
// have no hash) is not compared: a repeat counts as identical in it.
type dedupRow struct {
	sequence    uint64
	author      sql.NullString
	payloadHash []byte // SHA-256 of the payload; nil: unknown
}

// dedupCols is the number of insertDedup arguments per row.
const dedupCols = 5

func newApplier(ctx context.Context, tx *sql.Tx, st writeStmts) *applier {
	return &applier{ctx: ctx, tx: tx, st: st, bound: map[*sql.Stmt]*sql.Stmt{},
		chans: map[string]*chanState{}, dirty: map[string]bool{}, known: map[dedupKey]dedupRow{}}
}

// stmt returns st bound to the transaction.
func (a *applier) stmt(st *sql.Stmt) *sql.Stmt {
	b, ok := a.bound[st]
	if !ok {
		b = a.tx.StmtContext(a.ctx, st)
		a.bound[st] = b
	}
	return b
}

// exec runs the multi-row statement family stmts over args, cols per row,
// with the fewest statements.
func (a *applier) exec(stmts map[int]*sql.Stmt, cols int, args []any) error {
	return inChunks(args, cols, func(n int, chunk []any) error {
		_, err := a.stmt(stmts[n]).ExecContext(a.ctx, chunk...)
		return err
	})
}

// inChunks calls fn with consecutive runs of args, cols per row, each the
// largest of rowChunks rows that fits what is left, and returns fn's first
// error.
func inChunks(args []any, cols int, fn func(rows int, chunk []any) error) error {
	for rows := len(args) / cols; rows > 0; {
		n := 1
		for _, size := range rowChunks {
			if size <= rows {
				n = size
				break
			}
		}
		if err := fn(n, args[:n*cols]); err != nil {
			return err
		}
		args, rows = args[n*cols:], rows-n
	}
	return nil
}

// prefetchDedup looks up, in a few statements, the stored dedup row of every
// client_message_id that entries after applied send to an existing channel.
func (a *applier) prefetchDedup(entries []Entry, applied uint64) error {
	clear(a.known)
	var keys []any
	seen := map[dedupKey]bool{}
	for _, e := range entries {
		if e.Index <= applied {
			continue
		}
		for _, ev := range e.Events {
			m, ok := ev.(domain.MessageSent)
			if !ok || m.ClientMessageID == "" {
				continue
			}
			k := dedupKey{m.ChannelID, m.ClientMessageID}
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k.channelID, k.clientMessageID)
			}
		}
	}
	err := inChunks(keys, 2, func(n int, chunk []any) error {
		return a.queryDedup(a.stmt(a.st.getDedup[n]), chunk)
	})
	if err != nil {
		return fmt.Errorf("read dedup: %w", err)
	}
	return nil
}

func (a *applier) queryDedup(st *sql.Stmt, args []any) error {
	rows, err := st.QueryContext(a.ctx, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k dedupKey
		var d dedupRow
		if err := rows.Scan(&k.channelID, &k.clientMessageID, &d.sequence, &d.author, &d.payloadHash); err != nil {
			return err
		}
		a.known[k] = d
	}
	return rows.Err()
}

// writeRows writes the buffered messages and dedup rows.
func (a *applier) writeRows() error {
	if err := a.exec(a.st.insertMessages, 7, a.messages); err != nil {
		return fmt.Errorf("insert messages: %w", err)
	}
	if err := a.exec(a.st.insertDedup, dedupCols, a.dedups); err != nil {
		return fmt.Errorf("insert dedup: %w", err)
	}
	clear(a.messages) // drop payload references
	clear(a.dedups)
	a.messages, a.dedups = a.messages[:0], a.dedups[:0]
	return nil
}

// flushChannels trims every channel changed in this transaction to its
// retention and writes back its last sequence, byte total and trimmed
// sequence. The rows buffered must have been written (writeRows).
func (a *applier) flushChannels() error {
	for id := range a.dirty {
		st := a.chans[id]
		if _, err := a.trim(id, st, st.retentionCut()); err != nil {
			return err
		}
		if _, err := a.stmt(a.st.bumpSequence).ExecContext(a.ctx, st.last, st.bytes, st.trimmed, id); err != nil {
			return fmt.Errorf("update channel %q: %w", id, err)
		}
	}
	clear(a.dirty)
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
	case domain.ChannelUpdated:
		return a.updateChannel(ev)
	case domain.ChannelDeleted:
		return a.deleteChannel(index, ev)
	case domain.MessageRedacted:
		return a.redactMessage(ev)
	case domain.MessagesExpired:
		return a.expire(ev)
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
	r := ev.Retention
	if _, err := a.stmt(a.st.insertChannel).ExecContext(a.ctx, id, ev.Name, ev.CreatedAt.UnixNano(), index,
		int64(r.MaxMessages), int64(r.MaxAge), int64(r.MaxBytes)); err != nil {
		return domain.Result{}, fmt.Errorf("insert channel: %w", err)
	}
	if err := a.reviveSequence(id); err != nil {
		return domain.Result{}, err
	}
	ch = domain.Channel{ID: id, Name: ev.Name, CreatedAt: ev.CreatedAt.UTC(), Retention: r}
	return domain.Result{Channel: ch, Created: true}, nil
}

// channel returns the stored channel with its in-memory state of this
// transaction (sql.ErrNoRows when there is none), caching the state.
func (a *applier) channel(id string) (domain.Channel, error) {
	ch := domain.Channel{ID: id}
	var created, maxMessages, maxAge, maxBytes int64
	var st chanState
	err := a.stmt(a.st.getChannel).QueryRowContext(a.ctx, id).Scan(&ch.Name, &created, &st.last,
		&maxMessages, &maxAge, &maxBytes, &st.bytes, &st.trimmed)
	if err != nil {
		return domain.Channel{}, err
	}
	ch.CreatedAt = time.Unix(0, created).UTC()
	if cached, ok := a.chans[id]; ok {
		st = *cached
	} else {
		st.ret = domain.Retention{MaxMessages: uint64(maxMessages), MaxAge: time.Duration(maxAge), MaxBytes: uint64(maxBytes)}
		a.chans[id] = &st
	}
	ch.LastSequence, ch.Retention, ch.TrimmedThrough = st.last, st.ret, st.trimmed
	return ch, nil
}

// state returns the channel's state for this transaction, nil when the
// channel does not exist, or an I/O error.
func (a *applier) state(id string) (*chanState, error) {
	if st, ok := a.chans[id]; ok {
		return st, nil
	}
	_, err := a.channel(id)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read channel: %w", err)
	}
	return a.chans[id], nil
}

func (a *applier) sendMessage(index uint64, ev domain.MessageSent) (domain.Result, error) {
	st, err := a.state(ev.ChannelID)
	switch {
	case err != nil:
		return domain.Result{}, err
	case st == nil:
		return domain.Result{Err: domain.Errorf(domain.ENOTFOUND, "channel %q not found", ev.ChannelID)}, nil
	}
	key := dedupKey{ev.ChannelID, ev.ClientMessageID}
	var hash []byte
	if ev.ClientMessageID != "" {
		sum := sha256.Sum256(ev.Payload)
		hash = sum[:]
		if d, ok := a.known[key]; ok {
			return repeat(ev, d, hash), nil
		}
	}
	seq := st.last + 1
	payload := ev.Payload
	if payload == nil {
		payload = []byte{}
	}
	a.messages = append(a.messages, ev.ChannelID, seq, ev.AuthorID, payload, ev.ClientMessageID, ev.CreatedAt.UnixNano(), index)
	if ev.ClientMessageID != "" {
		a.dedups = append(a.dedups, ev.ChannelID, ev.ClientMessageID, seq, ev.AuthorID, hash)
		a.known[key] = dedupRow{sequence: seq, author: sql.NullString{String: ev.AuthorID, Valid: true}, payloadHash: hash}
	}
	st.last = seq
	st.bytes += uint64(len(payload))
	a.dirty[ev.ChannelID] = true
	return domain.Result{Sequence: seq}, nil
}

// repeat answers a send whose client_message_id already has dedup row d:
// the original sequence, deduplicated, if the send is identical (same
// author, same payload hash: fields the row does not know are not
// compared), otherwise an EEXISTS rejection that names the conflict and
// changes nothing.
func repeat(ev domain.MessageSent, d dedupRow, hash []byte) domain.Result {
	var what string
	switch {
	case d.author.Valid && d.author.String != ev.AuthorID:
		what = "another author"
	case d.payloadHash != nil && !bytes.Equal(d.payloadHash, hash):
		what = "another payload"
	default:
		return domain.Result{Sequence: d.sequence, Deduplicated: true}
	}
	return domain.Result{Err: domain.Errorf(domain.EEXISTS,
		"client_message_id %q of channel %q is taken by message %d, sent with %s; use a new client_message_id",
		ev.ClientMessageID, ev.ChannelID, d.sequence, what)}
}

// reviveSequence continues a channel created with the id of a deleted one
// after the deleted channel's last sequence, and forgets the deletion.
func (a *applier) reviveSequence(id string) error {
	var last uint64
	err := a.tx.QueryRowContext(a.ctx, `SELECT last_sequence FROM deleted_channels WHERE channel_id = ?`, id).Scan(&last)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("read deleted channel: %w", err)
	}
	if _, err := a.tx.ExecContext(a.ctx, `DELETE FROM deleted_channels WHERE channel_id = ?`, id); err != nil {
		return fmt.Errorf("forget deleted channel: %w", err)
	}
	if _, err := a.tx.ExecContext(a.ctx, `UPDATE channels SET last_sequence = ? WHERE channel_id = ?`, last, id); err != nil {
		return fmt.Errorf("continue sequence of %q: %w", id, err)
	}
	return nil
}

// settle writes the rows and sequences buffered so far, so that an event
// that changes stored rows (update, delete, redact) sees and changes them
// too.
func (a *applier) settle() error {
	if err := a.writeRows(); err != nil {
		return err
	}
	return a.flushChannels()
}

func notFound(id string) domain.Result {
	return domain.Result{Err: domain.Errorf(domain.ENOTFOUND, "channel %q not found", id)}
}

func (a *applier) updateChannel(ev domain.ChannelUpdated) (domain.Result, error) {
	ch, err := a.channel(ev.ChannelID)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return notFound(ev.ChannelID), nil
	case err != nil:
		return domain.Result{}, fmt.Errorf("read channel: %w", err)
	}
	if ev.Name != "" && ev.Name != ch.Name {
		if _, err := a.tx.ExecContext(a.ctx, `UPDATE channels SET name = ? WHERE channel_id = ?`, ev.Name, ev.ChannelID); err != nil {
			return domain.Result{}, fmt.Errorf("update channel: %w", err)
		}
		ch.Name = ev.Name
	}
	if ev.Retention != nil {
		// Trim to the old limits first, then to the new ones, at once: the
		// same outcome as trimming after every send.
		if err := a.settle(); err != nil {
			return domain.Result{}, err
		}
		r := *ev.Retention
		if _, err := a.tx.ExecContext(a.ctx, `UPDATE channels SET max_messages = ?, max_age = ?, max_bytes = ? WHERE channel_id = ?`,
			int64(r.MaxMessages), int64(r.MaxAge), int64(r.MaxBytes), ev.ChannelID); err != nil {
			return domain.Result{}, fmt.Errorf("update retention: %w", err)
		}
		st := a.chans[ev.ChannelID]
		st.ret = r
		a.dirty[ev.ChannelID] = true
		if err := a.settle(); err != nil {
			return domain.Result{}, err
		}
		ch.Retention, ch.TrimmedThrough = r, st.trimmed
	}
	return domain.Result{Channel: ch}, nil
}

func (a *applier) deleteChannel(index uint64, ev domain.ChannelDeleted) (domain.Result, error) {
	id := ev.ChannelID
	st, err := a.state(id)
	switch {
	case err != nil:
		return domain.Result{}, err
	case st == nil:
		return domain.Result{Deleted: false}, nil
	}
	if err := a.settle(); err != nil {
		return domain.Result{}, err
	}
	for _, q := range []string{
		`DELETE FROM messages WHERE channel_id = ?`,
		`DELETE FROM dedup WHERE channel_id = ?`,
		`DELETE FROM dedup_trimmed WHERE channel_id = ?`,
		`DELETE FROM channels WHERE channel_id = ?`,
	} {
		if _, err := a.tx.ExecContext(a.ctx, q, id); err != nil {
			return domain.Result{}, fmt.Errorf("delete channel %q: %w", id, err)
		}
	}
	if _, err := a.tx.ExecContext(a.ctx, `INSERT OR REPLACE INTO deleted_channels (channel_id, last_sequence, deleted_index) VALUES (?, ?, ?)`,
		id, st.last, index); err != nil {
		return domain.Result{}, fmt.Errorf("record deleted channel %q: %w", id, err)
	}
	delete(a.chans, id)
	for k := range a.known {
		if k.channelID == id {
			delete(a.known, k)
		}
	}
	return domain.Result{Deleted: true}, nil
}

func (a *applier) redactMessage(ev domain.MessageRedacted) (domain.Result, error) {
	st, err := a.state(ev.ChannelID)
	switch {
	case err != nil:
		return domain.Result{}, err
	case st == nil:
		return notFound(ev.ChannelID), nil
	}
	if err := a.settle(); err != nil {
		return domain.Result{}, err
	}
	var size int64
	var redacted bool
	err = a.tx.QueryRowContext(a.ctx, `SELECT length(payload), redacted FROM messages WHERE channel_id = ? AND sequence = ?`,
		ev.ChannelID, ev.Sequence).Scan(&size, &redacted)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return domain.Result{Err: domain.Errorf(domain.ENOTFOUND, "message %d of channel %q not found", ev.Sequence, ev.ChannelID)}, nil
	case err != nil:
		return domain.Result{}, fmt.Errorf("redact message: %w", err)
	case redacted:
		return domain.Result{Redacted: false}, nil
	}
	if _, err := a.tx.ExecContext(a.ctx, `UPDATE messages SET payload = x'', redacted = 1 WHERE channel_id = ? AND sequence = ?`,
		ev.ChannelID, ev.Sequence); err != nil {
		return domain.Result{}, fmt.Errorf("redact message: %w", err)
	}
	st.bytes -= min(st.bytes, uint64(size))
	a.dirty[ev.ChannelID] = true
	return domain.Result{Redacted: true}, nil
}
