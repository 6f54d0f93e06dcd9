package projection

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/raftogram/raftogram/domain"
)

// model is the projection's semantics in a few lines of Go, the oracle for
// FuzzApply.
type model struct {
	channels map[string]*modelChannel
	dedup    map[[2]string]modelDedup
	deleted  map[string]uint64 // last sequence of deleted channels
	// Retention: the dedup horizon the last MessagesExpired set, and the
	// keys of trimmed messages waiting for it (by their created_at).
	horizon time.Duration
	queued  map[[2]string]time.Time
}

// modelDedup is what the model remembers of the send that took a key.
type modelDedup struct {
	seq     uint64
	author  string
	payload string
}

type modelChannel struct {
	name     string
	base     uint64   // the sequence before the first message (a deleted predecessor's last)
	msgs     []string // client_message_id by sequence-base-1
	sizes    []int    // payload length by sequence-base-1
	created  []time.Time
	redacted map[uint64]bool
	ret      domain.Retention
	trimmed  uint64 // highest sequence removed by retention
}

func (ch *modelChannel) last() uint64 { return ch.base + uint64(len(ch.msgs)) }

// first returns the lowest sequence held (last+1 when none is).
func (ch *modelChannel) first() uint64 { return max(ch.trimmed, ch.base) + 1 }

func (ch *modelChannel) size(seq uint64) uint64 {
	if ch.redacted[seq] {
		return 0
	}
	return uint64(ch.sizes[seq-ch.base-1])
}

// trim removes messages through cut and by the count and byte limits, as
// if after every single send (the oracle for the projection's deferred
// trimming), and returns how many it removed.
func (m *model) trim(id string, ch *modelChannel, cut uint64) uint64 {
	if n := ch.ret.MaxMessages; n > 0 && ch.last() > n {
		cut = max(cut, ch.last()-n)
	}
	if b := ch.ret.MaxBytes; b > 0 {
		var held uint64
		for seq := max(cut, ch.trimmed, ch.base) + 1; seq <= ch.last(); seq++ {
			held += ch.size(seq)
		}
		for seq := max(cut, ch.trimmed, ch.base) + 1; held > b && seq < ch.last(); seq++ {
			held -= ch.size(seq)
			cut = seq
		}
	}
	var removed uint64
	for seq := ch.first(); seq <= cut && seq <= ch.last(); seq++ {
		removed++
		if cmid := ch.msgs[seq-ch.base-1]; cmid != "" && m.horizon > 0 {
			m.queued[[2]string{id, cmid}] = ch.created[seq-ch.base-1]
		}
	}
	ch.trimmed = max(ch.trimmed, cut)
	return removed
}

func (m *model) apply(index uint64, pos int, ev domain.Event) domain.Result {
	if err := domain.Validate(ev); err != nil {
		return domain.Result{Err: err}
	}
	switch ev := ev.(type) {
	case domain.ChannelCreated:
		id := ev.ChannelID
		if id == "" {
			id = AssignedChannelID(index, pos)
		}
		if ch, ok := m.channels[id]; ok {
			return domain.Result{Channel: domain.Channel{ID: id, Name: ch.name, LastSequence: ch.last()}}
		}
		m.channels[id] = &modelChannel{name: ev.Name, base: m.deleted[id], redacted: map[uint64]bool{}, ret: ev.Retention}
		delete(m.deleted, id)
		return domain.Result{Channel: domain.Channel{ID: id, Name: ev.Name}, Created: true}
	case domain.MessageSent:
		ch, ok := m.channels[ev.ChannelID]
		if !ok {
			return domain.Result{Err: domain.Errorf(domain.ENOTFOUND, "channel %q not found", ev.ChannelID)}
		}
		key := [2]string{ev.ChannelID, ev.ClientMessageID}
		if d, ok := m.dedup[key]; ok && ev.ClientMessageID != "" {
			if d.author != ev.AuthorID || d.payload != string(ev.Payload) {
				return domain.Result{Err: domain.Errorf(domain.EEXISTS, "conflict")}
			}
			return domain.Result{Sequence: d.seq, Deduplicated: true}
		}
		ch.msgs = append(ch.msgs, ev.ClientMessageID)
		ch.sizes = append(ch.sizes, len(ev.Payload))
		ch.created = append(ch.created, ev.CreatedAt)
		seq := ch.last()
		if ev.ClientMessageID != "" {
			m.dedup[key] = modelDedup{seq, ev.AuthorID, string(ev.Payload)}
		}
		m.trim(ev.ChannelID, ch, 0)
		return domain.Result{Sequence: seq}
	case domain.ChannelUpdated:
		ch, ok := m.channels[ev.ChannelID]
		if !ok {
			return domain.Result{Err: domain.Errorf(domain.ENOTFOUND, "channel %q not found", ev.ChannelID)}
		}
		if ev.Name != "" {
			ch.name = ev.Name
		}
		if ev.Retention != nil {
			ch.ret = *ev.Retention
			m.trim(ev.ChannelID, ch, 0)
		}
		return domain.Result{Channel: domain.Channel{ID: ev.ChannelID, Name: ch.name, LastSequence: ch.last()}}
	case domain.ChannelDeleted:
		ch, ok := m.channels[ev.ChannelID]
		if !ok {
			return domain.Result{}
		}
		m.deleted[ev.ChannelID] = ch.last()
		delete(m.channels, ev.ChannelID)
		for k := range m.dedup {
			if k[0] == ev.ChannelID {
				delete(m.dedup, k)
				delete(m.queued, k)
			}
		}
		return domain.Result{Deleted: true}
	case domain.MessageRedacted:
		ch, ok := m.channels[ev.ChannelID]
		switch {
		case !ok:
			return domain.Result{Err: domain.Errorf(domain.ENOTFOUND, "channel %q not found", ev.ChannelID)}
		case ev.Sequence < ch.first() || ev.Sequence > ch.last():
			return domain.Result{Err: domain.Errorf(domain.ENOTFOUND, "message %d not found", ev.Sequence)}
		case ch.redacted[ev.Sequence]:
			return domain.Result{}
		}
		ch.redacted[ev.Sequence] = true
		return domain.Result{Redacted: true}
	case domain.MessagesExpired:
		var removed uint64
		for id, ch := range m.channels {
			if ch.ret.MaxAge <= 0 {
				continue
			}
			cut := ch.last()
			for seq := ch.first(); seq <= ch.last(); seq++ {
				if !ch.created[seq-ch.base-1].Before(ev.Now.Add(-ch.ret.MaxAge)) {
					cut = seq - 1
					break
				}
			}
			removed += m.trim(id, ch, cut)
		}
		m.horizon = ev.DedupHorizon
		if m.horizon > 0 {
			for k, created := range m.queued {
				if created.Before(ev.Now.Add(-m.horizon)) {
					delete(m.queued, k)
					delete(m.dedup, k)
				}
			}
		}
		return domain.Result{Trimmed: removed}
	}
	panic("unreachable")
}

// eventsFrom turns fuzz bytes into a small-alphabet event sequence, so that
// collisions (existing channels, repeated ids) are frequent, grouped
// perEntry events to a log entry (as group commit does).
func eventsFrom(data []byte, perEntry int) []Entry {
	ids := []string{"a", "b", "", "bad id"}
	// Every event is a minute after the one before on the leader's clock.
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var entries []Entry
	for i := 0; i+1 < len(data); i += 2 {
		op, arg := data[i], data[i+1]
		now := t0.Add(time.Duration(i) * time.Minute)
		var ev domain.Event
		switch op % 10 {
		case 0, 1:
			ev = domain.ChannelCreated{ChannelID: ids[arg%4], Name: fmt.Sprintf("n%d", arg%3), Retention: retentionFrom(op >> 4)}
		case 8:
			r := retentionFrom(arg >> 2)
			ev = domain.ChannelUpdated{ChannelID: ids[arg%4], Retention: &r}
		case 9:
			ev = domain.MessagesExpired{Now: now, DedupHorizon: []time.Duration{0, 3 * time.Minute, 7 * time.Minute, -time.Minute}[arg%4]}
		case 5:
			ev = domain.ChannelUpdated{ChannelID: ids[arg%4], Name: []string{"", "m1", "m2"}[arg%3]}
		case 6:
			ev = domain.ChannelDeleted{ChannelID: ids[arg%4]}
		case 7:
			ev = domain.MessageRedacted{ChannelID: ids[arg%4], Sequence: uint64(arg>>2) % 6}
		default:
			ch := ids[arg%4]
			if arg%4 == 2 {
				ch = fmt.Sprintf("channel-%d", arg%8)
			}
			cmid := ""
			if arg%5 != 0 {
				cmid = fmt.Sprintf("k%d", arg%7)
			}
			// Mostly identical repeats; some by another author or with
			// another payload (idempotency conflicts).
			author, payload := "u", []byte(nil)
			switch (op >> 3) % 4 {
			case 2:
				author = "v"
			case 3:
				payload = []byte("p")
			}
			ev = domain.MessageSent{ChannelID: ch, AuthorID: author, Payload: payload, ClientMessageID: cmid, CreatedAt: now}
		}
		if n := len(entries); n == 0 || len(entries[n-1].Events) == perEntry {
			entries = append(entries, Entry{Index: uint64(n + 1), Term: 1})
		}
		e := &entries[len(entries)-1]
		e.Events = append(e.Events, ev)
	}
	return entries
}

// retentionFrom picks small limits (mostly none), so trims are frequent.
func retentionFrom(b byte) domain.Retention {
	return domain.Retention{
		MaxMessages: []uint64{0, 0, 1, 3}[b%4],
		MaxBytes:    []uint64{0, 0, 1, 2}[(b>>2)%4],
		MaxAge:      []time.Duration{0, 0, 5 * time.Minute, 500 * time.Millisecond}[(b>>4)%4], // the last is invalid
	}
}

// FuzzApply applies random event sequences, grouped into entries of random
// size and offered in batches of random size, with commits per batch or
// deferred and flushed at random points, and checks every result and the
// final history against the model.
func FuzzApply(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 1, 1, 1, 0, 0, 2, 1, 2, 1, 10}, uint8(3), uint8(0))
	f.Add([]byte{0, 1, 2, 1, 2, 1, 18, 1, 26, 1, 7, 5, 26, 1, 2, 1}, uint8(0x32), uint8(0)) // conflicts: author v, payload p
	f.Add([]byte{0, 0, 2, 1, 2, 1, 7, 4, 5, 1, 6, 0, 2, 1, 0, 0, 2, 1, 7, 8, 6, 0, 6, 0}, uint8(0x12), uint8(1))
	f.Add([]byte{1, 0, 0, 1, 1, 1, 1, 1, 0, 1, 2, 6}, uint8(1), uint8(5))
	f.Add([]byte{0, 2, 0, 2, 1, 2, 1, 3, 0, 3}, uint8(64), uint8(0x13))
	f.Add([]byte{0, 0, 1, 1, 1, 1, 1, 6, 1, 1, 0, 1, 1, 11, 1, 1, 1, 0}, uint8(0x25), uint8(0x1b))
	// Retention: count and byte limits, a tightened update, expiry with a
	// dedup horizon, then repeats of trimmed keys.
	f.Add([]byte{0x30, 0, 2, 1, 2, 2, 2, 3, 58, 4, 8, 0x20, 2, 5, 9, 1, 2, 1, 9, 1, 2, 2, 2, 1}, uint8(0x23), uint8(0x03))
	f.Add([]byte{0xf0, 0, 2, 1, 2, 2, 26, 3, 2, 4, 9, 2, 9, 2, 2, 1, 2, 2, 7, 20, 9, 0, 2, 1}, uint8(0x11), uint8(0x06))
	f.Add([]byte{0, 0, 8, 0x30, 2, 1, 2, 2, 2, 3, 2, 4, 9, 1, 9, 2, 2, 1, 6, 0, 0, 0, 2, 1}, uint8(0x40), uint8(0x01))
	f.Fuzz(func(t *testing.T, data []byte, batch, mode uint8) {
		if len(data) > 400 {
			data = data[:400]
		}
		entries := eventsFrom(data, int(batch>>4)+1)
		if len(entries) == 0 {
			return
		}
		size := int(batch%16) + 1
		var s *Store
		if mode&1 == 0 {
			s = mustOpen(t)
		} else {
			s = openDeferred(t, filepath.Join(t.TempDir(), FileName), time.Hour)
			defer s.Close()
		}
		flushEvery := int(mode>>1)%4 + 1
		m := &model{channels: map[string]*modelChannel{}, dedup: map[[2]string]modelDedup{}, deleted: map[string]uint64{},
			queued: map[[2]string]time.Time{}}
		for i, n := 0, 0; i < len(entries); i, n = i+size, n+1 {
			chunk := entries[i:min(i+size, len(entries))]
			rs := mustApply(t, s, chunk...)
			for j, e := range chunk {
				for k, ev := range e.Events {
					want := m.apply(e.Index, k, ev)
					got := rs[j][k]
					got.Channel.CreatedAt, want.Channel.CreatedAt = got.Channel.CreatedAt.UTC(), want.Channel.CreatedAt.UTC()
					if domain.ErrorCode(got.Err) != domain.ErrorCode(want.Err) || got.Sequence != want.Sequence ||
						got.Deduplicated != want.Deduplicated || got.Created != want.Created || got.Channel.ID != want.Channel.ID || got.Channel.Name != want.Channel.Name ||
						got.Deleted != want.Deleted || got.Redacted != want.Redacted || got.Trimmed != want.Trimmed {
						t.Fatalf("entry %d event %d %+v: got %+v, model %+v", e.Index, k, ev, got, want)
					}
				}
			}
			if n%flushEvery == 0 {
				if err := s.Flush(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := s.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		for id, ch := range m.channels {
			if ch.trimmed > 0 {
				var tr *domain.TrimmedError
				if _, _, err := s.History(context.Background(), id, ch.trimmed-1, 1000, 0); !errors.As(err, &tr) || tr.FirstSequence != ch.trimmed+1 {
					t.Fatalf("channel %s trimmed through %d: reading after %d gave %v", id, ch.trimmed, ch.trimmed-1, err)
				}
			}
			msgs, _, err := s.History(context.Background(), id, ch.trimmed, 1000, 0)
			if err != nil || uint64(len(msgs)) != ch.last()-ch.first()+1 {
				t.Fatalf("channel %s: %d messages (%v), model %d", id, len(msgs), err, ch.last()-ch.first()+1)
			}
			for i, msg := range msgs {
				seq := ch.first() + uint64(i)
				if msg.Sequence != seq || msg.ClientMessageID != ch.msgs[seq-ch.base-1] || msg.Redacted != ch.redacted[seq] {
					t.Fatalf("channel %s position %d: %+v, model %q redacted %v", id, i, msg, ch.msgs[seq-ch.base-1], ch.redacted[seq])
				}
			}
			got, err := s.Channel(context.Background(), id)
			if err != nil || got.Name != ch.name || got.LastSequence != ch.last() || got.TrimmedThrough != ch.trimmed ||
				got.Retention != ch.ret || got.MessageCount != uint64(len(msgs)) {
				t.Fatalf("channel %s: %+v %v, model %+v", id, got, err, ch)
			}
		}
	})
}
