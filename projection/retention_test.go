package projection

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/raftogram/raftogram/domain"
)

// retained returns the sequences a forward read after the trimmed point
// finds, and the channel's row.
func retained(t *testing.T, s *Store, id string) ([]uint64, domain.Channel) {
	t.Helper()
	ctx := context.Background()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	ch, err := s.Channel(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	msgs, _, err := s.History(ctx, id, ch.TrimmedThrough, 1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, m := range msgs {
		seqs = append(seqs, m.Sequence)
	}
	return seqs, ch
}

func sized(ch, cmid string, n int, at time.Time) domain.MessageSent {
	return domain.MessageSent{ChannelID: ch, AuthorID: "alice", Payload: make([]byte, n), ClientMessageID: cmid, CreatedAt: at}
}

func TestRetentionByCountBytesAndAge(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t)
	mustApply(t, s,
		entry(1, domain.ChannelCreated{ChannelID: "count", Name: "count", CreatedAt: t0, Retention: domain.Retention{MaxMessages: 3}},
			domain.ChannelCreated{ChannelID: "bytes", Name: "bytes", CreatedAt: t0, Retention: domain.Retention{MaxBytes: 100}},
			domain.ChannelCreated{ChannelID: "age", Name: "age", CreatedAt: t0, Retention: domain.Retention{MaxAge: time.Hour}}))
	var evs []domain.Event
	for i := range 10 {
		evs = append(evs, sized("count", fmt.Sprint("c", i), 10, t0), sized("bytes", fmt.Sprint("b", i), 40, t0),
			sized("age", fmt.Sprint("a", i), 10, t0.Add(time.Duration(i)*10*time.Minute)))
	}
	mustApply(t, s, entry(2, evs...))

	seqs, ch := retained(t, s, "count")
	if fmt.Sprint(seqs) != "[8 9 10]" || ch.FirstSequence != 8 || ch.MessageCount != 3 || ch.TrimmedThrough != 7 {
		t.Fatalf("count 3: kept %v, channel %+v", seqs, ch)
	}
	if seqs, ch = retained(t, s, "bytes"); fmt.Sprint(seqs) != "[9 10]" || ch.TrimmedThrough != 8 {
		t.Fatalf("100 bytes of 40-byte messages: kept %v, channel %+v", seqs, ch)
	}
	// The newest message stays even when it alone is over the limit.
	mustApply(t, s, entry(3, sized("bytes", "big", 150, t0)))
	if seqs, _ = retained(t, s, "bytes"); fmt.Sprint(seqs) != "[11]" {
		t.Fatalf("a 150-byte message under a 100-byte limit: kept %v", seqs)
	}
	// Age needs the leader's clock: nothing goes until MessagesExpired.
	if seqs, _ = retained(t, s, "age"); len(seqs) != 10 {
		t.Fatalf("age limit before any MessagesExpired: kept %v", seqs)
	}
	rs := mustApply(t, s, entry(4, domain.MessagesExpired{Now: t0.Add(95 * time.Minute)}))
	// Cutoff 35m: messages created at 0, 10, 20 and 30 minutes go.
	if seqs, _ = retained(t, s, "age"); fmt.Sprint(seqs) != "[5 6 7 8 9 10]" || rs[0][0].Trimmed != 4 {
		t.Fatalf("expired at +95m with a 1h max age: kept %v, result %+v", seqs, rs[0][0])
	}

	// Reads below the retained range: forward is OutOfRange with where the
	// channel starts, backward ends at the oldest held with has_more false.
	var tr *domain.TrimmedError
	if _, _, err := s.History(ctx, "count", 0, 10, 0); !errors.As(err, &tr) || tr.FirstSequence != 8 || domain.ErrorCode(err) != domain.ETRIMMED {
		t.Fatalf("forward read after 0 of a channel trimmed through 7: %v", err)
	}
	msgs, more, err := s.Page(ctx, "count", Range{NewestFirst: true, Limit: 10})
	if err != nil || len(msgs) != 3 || msgs[2].Sequence != 8 || more {
		t.Fatalf("backward read: %d messages, more %v, %v", len(msgs), more, err)
	}
}

func TestRetentionUpdateTrimsAtOnceAndRedactionFreesBytes(t *testing.T) {
	s := mustOpen(t)
	mustApply(t, s, entry(1, domain.ChannelCreated{ChannelID: "c", Name: "c", CreatedAt: t0}))
	var evs []domain.Event
	for i := range 5 {
		evs = append(evs, sized("c", fmt.Sprint("k", i), 50, t0))
	}
	mustApply(t, s, entry(2, evs...))
	rs := mustApply(t, s, entry(3, domain.ChannelUpdated{ChannelID: "c", Retention: &domain.Retention{MaxBytes: 120}}))
	if got := rs[0][0].Channel; got.Retention.MaxBytes != 120 || got.TrimmedThrough != 3 {
		t.Fatalf("update result %+v", got)
	}
	if seqs, _ := retained(t, s, "c"); fmt.Sprint(seqs) != "[4 5]" {
		t.Fatalf("tightened to 120 bytes: kept %v", seqs)
	}
	// Redacting 4 frees its 50 bytes: two more 50-byte messages fit then.
	mustApply(t, s, entry(4, domain.MessageRedacted{ChannelID: "c", Sequence: 4}), entry(5, sized("c", "k5", 50, t0)))
	if seqs, ch := retained(t, s, "c"); fmt.Sprint(seqs) != "[4 5 6]" || ch.TrimmedThrough != 3 {
		t.Fatalf("after redacting 4 and sending 6: kept %v", seqs)
	}
	// Redacting a trimmed message is NotFound; keep-everything stops trimming.
	rs = mustApply(t, s, entry(6, domain.MessageRedacted{ChannelID: "c", Sequence: 2},
		domain.ChannelUpdated{ChannelID: "c", Retention: &domain.Retention{}}, sized("c", "k6", 500, t0)))
	if domain.ErrorCode(rs[0][0].Err) != domain.ENOTFOUND {
		t.Fatalf("redact a trimmed message: %+v", rs[0][0])
	}
	if seqs, ch := retained(t, s, "c"); fmt.Sprint(seqs) != "[4 5 6 7]" || !ch.Retention.IsZero() {
		t.Fatalf("after clearing the retention: kept %v, %+v", seqs, ch)
	}
}

func TestDedupHorizon(t *testing.T) {
	s := mustOpen(t)
	mustApply(t, s, entry(1, domain.ChannelCreated{ChannelID: "c", Name: "c", CreatedAt: t0, Retention: domain.Retention{MaxMessages: 1}}))
	resend := func(index uint64, cmid string) domain.Result {
		t.Helper()
		return mustApply(t, s, entry(index, sized("c", cmid, 1, t0.Add(time.Duration(index)*time.Hour))))[0][0]
	}
	resend(2, "k1")
	resend(3, "k2") // trims k1
	// Default horizon (forever): a trimmed message's key keeps its sequence.
	if r := resend(4, "k1"); !r.Deduplicated || r.Sequence != 1 {
		t.Fatalf("resend of a trimmed key with no horizon: %+v", r)
	}
	// A one-hour horizon: keys of messages trimmed from now on are
	// forgotten an hour after their message was created.
	mustApply(t, s, entry(5, domain.MessagesExpired{Now: t0.Add(5 * time.Hour), DedupHorizon: time.Hour}))
	resend(6, "k3") // trims k2 (created at +3h), queued
	if r := resend(7, "k2"); !r.Deduplicated || r.Sequence != 2 {
		t.Fatalf("resend within the horizon: %+v", r)
	}
	mustApply(t, s, entry(8, domain.MessagesExpired{Now: t0.Add(8 * time.Hour), DedupHorizon: time.Hour}))
	ctx := context.Background()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if due, err := s.ExpiryDue(ctx, t0.Add(8*time.Hour), time.Hour); err != nil || due {
		t.Fatalf("ExpiryDue right after an expiry = %v, %v", due, err)
	}
	if r := resend(9, "k2"); r.Deduplicated || r.Sequence != 4 {
		t.Fatalf("resend past the horizon: %+v, want a new message 4", r)
	}
	// k1 was trimmed while the horizon was 0: kept forever.
	if r := resend(10, "k1"); !r.Deduplicated || r.Sequence != 1 {
		t.Fatalf("k1 after the horizon was set: %+v", r)
	}
	// k3 (created +6h) was trimmed by the new k2: due at +20h.
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if due, err := s.ExpiryDue(ctx, t0.Add(20*time.Hour), time.Hour); err != nil || !due {
		t.Fatalf("ExpiryDue with a queued key past the horizon = %v, %v", due, err)
	}
	if due, err := s.ExpiryDue(ctx, t0.Add(8*time.Hour), 2*time.Hour); err != nil || !due {
		t.Fatalf("ExpiryDue with another horizon = %v, %v", due, err)
	}
}
