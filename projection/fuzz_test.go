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
	dedup    map[[2]string]uint64
}

type modelChannel struct {
	name string
	msgs []string // client_message_id by sequence-1
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
			return domain.Result{Channel: domain.Channel{ID: id, Name: ch.name, LastSequence: uint64(len(ch.msgs))}}
		}
		m.channels[id] = &modelChannel{name: ev.Name}
		return domain.Result{Channel: domain.Channel{ID: id, Name: ev.Name}, Created: true}
	case domain.MessageSent:
		ch, ok := m.channels[ev.ChannelID]
		if !ok {
			return domain.Result{Err: domain.Errorf(domain.ENOTFOUND, "channel %q not found", ev.ChannelID)}
		}
		key := [2]string{ev.ChannelID, ev.ClientMessageID}
		if seq, ok := m.dedup[key]; ok && ev.ClientMessageID != "" {
			return domain.Result{Sequence: seq, Deduplicated: true}
		}
		ch.msgs = append(ch.msgs, ev.ClientMessageID)
		seq := uint64(len(ch.msgs))
		if ev.ClientMessageID != "" {
			m.dedup[key] = seq
		}
		return domain.Result{Sequence: seq}
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
		switch op % 3 {
		case 0:
			ev = domain.ChannelCreated{ChannelID: ids[arg%4], Name: fmt.Sprintf("n%d", arg%3)}
		default:
			ch := ids[arg%4]
			if arg%4 == 2 {
				ch = fmt.Sprintf("channel-%d", arg%8)
			}
			cmid := ""
			if arg%5 != 0 {
				cmid = fmt.Sprintf("k%d", arg%7)
			}
			ev = domain.MessageSent{ChannelID: ch, AuthorID: "u", ClientMessageID: cmid}
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
		m := &model{channels: map[string]*modelChannel{}, dedup: map[[2]string]uint64{}}
		for i, n := 0, 0; i < len(entries); i, n = i+size, n+1 {
			chunk := entries[i:min(i+size, len(entries))]
			rs := mustApply(t, s, chunk...)
			for j, e := range chunk {
				for k, ev := range e.Events {
					want := m.apply(e.Index, k, ev)
					got := rs[j][k]
					got.Channel.CreatedAt, want.Channel.CreatedAt = got.Channel.CreatedAt.UTC(), want.Channel.CreatedAt.UTC()
					if domain.ErrorCode(got.Err) != domain.ErrorCode(want.Err) || got.Sequence != want.Sequence ||
						got.Deduplicated != want.Deduplicated || got.Created != want.Created || got.Channel.ID != want.Channel.ID || got.Channel.Name != want.Channel.Name {
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
				if msg.Sequence != uint64(i+1) || msg.ClientMessageID != ch.msgs[i] {
					t.Fatalf("channel %s position %d: %+v, model %q", id, i, msg, ch.msgs[i])
				}
			}
		}
	})
}
