package projection

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/raftogram/raftogram/domain"
)

// Retention. A channel holds the contiguous sequences (trimmed, last]
// (fewer after a re-creation, see reviveSequence); trimming removes the
// oldest and raises trimmed. Count and bytes limits are enforced when the
// channel's changes of a transaction are written back (flushChannels: before
// every commit and before any event that reads stored rows), which removes
// exactly what trimming after every single send would: the kept messages
// are the longest suffix within the limits, and a suffix within the limits
// at the end was within them at every earlier point. Age is enforced by
// MessagesExpired events, which carry the leader's clock.

// chanState is what the applier keeps in memory of a channel it touched in
// the open transaction.
type chanState struct {
	last    uint64 // newest sequence
	bytes   uint64 // payload bytes held
	trimmed uint64 // highest sequence removed by retention
	ret     domain.Retention
}

// retentionCut returns the highest sequence the count limit removes (at
// most trimmed: nothing to do).
func (st *chanState) retentionCut() uint64 {
	cut := st.trimmed
	if m := st.ret.MaxMessages; m > 0 && st.last > m {
		cut = max(cut, st.last-m)
	}
	return cut
}

// trim removes the channel's messages up to cut, and further oldest ones
// while its payload bytes exceed MaxBytes (never the newest message), and
// returns how many it removed. With a dedup horizon set, the dedup rows of
// the removed messages are queued in dedup_trimmed to expire; without one
// they stay.
func (a *applier) trim(id string, st *chanState, cut uint64) (uint64, error) {
	if m := st.ret.MaxBytes; m > 0 && st.bytes > m {
		c, err := a.bytesCut(id, st, cut)
		if err != nil {
			return 0, err
		}
		cut = max(cut, c)
	}
	if cut <= st.trimmed {
		return 0, nil
	}
	horizon, err := a.dedupHorizon()
	if err != nil {
		return 0, err
	}
	var n, size int64
	err = a.tx.QueryRowContext(a.ctx, `SELECT COUNT(*), COALESCE(SUM(length(payload)), 0) FROM messages
		WHERE channel_id = ? AND sequence > ? AND sequence <= ?`, id, st.trimmed, cut).Scan(&n, &size)
	if err != nil {
		return 0, fmt.Errorf("trim %q: %w", id, err)
	}
	if horizon > 0 {
		if _, err := a.tx.ExecContext(a.ctx, `INSERT OR REPLACE INTO dedup_trimmed (channel_id, sequence, client_message_id, created_at)
			SELECT channel_id, sequence, client_message_id, created_at FROM messages
			WHERE channel_id = ? AND sequence > ? AND sequence <= ? AND client_message_id != ''`, id, st.trimmed, cut); err != nil {
			return 0, fmt.Errorf("trim %q: queue dedup rows: %w", id, err)
		}
	}
	if _, err := a.tx.ExecContext(a.ctx, `DELETE FROM messages WHERE channel_id = ? AND sequence > ? AND sequence <= ?`,
		id, st.trimmed, cut); err != nil {
		return 0, fmt.Errorf("trim %q: %w", id, err)
	}
	st.bytes -= min(st.bytes, uint64(size))
	st.trimmed = cut
	a.dirty[id] = true
	return uint64(n), nil
}

// bytesCut returns the highest sequence to remove so that the messages
// after it hold at most MaxBytes of payload, counting those after from (the
// newest message always stays).
func (a *applier) bytesCut(id string, st *chanState, from uint64) (uint64, error) {
	rows, err := a.tx.QueryContext(a.ctx, `SELECT sequence, length(payload) FROM messages
		WHERE channel_id = ? AND sequence > ? ORDER BY sequence`, id, st.trimmed)
	if err != nil {
		return 0, fmt.Errorf("trim %q by bytes: %w", id, err)
	}
	defer rows.Close()
	held, cut := st.bytes, from
	for rows.Next() {
		var seq uint64
		var size int64
		if err := rows.Scan(&seq, &size); err != nil {
			return 0, fmt.Errorf("trim %q by bytes: %w", id, err)
		}
		if seq > from && held <= st.ret.MaxBytes || seq >= st.last {
			break
		}
		held -= min(held, uint64(size))
		cut = max(cut, seq)
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("trim %q by bytes: %w", id, err)
	}
	return cut, nil
}

// dedupHorizon returns the horizon the last MessagesExpired set (0: dedup
// rows are kept forever).
func (a *applier) dedupHorizon() (time.Duration, error) {
	if !a.horizonSet {
		var h int64
		if err := a.tx.QueryRowContext(a.ctx, `SELECT dedup_horizon FROM retention_settings WHERE id = 1`).Scan(&h); err != nil {
			return 0, fmt.Errorf("read dedup horizon: %w", err)
		}
		a.horizon, a.horizonSet = time.Duration(h), true
	}
	return a.horizon, nil
}

// expire applies a MessagesExpired: every channel with a max age drops the
// longest prefix of messages created before ev.Now less that age, then the
// dedup horizon is recorded and the queued dedup rows older than it go.
func (a *applier) expire(ev domain.MessagesExpired) (domain.Result, error) {
	if err := a.settle(); err != nil {
		return domain.Result{}, err
	}
	now := ev.Now.UnixNano()
	ids, err := a.agedChannels()
	if err != nil {
		return domain.Result{}, err
	}
	var total uint64
	for _, id := range ids {
		st, err := a.state(id)
		switch {
		case err != nil:
			return domain.Result{}, err
		case st == nil: // listed in this transaction a moment ago
			return domain.Result{}, fmt.Errorf("expire: channel %q listed but not found", id)
		}
		cutoff := now - int64(st.ret.MaxAge)
		var keep uint64
		err = a.tx.QueryRowContext(a.ctx, `SELECT sequence FROM messages WHERE channel_id = ? AND sequence > ? AND created_at >= ?
			ORDER BY sequence LIMIT 1`, id, st.trimmed, cutoff).Scan(&keep)
		cut := st.last // every message is older
		switch {
		case err == nil:
			cut = keep - 1
		case !errors.Is(err, sql.ErrNoRows):
			return domain.Result{}, fmt.Errorf("expire %q: %w", id, err)
		}
		n, err := a.trim(id, st, cut)
		if err != nil {
			return domain.Result{}, err
		}
		total += n
	}
	if err := a.flushChannels(); err != nil {
		return domain.Result{}, err
	}
	if err := a.expireDedup(ev); err != nil {
		return domain.Result{}, err
	}
	return domain.Result{Trimmed: total}, nil
}

// agedChannels returns the ids of the channels with a max age, in id order.
func (a *applier) agedChannels() ([]string, error) {
	rows, err := a.tx.QueryContext(a.ctx, `SELECT channel_id FROM channels WHERE max_age > 0 ORDER BY channel_id`)
	if err != nil {
		return nil, fmt.Errorf("expire: list channels: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("expire: list channels: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("expire: list channels: %w", err)
	}
	// Channels whose retention changed in this transaction are in memory
	// only until flushChannels, which settle ran: the table is current.
	return ids, nil
}

// expireDedup records ev's dedup horizon and removes the queued dedup rows
// of messages created before ev.Now less it.
func (a *applier) expireDedup(ev domain.MessagesExpired) error {
	if _, err := a.tx.ExecContext(a.ctx, `UPDATE retention_settings SET dedup_horizon = ? WHERE id = 1`, int64(ev.DedupHorizon)); err != nil {
		return fmt.Errorf("record dedup horizon: %w", err)
	}
	a.horizon, a.horizonSet = ev.DedupHorizon, true
	if ev.DedupHorizon <= 0 {
		return nil
	}
	cutoff := ev.Now.UnixNano() - int64(ev.DedupHorizon)
	rows, err := a.tx.QueryContext(a.ctx, `SELECT channel_id, client_message_id FROM dedup_trimmed WHERE created_at < ?`, cutoff)
	if err != nil {
		return fmt.Errorf("expire dedup rows: %w", err)
	}
	var keys []dedupKey
	for rows.Next() {
		var k dedupKey
		if err := rows.Scan(&k.channelID, &k.clientMessageID); err != nil {
			rows.Close()
			return fmt.Errorf("expire dedup rows: %w", err)
		}
		keys = append(keys, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("expire dedup rows: %w", err)
	}
	for _, k := range keys {
		delete(a.known, k) // a later send in this Apply takes the key anew
	}
	if _, err := a.tx.ExecContext(a.ctx, `DELETE FROM dedup WHERE (channel_id, client_message_id) IN
		(SELECT channel_id, client_message_id FROM dedup_trimmed WHERE created_at < ?)`, cutoff); err != nil {
		return fmt.Errorf("expire dedup rows: %w", err)
	}
	if _, err := a.tx.ExecContext(a.ctx, `DELETE FROM dedup_trimmed WHERE created_at < ?`, cutoff); err != nil {
		return fmt.Errorf("expire dedup rows: %w", err)
	}
	return nil
}

// ExpiryDue reports, from committed state, whether a MessagesExpired at now
// carrying dedupHorizon would change anything: a channel's oldest message
// is older than its max age, the recorded dedup horizon differs, or queued
// dedup rows are older than the horizon. The leader asks it before
// proposing one, so an idle cluster's log does not grow with no-op events.
func (s *Store) ExpiryDue(ctx context.Context, now time.Time, dedupHorizon time.Duration) (bool, error) {
	var due bool
	err := s.reader(func(db *sql.DB) error {
		return db.QueryRowContext(ctx, `SELECT
			EXISTS (SELECT 1 FROM channels AS c WHERE c.max_age > 0 AND
				(SELECT m.created_at FROM messages AS m WHERE m.channel_id = c.channel_id ORDER BY m.sequence LIMIT 1) < ?1 - c.max_age)
			OR (SELECT dedup_horizon FROM retention_settings WHERE id = 1) != ?2
			OR (?2 > 0 AND EXISTS (SELECT 1 FROM dedup_trimmed WHERE created_at < ?1 - ?2))`,
			now.UnixNano(), int64(dedupHorizon)).Scan(&due)
	})
	if err != nil {
		return false, fmt.Errorf("check expiry: %w", err)
	}
	return due, nil
}
