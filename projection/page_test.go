package projection

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/raftogram/raftogram/domain"
)

func sequences(msgs []domain.Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Sequence
	}
	return out
}

func TestPageBothDirectionsAndBounds(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	entries := []Entry{create(1, "c", "C"), create(2, "empty", "E")}
	for i := uint64(3); i <= 12; i++ { // sequences 1..10
		entries = append(entries, send(i, "c", ""))
	}
	mustApply(t, s, entries...)
	for _, tc := range []struct {
		rng  Range
		want string
		more bool
	}{
		{Range{NewestFirst: true, Limit: 3}, "[10 9 8]", true},
		{Range{NewestFirst: true, Before: 8, Limit: 3}, "[7 6 5]", true},
		{Range{NewestFirst: true, Before: 4, Limit: 3}, "[3 2 1]", false},
		{Range{NewestFirst: true, Before: 3, Limit: 3}, "[2 1]", false},
		{Range{NewestFirst: true, Before: 1, Limit: 3}, "[]", false},
		{Range{NewestFirst: true, After: 5, Limit: 3}, "[10 9 8]", true},
		{Range{NewestFirst: true, After: 6, Before: 10, Limit: 3}, "[9 8 7]", false},
		{Range{NewestFirst: true, Before: 1 << 63, Limit: 2}, "[10 9]", true},
		{Range{Limit: 3}, "[1 2 3]", true},
		{Range{After: 7, Limit: 3}, "[8 9 10]", false},
		{Range{After: 2, Before: 6, Limit: 10}, "[3 4 5]", false},
		{Range{After: 2, Before: 6, Limit: 2}, "[3 4]", true},
		{Range{After: 1 << 63, Limit: 2}, "[]", false},
	} {
		msgs, more, err := s.Page(ctx, "c", tc.rng)
		if got := fmt.Sprint(sequences(msgs)); err != nil || got != tc.want || more != tc.more {
			t.Errorf("%+v: %s more=%v %v; want %s more=%v", tc.rng, got, more, err, tc.want, tc.more)
		}
	}
	if msgs, more, err := s.Page(ctx, "empty", Range{NewestFirst: true, Limit: 5}); err != nil || len(msgs) != 0 || more {
		t.Fatalf("empty channel: %v %v %v", msgs, more, err)
	}
	if _, _, err := s.Page(ctx, "nope", Range{NewestFirst: true, Limit: 5}); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatalf("unknown channel: %v", err)
	}
	if _, _, err := s.Page(ctx, "c", Range{NewestFirst: true}); domain.ErrorCode(err) != domain.EINVALID {
		t.Fatalf("zero limit: %v", err)
	}
	// A byte bound cuts a backward page too, after at least one message.
	msgs, more, err := s.Page(ctx, "c", Range{NewestFirst: true, Limit: 10, MaxBytes: 1})
	if err != nil || fmt.Sprint(sequences(msgs)) != "[10]" || !more {
		t.Fatalf("byte-bounded: %v %v %v", sequences(msgs), more, err)
	}
}

func TestSequenceAtFindsTheFirstMessageAtOrAfterATime(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	at := func(index uint64, ch string, created time.Time) Entry {
		return Entry{Index: index, Term: 1, Events: []domain.Event{domain.MessageSent{ChannelID: ch, AuthorID: "a", CreatedAt: created}}}
	}
	mustApply(t, s, create(1, "c", "C"), create(2, "d", "D"),
		at(3, "c", t0.Add(10*time.Second)), // 1
		at(4, "c", t0.Add(20*time.Second)), // 2
		at(5, "c", t0.Add(20*time.Second)), // 3
		at(6, "c", t0.Add(30*time.Second)), // 4
		at(7, "d", t0.Add(25*time.Second)), // d 1
	)
	for _, tc := range []struct {
		t    time.Time
		want uint64
		ok   bool
	}{
		{t0, 1, true},
		{t0.Add(10 * time.Second), 1, true},
		{t0.Add(11 * time.Second), 2, true},
		{t0.Add(20 * time.Second), 2, true},
		{t0.Add(21 * time.Second), 4, true},
		{t0.Add(30 * time.Second), 4, true},
		{t0.Add(31 * time.Second), 0, false},
	} {
		seq, ok, err := s.SequenceAt(ctx, "c", tc.t)
		if err != nil || seq != tc.want || ok != tc.ok {
			t.Errorf("at %v: %d %v %v; want %d %v", tc.t.Sub(t0), seq, ok, err, tc.want, tc.ok)
		}
	}
	if _, ok, err := s.SequenceAt(ctx, "d", t0.Add(26*time.Second)); err != nil || ok {
		t.Fatalf("d after its only message: %v %v", ok, err)
	}
	if _, _, err := s.SequenceAt(ctx, "nope", t0); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatalf("unknown channel: %v", err)
	}
}

// Every read statement is a seek plus a range scan of an index: no table
// scan, no sort. This is what makes a page cost the same at any depth in
// either direction, and after_time an index seek.
func TestReadPlansUseIndexes(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	mustApply(t, s, create(1, "c", "C"), send(2, "c", "x"))
	queries := map[string][]any{
		pageQuery + `ASC LIMIT ?`:  {0, 10, "c", 10},
		pageQuery + `DESC LIMIT ?`: {0, 10, "c", 10},
		byTimeQuery:                {0, "c"},
	}
	for q, args := range queries {
		var plan []string
		err := s.reader(func(db *sql.DB) error {
			rows, err := db.QueryContext(ctx, `EXPLAIN QUERY PLAN `+q, args...)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					return err
				}
				plan = append(plan, detail)
			}
			return rows.Err()
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, step := range plan {
			if strings.HasPrefix(step, "SCAN") || strings.Contains(step, "TEMP B-TREE") {
				t.Errorf("query %q: plan %q", q, plan)
			}
		}
	}
}
