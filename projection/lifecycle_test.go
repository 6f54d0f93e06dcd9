package projection

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/raftogram/raftogram/domain"
)

func ev(index uint64, events ...domain.Event) Entry {
	return Entry{Index: index, Term: 1, Events: events}
}

func TestUpdateChannel(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	mustApply(t, s, create(1, "c", "Old"))
	rs := mustApply(t, s, ev(2, domain.ChannelUpdated{ChannelID: "c", Name: "New"}), ev(3, domain.ChannelUpdated{ChannelID: "c"}),
		ev(4, domain.ChannelUpdated{ChannelID: "nope", Name: "x"}), ev(5, domain.ChannelUpdated{ChannelID: "c", Name: "bad\x00"}))
	if rs[0][0].Err != nil || rs[0][0].Channel.Name != "New" || rs[1][0].Err != nil || rs[1][0].Channel.Name != "New" {
		t.Fatalf("updates: %+v %+v", rs[0], rs[1])
	}
	if domain.ErrorCode(rs[2][0].Err) != domain.ENOTFOUND || domain.ErrorCode(rs[3][0].Err) != domain.EINVALID {
		t.Fatalf("rejections: %v %v", rs[2][0].Err, rs[3][0].Err)
	}
	if ch, err := s.Channel(ctx, "c"); err != nil || ch.Name != "New" {
		t.Fatalf("stored: %+v %v", ch, err)
	}
}

func TestDeleteChannelAndCreateItAgain(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	mustApply(t, s, create(1, "c", "C"), create(2, "other", "O"), send(3, "c", "k1"), send(4, "c", "k2"), send(5, "other", "k1"))
	// A send and the delete in one Apply call: the buffered row goes too.
	rs := mustApply(t, s, send(6, "c", "k3"), ev(7, domain.ChannelDeleted{ChannelID: "c"}), ev(8, domain.ChannelDeleted{ChannelID: "c"}),
		send(9, "c", "k4"))
	if rs[1][0].Err != nil || !rs[1][0].Deleted || rs[2][0].Err != nil || rs[2][0].Deleted {
		t.Fatalf("delete, delete again: %+v %+v", rs[1], rs[2])
	}
	if domain.ErrorCode(rs[3][0].Err) != domain.ENOTFOUND {
		t.Fatalf("send to a deleted channel: %+v", rs[3])
	}
	if _, err := s.Channel(ctx, "c"); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatalf("deleted channel: %v", err)
	}
	if _, _, err := s.History(ctx, "c", 0, 10, 0); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatalf("history of a deleted channel: %v", err)
	}
	if msgs, _, err := s.History(ctx, "other", 0, 10, 0); err != nil || len(msgs) != 1 {
		t.Fatalf("other channel: %v %v", msgs, err)
	}
	// Created again: sequences continue after the deleted channel's last
	// (3), and the old client_message_ids are forgotten.
	rs = mustApply(t, s, create(10, "c", "Again"), send(11, "c", "k1"), send(12, "c", "k1"))
	if !rs[0][0].Created || rs[1][0].Sequence != 4 || rs[1][0].Deduplicated || rs[2][0].Sequence != 4 || !rs[2][0].Deduplicated {
		t.Fatalf("created again: %+v %+v %+v", rs[0], rs[1], rs[2])
	}
	ch, err := s.Channel(ctx, "c")
	if err != nil || ch.Name != "Again" || ch.FirstSequence != 4 || ch.LastSequence != 4 || ch.MessageCount != 1 {
		t.Fatalf("channel again: %+v %v", ch, err)
	}
	// Deleted and created again within one Apply call.
	rs = mustApply(t, s, ev(13, domain.ChannelDeleted{ChannelID: "c"}, domain.ChannelCreated{ChannelID: "c", Name: "Third"},
		domain.MessageSent{ChannelID: "c", AuthorID: "a", ClientMessageID: "k1"}))
	if !rs[0][0].Deleted || !rs[0][1].Created || rs[0][2].Sequence != 5 || rs[0][2].Deduplicated {
		t.Fatalf("delete+create+send in one entry: %+v", rs[0])
	}
}

func TestRedactMessage(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	mustApply(t, s, create(1, "c", "C"), send(2, "c", "k1"), send(3, "c", "k2"))
	rs := mustApply(t, s,
		send(4, "c", "k3"), // buffered in the same call as its redaction
		ev(5, domain.MessageRedacted{ChannelID: "c", Sequence: 3, Reason: "spam"}),
		ev(6, domain.MessageRedacted{ChannelID: "c", Sequence: 1, Reason: "erasure request"}),
		ev(7, domain.MessageRedacted{ChannelID: "c", Sequence: 1}),
		ev(8, domain.MessageRedacted{ChannelID: "c", Sequence: 9}),
		ev(9, domain.MessageRedacted{ChannelID: "nope", Sequence: 1}),
		ev(10, domain.MessageRedacted{ChannelID: "c"}),
		send(11, "c", "k1"), // a redacted message still deduplicates
	)
	if !rs[1][0].Redacted || !rs[2][0].Redacted || rs[3][0].Err != nil || rs[3][0].Redacted {
		t.Fatalf("redactions: %+v %+v %+v", rs[1], rs[2], rs[3])
	}
	if domain.ErrorCode(rs[4][0].Err) != domain.ENOTFOUND || domain.ErrorCode(rs[5][0].Err) != domain.ENOTFOUND || domain.ErrorCode(rs[6][0].Err) != domain.EINVALID {
		t.Fatalf("rejections: %v %v %v", rs[4][0].Err, rs[5][0].Err, rs[6][0].Err)
	}
	if rs[7][0].Sequence != 1 || !rs[7][0].Deduplicated {
		t.Fatalf("resend of a redacted message's id: %+v", rs[7])
	}
	msgs, _, err := s.History(ctx, "c", 0, 10, 0)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("history: %v %v", msgs, err)
	}
	for _, m := range msgs {
		redacted := m.Sequence == 1 || m.Sequence == 3
		if m.Redacted != redacted || (len(m.Payload) == 0) != redacted || m.AuthorID != "alice" || m.ClientMessageID == "" {
			t.Fatalf("message %d: %+v", m.Sequence, m)
		}
	}
	// The payload is gone from the file, not only from the rows, once the
	// WAL (which holds older page versions until it starts over) is
	// checkpointed; snapshot copies never hold it.
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	backup := t.TempDir() + "/copy.db"
	if err := s.Backup(ctx, backup); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{s.Path(), s.Path() + "-wal", backup} {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		if bytes.Contains(data, []byte("pk1")) {
			t.Errorf("%s still holds the redacted payload", path)
		}
	}
}

// Nodes that apply the same entries, however they are split into Apply
// calls, end with equal digests.
func TestLifecycleEventsAreDeterministic(t *testing.T) {
	var entries []Entry
	i := uint64(0)
	next := func(evs ...domain.Event) { i++; entries = append(entries, Entry{Index: i, Term: 1, Events: evs}) }
	at := time.Unix(1, 0)
	for round := range 3 {
		id := fmt.Sprint("c", round%2)
		next(domain.ChannelCreated{ChannelID: id, Name: id, CreatedAt: at})
		for k := range 5 {
			next(domain.MessageSent{ChannelID: id, AuthorID: "a", Payload: []byte("x"), ClientMessageID: fmt.Sprint(k), CreatedAt: at})
		}
		next(domain.MessageRedacted{ChannelID: id, Sequence: 2})
		next(domain.ChannelUpdated{ChannelID: id, Name: "renamed"})
		if round == 1 {
			next(domain.ChannelDeleted{ChannelID: "c0"})
		}
	}
	var digests []string
	for _, split := range []int{1, 3, len(entries)} {
		s := mustOpen(t)
		for j := 0; j < len(entries); j += split {
			mustApply(t, s, entries[j:min(j+split, len(entries))]...)
		}
		digests = append(digests, mustDigest(t, s))
	}
	if digests[0] != digests[1] || digests[1] != digests[2] {
		t.Fatalf("digests differ by split: %v", digests)
	}
}
