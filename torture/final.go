package torture

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/raftogram/raftogram/client"
	_ "modernc.org/sqlite" // the "sqlite" driver
)

// FinalMsg is one stored message of the final state.
type FinalMsg struct {
	Seq       uint64 `json:"seq"`
	CMID      string `json:"cmid"`
	Author    string `json:"author"`
	Sum       string `json:"sum"`
	RaftIndex uint64 `json:"raft_index,omitempty"`
	Redacted  bool   `json:"redacted,omitempty"`
}

// NodeDump is what one node's projection.db holds after the node stopped.
type NodeDump struct {
	Node         string            `json:"node"`
	AppliedIndex uint64            `json:"applied_index"`
	Digest       string            `json:"digest"`
	LastSeq      map[string]uint64 `json:"last_seq"`
	// Trimmed is each channel's trimmed_through: the highest sequence
	// retention removed (0: none).
	Trimmed  map[string]uint64            `json:"trimmed,omitempty"`
	Messages map[string][]FinalMsg        `json:"-"`
	Dedup    map[string]map[string]uint64 `json:"-"`
	Err      string                       `json:"err,omitempty"`
}

// Final is the state read after the run: the log of every channel read
// over gRPC from the leader, and every node's projection.
type Final struct {
	// Log is each channel's messages read with ReadHistory from the
	// leader, in order; the reference the checkers compare against.
	Log    map[string][]MsgRef `json:"-"`
	LogErr string              `json:"log_err,omitempty"`
	// Trimmed is, per channel, the sequence Log starts after: what
	// retention removed (0: Log starts at 1).
	Trimmed map[string]uint64 `json:"trimmed,omitempty"`
	// Recreated names the channels that were deleted and created again
	// during the run: what they hold starts wherever their current
	// incarnation does.
	Recreated map[string]bool `json:"recreated,omitempty"`
	Nodes     []NodeDump      `json:"nodes"`
	// Stop lists problems stopping or restarting the nodes cleanly.
	Stop []string `json:"stop,omitempty"`
}

// ReadLog reads every message of each channel from the leader (through
// cl, at LeaderOnly), paging with ReadHistory; the client retries each page
// on the nodes until d, per channel, has passed. A channel trimmed by
// retention is read from where it now starts, and trimmed says where that
// is (the sequence before its first message).
func ReadLog(ctx context.Context, cl *client.Client, channels []string, d time.Duration) (log map[string][]MsgRef, trimmed map[string]uint64, err error) {
	log, trimmed = map[string][]MsgRef{}, map[string]uint64{}
	for _, ch := range channels {
		msgs, t, err := readChannel(ctx, cl, ch, d)
		if err != nil {
			return log, trimmed, fmt.Errorf("read channel %s: %w", ch, err)
		}
		log[ch], trimmed[ch] = msgs, t
	}
	return log, trimmed, nil
}

// readChannel reads one channel whole within d, from the start retention
// left it (returned, 0 when untrimmed).
func readChannel(ctx context.Context, cl *client.Client, ch string, d time.Duration) ([]MsgRef, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var msgs []MsgRef
	var trimmed uint64
	for after := uint64(0); ; {
		res, err := cl.ReadHistory(ctx, ch, client.ReadOptions{After: after, Limit: 1000, Consistency: client.LeaderOnly})
		var ce *client.Error
		if errors.As(err, &ce) && ce.TrimmedFirstSequence > 0 && len(msgs) == 0 {
			after, trimmed = ce.TrimmedFirstSequence-1, ce.TrimmedFirstSequence-1
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		ms := refs(res.Messages)
		msgs = append(msgs, ms...)
		if !res.HasMore {
			return msgs, trimmed, nil
		}
		if len(ms) == 0 {
			return nil, 0, fmt.Errorf("ReadHistory of %s after %d: has_more with no messages", ch, after)
		}
		after = ms[len(ms)-1].Seq
	}
}

// DumpNode reads a stopped node's projection.db in read-only mode. If the
// file cannot be opened read-only in place (a WAL without its index, left
// by a crash), it reads a private copy instead; the node's files are never
// written.
func DumpNode(ctx context.Context, id, dataDir string) NodeDump {
	d := NodeDump{Node: id}
	path := filepath.Join(dataDir, "projection.db")
	err := dumpDB(ctx, "file:"+path+"?mode=ro&_pragma="+url.QueryEscape("busy_timeout(5000)"), &d)
	if err != nil {
		tmp, terr := os.MkdirTemp("", "torture-dump-")
		if terr != nil {
			d.Err = err.Error()
			return d
		}
		defer os.RemoveAll(tmp)
		for _, suffix := range []string{"", "-wal"} {
			if cerr := copyFile(path+suffix, filepath.Join(tmp, "projection.db"+suffix)); cerr != nil && !os.IsNotExist(cerr) {
				d.Err = fmt.Sprintf("read-only open: %v; copy: %v", err, cerr)
				return d
			}
		}
		d = NodeDump{Node: id}
		if err2 := dumpDB(ctx, "file:"+filepath.Join(tmp, "projection.db"), &d); err2 != nil {
			d.Err = fmt.Sprintf("read-only open: %v; copy: %v", err, err2)
		}
	}
	return d
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func dumpDB(ctx context.Context, dsn string, d *NodeDump) error {
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := tx.QueryRowContext(ctx, `SELECT applied_index FROM raft_applied WHERE id = 1`).Scan(&d.AppliedIndex); err != nil {
		return fmt.Errorf("applied index: %w", err)
	}
	d.LastSeq = map[string]uint64{}
	d.Trimmed = map[string]uint64{}
	d.Messages = map[string][]FinalMsg{}
	d.Dedup = map[string]map[string]uint64{}
	h := sha256.New()
	err = scanRows(ctx, tx, h, `SELECT channel_id, name, created_at, created_index, last_sequence, trimmed_through FROM channels ORDER BY channel_id`,
		func(v []any) {
			d.LastSeq[asString(v[0])] = uint64(asInt(v[4]))
			d.Trimmed[asString(v[0])] = uint64(asInt(v[5]))
		})
	if err != nil {
		return fmt.Errorf("channels: %w", err)
	}
	err = scanRows(ctx, tx, h, `SELECT channel_id, sequence, author_id, payload, client_message_id, created_at, raft_index, redacted FROM messages ORDER BY channel_id, sequence`,
		func(v []any) {
			ch := asString(v[0])
			payload, _ := v[3].([]byte)
			d.Messages[ch] = append(d.Messages[ch], FinalMsg{Seq: uint64(asInt(v[1])), Author: asString(v[2]), Sum: PayloadSum(payload),
				CMID: asString(v[4]), RaftIndex: uint64(asInt(v[6])), Redacted: asInt(v[7]) != 0})
		})
	if err != nil {
		return fmt.Errorf("messages: %w", err)
	}
	err = scanRows(ctx, tx, h, `SELECT channel_id, client_message_id, sequence FROM dedup ORDER BY channel_id, client_message_id`,
		func(v []any) {
			ch := asString(v[0])
			if d.Dedup[ch] == nil {
				d.Dedup[ch] = map[string]uint64{}
			}
			d.Dedup[ch][asString(v[1])] = uint64(asInt(v[2]))
		})
	if err != nil {
		return fmt.Errorf("dedup: %w", err)
	}
	d.Digest = hex.EncodeToString(h.Sum(nil))
	return nil
}

// scanRows hashes every row of query into h (each value length-prefixed,
// typed) and hands it to fn.
func scanRows(ctx context.Context, tx *sql.Tx, h io.Writer, query string, fn func([]any)) error {
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
			h.Write(lenBuf[:])
			h.Write(b)
		}
		fn(vals)
	}
	return rows.Err()
}

func asString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	}
	return fmt.Sprint(v)
}

func asInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case int:
		return int64(x)
	case float64:
		return int64(x)
	}
	return -1
}

// last returns the sequence of the last message of channel ch in the final
// log (the trimmed point when it holds none).
func (f *Final) last(ch string) uint64 {
	if ms := f.Log[ch]; len(ms) > 0 {
		return ms[len(ms)-1].Seq
	}
	return f.Trimmed[ch]
}

// floor returns the highest sequence of channel ch whose absence from the
// final log is excused: what retention trimmed, or for a channel deleted
// and created again everything before its first message now (all of it
// when it holds none).
func (f *Final) floor(ch string) uint64 {
	return floorOf(f.Trimmed[ch], f.Recreated[ch], len(f.Log[ch]) > 0, func() uint64 { return f.Log[ch][0].Seq })
}

// floor is Final.floor for one node's projection.
func (d *NodeDump) floor(ch string, recreated bool) uint64 {
	return floorOf(d.Trimmed[ch], recreated, len(d.Messages[ch]) > 0, func() uint64 { return d.Messages[ch][0].Seq })
}

func floorOf(trimmed uint64, recreated, held bool, first func() uint64) uint64 {
	switch {
	case !recreated:
		return trimmed
	case held:
		return first() - 1
	default:
		return math.MaxUint64
	}
}
