package projection

import (
	"context"
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
	redacted map[uint64]bool
}

func (ch *modelChannel) last() uint64 { return ch.base + uint64(len(ch.msgs)) }

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
		m.channels[id] = &modelChannel{name: ev.Name, base: m.deleted[id], redacted: map[uint64]bool{}}
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
		seq := ch.last()
		if ev.ClientMessageID != "" {
			m.dedup[key] = modelDedup{seq, ev.AuthorID, string(ev.Payload)}
		}
		return domain.Result{Sequence: seq}
	case domain.ChannelUpdated:
		ch, ok := m.channels[ev.ChannelID]
		if !ok {
			return domain.Result{Err: domain.Errorf(domain.ENOTFOUND, "channel %q not found", ev.ChannelID)}
		}
		if ev.Name != "" {
			ch.name = ev.Name
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
			}
		}
		return domain.Result{Deleted: true}
	case domain.MessageRedacted:
		ch, ok := m.channels[ev.ChannelID]
		switch {
		case !ok:
			return domain.Result{Err: domain.Errorf(domain.ENOTFOUND, "channel %q not found", ev.ChannelID)}
		case ev.Sequence <= ch.base || ev.Sequence > ch.last():
			return domain.Result{Err: domain.Errorf(domain.ENOTFOUND, "message %d not found", ev.Sequence)}
		case ch.redacted[ev.Sequence]:
			return domain.Result{}
		}
		ch.redacted[ev.Sequence] = true
		return domain.Result{Redacted: true}
	}
	panic("unreachable")
}

// eventsFrom turns fuzz bytes into a small-alphabet event sequence, so that
// collisions (existing channels, repeated ids) are frequent, grouped
// perEntry events to a log entry (as group commit does).
func eventsFrom(data []byte, perEntry int) []Entry {
	ids := []string{"a", "b", "", "bad id"}
	var entries []Entry
	for i := 0; i+1 < len(data); i += 2 {
		op, arg := data[i], data[i+1]
		var ev domain.Event
		switch op % 8 {
		case 0, 1:
			ev = domain.ChannelCreated{ChannelID: ids[arg%4], Name: fmt.Sprintf("n%d", arg%3)}
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
			ev = domain.MessageSent{ChannelID: ch, AuthorID: author, Payload: payload, ClientMessageID: cmid}
		}
		if n := len(entries); n == 0 || len(entries[n-1].Events) == perEntry {
			entries = append(entries, Entry{Index: uint64(n + 1), Term: 1})
		}
		e := &entries[len(entries)-1]
		e.Events = append(e.Events, ev)
	}
	return entries
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
		m := &model{channels: map[string]*modelChannel{}, dedup: map[[2]string]modelDedup{}, deleted: map[string]uint64{}}
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
						got.Deleted != want.Deleted || got.Redacted != want.Redacted {
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
			msgs, _, err := s.History(context.Background(), id, 0, 1000, 0)
			if err != nil || len(msgs) != len(ch.msgs) {
				t.Fatalf("channel %s: %d messages (%v), model %d", id, len(msgs), err, len(ch.msgs))
			}
			for i, msg := range msgs {
				seq := ch.base + uint64(i+1)
				if msg.Sequence != seq || msg.ClientMessageID != ch.msgs[i] || msg.Redacted != ch.redacted[seq] {
					t.Fatalf("channel %s position %d: %+v, model %q redacted %v", id, i, msg, ch.msgs[i], ch.redacted[seq])
				}
			}
			if got, err := s.Channel(context.Background(), id); err != nil || got.Name != ch.name || got.LastSequence != ch.last() {
				t.Fatalf("channel %s: %+v %v, model %+v", id, got, err, ch)
			}
		}
	})
}
