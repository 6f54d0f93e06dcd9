package projection

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/raftogram/raftogram/domain"
)

var errClosed = errors.New("projection is closed")

// reader runs fn with the read pool while holding the swap lock shared. It
// returns errClosed after Close and an error wrapping ErrBroken after a
// failed Restore.
func (s *Store) reader(fn func(db *sql.DB) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.r == nil {
		return s.goneLocked()
	}
	return fn(s.r)
}

// goneLocked returns why the connections are closed: the failure of a
// Restore, or errClosed. s.mu must be held.
func (s *Store) goneLocked() error {
	if s.lost != nil {
		return s.lost
	}
	return errClosed
}

// Channel returns the committed channel with its message range
// (FirstSequence, LastSequence and MessageCount all 0 while it has never
// held a message; once retention removed every message, FirstSequence is
// TrimmedThrough+1, the sequence the next message takes) and retention, an
// ENOTFOUND *domain.Error when it does not exist, or an I/O error. It reads
// committed state: Flush first to see everything applied.
func (s *Store) Channel(ctx context.Context, id string) (domain.Channel, error) {
	var ch domain.Channel
	err := s.reader(func(db *sql.DB) error {
		rows, err := db.QueryContext(ctx, channelQuery+` WHERE c.channel_id = ?`, id)
		if err != nil {
			return fmt.Errorf("read channel %q: %w", id, err)
		}
		chs, err := scanChannels(rows)
		if err != nil {
			return fmt.Errorf("read channel %q: %w", id, err)
		}
		if len(chs) == 0 {
			return domain.Errorf(domain.ENOTFOUND, "channel %q not found", id)
		}
		ch = chs[0]
		return nil
	})
	return ch, err
}

// Channels returns up to limit committed channels whose ids sort after
// after (all of them when after is ""), in ascending id order, each with its
// message range, and whether more follow. It returns an EINVALID
// *domain.Error when limit is not positive, or an I/O error.
func (s *Store) Channels(ctx context.Context, after string, limit int) ([]domain.Channel, bool, error) {
	if limit <= 0 {
		return nil, false, domain.Errorf(domain.EINVALID, "limit must be positive")
	}
	var chs []domain.Channel
	err := s.reader(func(db *sql.DB) error {
		rows, err := db.QueryContext(ctx, channelQuery+` WHERE c.channel_id > ? ORDER BY c.channel_id LIMIT ?`, after, limit+1)
		if err != nil {
			return fmt.Errorf("list channels after %q: %w", after, err)
		}
		chs, err = scanChannels(rows)
		if err != nil {
			return fmt.Errorf("list channels after %q: %w", after, err)
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	if len(chs) > limit {
		return chs[:limit], true, nil
	}
	return chs, false, nil
}

// channelQuery selects channels with the sequence of their oldest message,
// found by one primary-key seek into messages (0 when there is none).
// Sequences are contiguous from the oldest held to last_sequence, so the
// count follows from the two.
const channelQuery = `SELECT c.channel_id, c.name, c.created_at, c.last_sequence,
	COALESCE((SELECT m.sequence FROM messages AS m WHERE m.channel_id = c.channel_id ORDER BY m.sequence LIMIT 1), 0),
	c.max_messages, c.max_age, c.max_bytes, c.trimmed_through
	FROM channels AS c`

// scanChannels reads and closes rows of channelQuery.
func scanChannels(rows *sql.Rows) ([]domain.Channel, error) {
	defer rows.Close()
	var out []domain.Channel
	for rows.Next() {
		var ch domain.Channel
		var created int64
		var maxMessages, maxAge, maxBytes int64
		if err := rows.Scan(&ch.ID, &ch.Name, &created, &ch.LastSequence, &ch.FirstSequence,
			&maxMessages, &maxAge, &maxBytes, &ch.TrimmedThrough); err != nil {
			return nil, err
		}
		ch.CreatedAt = time.Unix(0, created).UTC()
		ch.Retention = domain.Retention{MaxMessages: uint64(maxMessages), MaxAge: time.Duration(maxAge), MaxBytes: uint64(maxBytes)}
		switch {
		case ch.FirstSequence > 0 && ch.LastSequence >= ch.FirstSequence:
			ch.MessageCount = ch.LastSequence - ch.FirstSequence + 1
		case ch.TrimmedThrough > 0:
			// Everything was trimmed: the next message starts the channel.
			ch.FirstSequence = ch.TrimmedThrough + 1
		}
		out = append(out, ch)
	}
	return out, rows.Err()
}

// Range selects messages of one channel for [Store.Page].
type Range struct {
	// After and Before bound the sequences: only those above After and
	// below Before (Before 0: no upper bound).
	After, Before uint64
	// NewestFirst returns the newest messages of the range first, in
	// descending order; more then says older ones exist in the range.
	NewestFirst bool
	// Limit is the most messages returned; it must be positive.
	Limit int
	// MaxBytes stops the page early, reporting more, once the payloads
	// returned exceed it (at least one message is returned; 0: no bound).
	MaxBytes int
}

// readStmts are the read pool's prepared statements. Each answers both
// "does the channel exist" and "what is in the range": the channel's row,
// LEFT JOINed to its messages, so an empty range still returns one row.
type readStmts struct {
	forward, backward, byTime *sql.Stmt
}

const pageQuery = `SELECT c.trimmed_through, m.sequence, m.author_id, m.payload, m.client_message_id, m.created_at, m.redacted
	FROM channels AS c LEFT JOIN messages AS m ON m.channel_id = c.channel_id AND m.sequence > ? AND m.sequence < ?
	WHERE c.channel_id = ? ORDER BY m.sequence `

// byTimeQuery finds the first message at or after a time by one seek into
// messages_by_time (migration 0002).
const byTimeQuery = `SELECT m.sequence FROM channels AS c LEFT JOIN messages AS m INDEXED BY messages_by_time
	ON m.channel_id = c.channel_id AND m.created_at >= ?
	WHERE c.channel_id = ? ORDER BY m.created_at, m.sequence LIMIT 1`

func prepareReads(ctx context.Context, db *sql.DB) (readStmts, error) {
	var r readStmts
	var err error
	prep := func(query string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var st *sql.Stmt
		st, err = db.PrepareContext(ctx, query)
		return st
	}
	// Both directions are range scans of the messages primary key, from
	// either end: a page costs the same at any depth of the channel.
	r.forward = prep(pageQuery + `ASC LIMIT ?`)
	r.backward = prep(pageQuery + `DESC LIMIT ?`)
	r.byTime = prep(byTimeQuery)
	if err != nil {
		r.close()
		return readStmts{}, err
	}
	return r, nil
}

func (r readStmts) close() {
	for _, st := range []*sql.Stmt{r.forward, r.backward, r.byTime} {
		if st != nil {
			st.Close()
		}
	}
}

// History returns up to limit messages of the channel with sequence greater
// than after, in ascending order, and whether more follow; maxBytes as
// Range.MaxBytes. It is Page with Range{After: after, Limit: limit,
// MaxBytes: maxBytes} and returns Page's errors.
func (s *Store) History(ctx context.Context, channelID string, after uint64, limit, maxBytes int) ([]domain.Message, bool, error) {
	return s.Page(ctx, channelID, Range{After: after, Limit: limit, MaxBytes: maxBytes})
}

// Page returns the messages of the channel in rng, at most rng.Limit of
// them, ascending (or descending with NewestFirst), and whether more of
// the range lies beyond the last one returned (newer ones, or with
// NewestFirst older ones). It returns an ENOTFOUND *domain.Error when the
// channel does not exist, an EINVALID one when Limit is not positive, and a
// *domain.TrimmedError when an ascending range starts below what retention
// kept (a descending one just ends at the oldest message held). It
// reads committed state: what Apply wrote since the last commit is visible
// only after Flush.
func (s *Store) Page(ctx context.Context, channelID string, rng Range) ([]domain.Message, bool, error) {
	if rng.Limit <= 0 {
		return nil, false, domain.Errorf(domain.EINVALID, "limit must be positive")
	}
	before := int64(math.MaxInt64)
	if rng.Before > 0 && rng.Before <= math.MaxInt64 {
		before = int64(rng.Before)
	}
	after := int64(math.MaxInt64)
	if rng.After < math.MaxInt64 {
		after = int64(rng.After)
	}
	var msgs []domain.Message
	var more bool
	err := s.reader(func(*sql.DB) error {
		st := s.reads.forward
		if rng.NewestFirst {
			st = s.reads.backward
		}
		rows, err := st.QueryContext(ctx, after, before, channelID, rng.Limit+1)
		if err != nil {
			return fmt.Errorf("read history of %q: %w", channelID, err)
		}
		defer rows.Close()
		found, size := false, 0
		for rows.Next() {
			var trimmed uint64
			var seq sql.Null[uint64]
			var author, cmid sql.Null[string]
			var payload []byte
			var created sql.Null[int64]
			var redacted sql.Null[bool]
			if err := rows.Scan(&trimmed, &seq, &author, &payload, &cmid, &created, &redacted); err != nil {
				return fmt.Errorf("scan history of %q: %w", channelID, err)
			}
			if !found && !rng.NewestFirst && rng.After < trimmed {
				return &domain.TrimmedError{ChannelID: channelID, FirstSequence: trimmed + 1}
			}
			found = true
			if !seq.Valid {
				break // the channel exists and has nothing in the range
			}
			if len(msgs) == rng.Limit || (rng.MaxBytes > 0 && len(msgs) > 0 && size >= rng.MaxBytes) {
				more = true
				break
			}
			if payload == nil {
				payload = []byte{}
			}
			msgs = append(msgs, domain.Message{ChannelID: channelID, Sequence: seq.V, AuthorID: author.V, Payload: payload,
				ClientMessageID: cmid.V, CreatedAt: time.Unix(0, created.V).UTC(), Redacted: redacted.V})
			size += len(payload)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read history of %q: %w", channelID, err)
		}
		if !found {
			return domain.Errorf(domain.ENOTFOUND, "channel %q not found", channelID)
		}
		return nil
	})
	return msgs, more, err
}

// SequenceAt returns the sequence of the channel's message with the
// earliest created_at at or after t (the lowest sequence among equals),
// found by one index seek, and false when no message was created at or
// after t. Leaders stamp created_at with their own clocks, so it rises with
// the sequence unless a clock stepped back across a leader change. It
// returns an ENOTFOUND *domain.Error when the channel does not exist, or an
// I/O error.
func (s *Store) SequenceAt(ctx context.Context, channelID string, t time.Time) (uint64, bool, error) {
	var seq sql.Null[uint64]
	err := s.reader(func(*sql.DB) error {
		err := s.reads.byTime.QueryRowContext(ctx, t.UnixNano(), channelID).Scan(&seq)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return domain.Errorf(domain.ENOTFOUND, "channel %q not found", channelID)
		case err != nil:
			return fmt.Errorf("find the first message of %q at %s: %w", channelID, t, err)
		}
		return nil
	})
	return seq.V, seq.Valid, err
}

// Digest flushes the open transaction, then returns a hex SHA-256 over every
// channel, message and dedup row in key order: equal digests mean equal
// projection content. Nodes that applied the same log prefix have equal
// digests.
func (s *Store) Digest(ctx context.Context) (string, error) {
	d, _, err := s.DigestAt(ctx)
	return d, err
}

// DigestAt is Digest plus the applied index of the state it covers, read in
// the same transaction: nodes at the same index must have equal digests.
func (s *Store) DigestAt(ctx context.Context) (digest string, applied uint64, err error) {
	if err := s.Flush(ctx); err != nil {
		return "", 0, err
	}
	h := sha256.New()
	err = s.reader(func(db *sql.DB) error {
		conn, err := db.Conn(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		// One read transaction, so the three tables are from one state.
		tx, err := conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if err := tx.QueryRowContext(ctx, `SELECT applied_index FROM raft_applied WHERE id = 1`).Scan(&applied); err != nil {
			return err
		}
		for _, q := range []string{
			`SELECT channel_id, name, created_at, created_index, last_sequence, max_messages, max_age, max_bytes, retained_bytes, trimmed_through
				FROM channels ORDER BY channel_id`,
			`SELECT channel_id, sequence, author_id, payload, client_message_id, created_at, raft_index, redacted FROM messages ORDER BY channel_id, sequence`,
			`SELECT channel_id, client_message_id, sequence, author_id, payload_sha256 FROM dedup ORDER BY channel_id, client_message_id`,
			`SELECT channel_id, last_sequence, deleted_index FROM deleted_channels ORDER BY channel_id`,
			`SELECT channel_id, sequence, client_message_id, created_at FROM dedup_trimmed ORDER BY channel_id, sequence`,
			`SELECT dedup_horizon FROM retention_settings`,
		} {
			if err := hashRows(ctx, tx, q, h.Write); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", 0, fmt.Errorf("digest projection: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), applied, nil
}

func hashRows(ctx context.Context, tx *sql.Tx, query string, write func([]byte) (int, error)) error {
	rows, err := tx.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var lenBuf [8]byte
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		for _, v := range vals {
			b := fmt.Appendf(nil, "%T:%v", v, v)
			if raw, ok := v.([]byte); ok {
				b = append([]byte("bytes:"), raw...)
			}
			binary.BigEndian.PutUint64(lenBuf[:], uint64(len(b)))
			write(lenBuf[:])
			write(b)
		}
	}
	return rows.Err()
}
