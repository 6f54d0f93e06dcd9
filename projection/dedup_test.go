package projection

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raftogram/raftogram/domain"
)

func sendAs(author, payload, cmid string) domain.MessageSent {
	return domain.MessageSent{ChannelID: "c", AuthorID: author, Payload: []byte(payload), ClientMessageID: cmid, CreatedAt: t0}
}

func entry(index uint64, evs ...domain.Event) Entry {
	return Entry{Index: index, Term: 1, Events: evs}
}

// wantConflict fails unless r is an EEXISTS rejection naming the key, the
// message that holds it and what differs.
func wantConflict(t *testing.T, r domain.Result, seq, what string) {
	t.Helper()
	msg := domain.ErrorMessage(r.Err)
	if domain.ErrorCode(r.Err) != domain.EEXISTS || r.Sequence != 0 || r.Deduplicated ||
		!strings.Contains(msg, `"k"`) || !strings.Contains(msg, `channel "c"`) || !strings.Contains(msg, "message "+seq) || !strings.Contains(msg, what) {
		t.Fatalf("got %+v (%q), want an EEXISTS conflict with message %s, %s", r, msg, seq, what)
	}
}

// checkOnlyOriginal asserts the channel holds the one message "k" took.
func checkOnlyOriginal(t *testing.T, s *Store) {
	t.Helper()
	msgs, _, err := s.History(context.Background(), "c", 0, 100, 0)
	if err != nil || len(msgs) != 1 || msgs[0].AuthorID != "alice" || string(msgs[0].Payload) != "hi" {
		t.Fatalf("history %+v %v, want alice's one message", msgs, err)
	}
}

// Across batches (the dedup row is read back from the database, also
// after a reopen): an identical repeat is deduplicated, one with another
// author or payload is rejected and changes nothing but the applied index.
func TestDedupConflictAcrossBatches(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, create(1, "c", "c"), entry(2, sendAs("alice", "hi", "k")))
	before := mustDigest(t, s)
	for i, tc := range []struct {
		ev   domain.MessageSent
		what string
	}{
		{sendAs("alice", "hi", "k"), ""},
		{sendAs("bob", "hi", "k"), "another author"},
		{sendAs("alice", "HI", "k"), "another payload"},
		{sendAs("alice", "", "k"), "another payload"},
		{sendAs("bob", "HI", "k"), "another author"}, // both differ: the author is named
	} {
		if i == 2 { // the rest read the row from a reopened file
			s.Close()
			if s, err = Open(context.Background(), path, Options{}); err != nil {
				t.Fatal(err)
			}
		}
		idx := uint64(3 + i)
		r := mustApply(t, s, entry(idx, tc.ev))[0][0]
		if tc.what == "" {
			if r.Err != nil || r.Sequence != 1 || !r.Deduplicated {
				t.Fatalf("identical repeat: %+v, want sequence 1 deduplicated", r)
			}
		} else {
			wantConflict(t, r, "1", tc.what)
		}
		if s.AppliedIndex() != idx {
			t.Fatalf("applied index %d after a repeat at %d", s.AppliedIndex(), idx)
		}
		if got := mustDigest(t, s); got != before {
			t.Fatalf("repeat %d changed the state", i)
		}
	}
	checkOnlyOriginal(t, s)
	s.Close()
}

// In one batch (as group commit builds it: a retry next to its original),
// in one entry and across entries of one Apply call, before anything is
// written: identical repeats dedup, different ones conflict.
func TestDedupConflictInOneBatch(t *testing.T) {
	s := mustOpen(t)
	mustApply(t, s, create(1, "c", "c"))
	rs := mustApply(t, s,
		entry(2, sendAs("alice", "hi", "k"), sendAs("alice", "hi", "k"), sendAs("mallory", "hi", "k")),
		entry(3, sendAs("alice", "evil", "k"), sendAs("alice", "hi", "k"), sendAs("alice", "other", "k2")),
	)
	if r := rs[0][0]; r.Err != nil || r.Sequence != 1 || r.Deduplicated {
		t.Fatalf("first send: %+v", r)
	}
	for _, r := range []domain.Result{rs[0][1], rs[1][1]} {
		if r.Err != nil || r.Sequence != 1 || !r.Deduplicated {
			t.Fatalf("identical repeat in the batch: %+v", r)
		}
	}
	wantConflict(t, rs[0][2], "1", "another author")
	wantConflict(t, rs[1][0], "1", "another payload")
	if r := rs[1][2]; r.Err != nil || r.Sequence != 2 {
		t.Fatalf("a new id after the conflicts: %+v, want sequence 2", r)
	}
	if s.AppliedIndex() != 3 {
		t.Fatalf("applied index %d, want 3", s.AppliedIndex())
	}
	msgs, _, err := s.History(context.Background(), "c", 0, 100, 0)
	if err != nil || len(msgs) != 2 || string(msgs[0].Payload) != "hi" || string(msgs[1].Payload) != "other" {
		t.Fatalf("history %+v %v", msgs, err)
	}
}

// Redaction blanks the payload but not the dedup row: a repeat of the
// original send still dedups, a repeat with the blanked payload conflicts.
func TestDedupAfterRedactionKeepsOriginalHash(t *testing.T) {
	s := mustOpen(t)
	mustApply(t, s, create(1, "c", "c"), entry(2, sendAs("alice", "hi", "k")),
		entry(3, domain.MessageRedacted{ChannelID: "c", Sequence: 1}))
	rs := mustApply(t, s, entry(4, sendAs("alice", "hi", "k"), sendAs("alice", "", "k")))
	if r := rs[0][0]; r.Err != nil || r.Sequence != 1 || !r.Deduplicated {
		t.Fatalf("repeat of the original after redaction: %+v", r)
	}
	wantConflict(t, rs[0][1], "1", "another payload")
}

// A deleted channel's ids are free again in a channel created with its id.
func TestDedupForgottenWithDeletedChannel(t *testing.T) {
	s := mustOpen(t)
	mustApply(t, s, create(1, "c", "c"), entry(2, sendAs("alice", "hi", "k")),
		entry(3, domain.ChannelDeleted{ChannelID: "c"}), create(4, "c", "c"))
	if r := mustApply(t, s, entry(5, sendAs("bob", "new", "k")))[0][0]; r.Err != nil || r.Sequence != 2 || r.Deduplicated {
		t.Fatalf("send with a deleted channel's id: %+v, want sequence 2", r)
	}
}
