package projection

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/raftogram/raftogram/domain"
)

// pageCount returns the database's size in pages.
func pageCount(t testing.TB, s *Store) int64 {
	t.Helper()
	var n int64
	if err := s.w.QueryRowContext(context.Background(), `PRAGMA page_count`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Trimming gives the freed pages back to the file system over the next
// commits, a bounded step at a time.
func TestTrimmedSpaceIsReclaimed(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	mustApply(t, s, entry(1, domain.ChannelCreated{ChannelID: "c", Name: "c", CreatedAt: t0}))
	index := uint64(1)
	for b := range 20 {
		var evs []domain.Event
		for i := range 100 {
			evs = append(evs, sized("c", fmt.Sprint(b, "-", i), 4000, t0))
		}
		index++
		mustApply(t, s, entry(index, evs...))
	}
	full := pageCount(t, s) // 2000 messages of 4000 bytes: about 2000 pages
	if full < 2000 {
		t.Fatalf("%d pages for 8 MB of messages", full)
	}
	index++
	mustApply(t, s, entry(index, domain.ChannelUpdated{ChannelID: "c", Retention: &domain.Retention{MaxMessages: 10}}))
	// Each commit reclaims at most reclaimStep pages; a few suffice.
	for range 3 {
		index++
		mustApply(t, s, entry(index, sized("c", fmt.Sprint("more", index), 10, t0)))
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := pageCount(t, s); got > reclaimAbove+100 {
		t.Fatalf("%d pages after trimming 2000 messages to 10 (was %d): the free pages were not given back", got, full)
	}
}

// BenchmarkTrimMillion measures disk use before and after trimming a
// channel of 1,000,000 128-byte messages (each with a client message id)
// to its newest 1,000, and how long the trim and the reclaiming commits
// take; with the default dedup horizon (forever) the dedup rows stay, with
// a horizon they go once it has passed:
//
//	go test -run '^$' -bench TrimMillion -benchtime 1x ./projection
func BenchmarkTrimMillion(b *testing.B) {
	for _, horizon := range []time.Duration{0, time.Hour} {
		name := "dedup-forever"
		if horizon > 0 {
			name = "dedup-horizon-1h"
		}
		b.Run(name, func(b *testing.B) { benchmarkTrimMillion(b, horizon) })
	}
}

func benchmarkTrimMillion(b *testing.B, horizon time.Duration) {
	const total, batch, keep = 1_000_000, 1000, 1000
	for range b.N {
		s := mustOpen(b)
		ctx := context.Background()
		mustApply(b, s, entry(1, domain.ChannelCreated{ChannelID: "c", Name: "c", CreatedAt: t0},
			domain.MessagesExpired{Now: t0, DedupHorizon: horizon}))
		index := uint64(1)
		for n := 0; n < total; n += batch {
			evs := make([]domain.Event, batch)
			for i := range evs {
				evs[i] = sized("c", fmt.Sprint(n+i), 128, t0)
			}
			index++
			mustApply(b, s, entry(index, evs...))
		}
		if err := s.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		before := pageCount(b, s)
		b.ResetTimer()
		start := time.Now()
		index++
		mustApply(b, s, entry(index, domain.ChannelUpdated{ChannelID: "c", Retention: &domain.Retention{MaxMessages: keep}}))
		if err := s.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		if horizon > 0 {
			index++
			mustApply(b, s, entry(index, domain.MessagesExpired{Now: t0.Add(2 * horizon), DedupHorizon: horizon}))
		}
		trim := time.Since(start)
		commits := 0
		for prev := int64(-1); ; commits++ {
			n := pageCount(b, s)
			if n == prev {
				break
			}
			prev = n
			index++
			mustApply(b, s, entry(index, sized("c", fmt.Sprint("more", index), 128, t0)))
			if err := s.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		after := pageCount(b, s)
		b.ReportMetric(float64(before*4096)/(1<<20), "MiB-before")
		b.ReportMetric(float64(after*4096)/(1<<20), "MiB-after")
		b.ReportMetric(trim.Seconds(), "s-trim")
		b.ReportMetric(float64(commits), "reclaim-commits")
	}
}
