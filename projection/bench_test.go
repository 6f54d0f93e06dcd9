package projection

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/raftogram/raftogram/domain"
)

// BenchmarkApplyBatch applies batches of 64 sends with dedup ids spread over
// 64 channels, as a busy leader's FSM does. ns/op is per message.
func BenchmarkApplyBatch(b *testing.B) {
	applySpread(b, mustOpen(b), func(index uint64) string { return fmt.Sprintf("m%d", index) })
}

// applySpread creates 64 channels in s, then applies b.N sends in batches
// of 64 entries, one send to each channel, with the client message ids id
// returns for their log indexes.
func applySpread(b *testing.B, s *Store, id func(index uint64) string) {
	var setup []Entry
	for c := range 64 {
		setup = append(setup, create(uint64(c+1), fmt.Sprintf("c%d", c), "x"))
	}
	mustApply(b, s, setup...)
	payload := make([]byte, 128)
	index := uint64(len(setup))
	b.ResetTimer()
	for i := 0; i < b.N; i += 64 {
		batch := make([]Entry, 0, 64)
		for j := 0; j < 64; j++ {
			index++
			batch = append(batch, Entry{Index: index, Term: 1, Events: []domain.Event{domain.MessageSent{
				ChannelID: fmt.Sprintf("c%d", j), AuthorID: "bench", Payload: payload,
				ClientMessageID: id(index), CreatedAt: time.Unix(0, int64(index)),
			}}})
		}
		mustApply(b, s, batch...)
	}
}

// BenchmarkHistory reads 100 messages at varying offsets from a channel of
// 1,000 or 1,000,000 messages, forwards (after a sequence) and backwards
// (newest first, before a sequence): the cost must not grow with the
// channel, and a backward page must cost what a forward one does. Each
// channel is filled once, outside the timed runs:
//
//	go test -run '^$' -bench History -benchtime 20000x ./projection
func BenchmarkHistory(b *testing.B) {
	for _, size := range []int{1_000, 1_000_000} {
		s := mustOpen(b)
		mustApply(b, s, create(1, "c", "c"))
		payload := make([]byte, 128)
		index := uint64(1)
		for done := 0; done < size; {
			batch := make([]Entry, 0, 1000)
			for j := 0; j < 1000 && done < size; j++ {
				index++
				done++
				batch = append(batch, Entry{Index: index, Term: 1, Events: []domain.Event{domain.MessageSent{
					ChannelID: "c", AuthorID: "a", Payload: payload, ClientMessageID: fmt.Sprint("m", index)}}})
			}
			mustApply(b, s, batch...)
		}
		for _, newestFirst := range []bool{false, true} {
			dir := "forward"
			if newestFirst {
				dir = "backward"
			}
			b.Run(fmt.Sprintf("channel=%d/%s", size, dir), func(b *testing.B) {
				ctx := context.Background()
				for i := 0; b.Loop(); i++ {
					after := uint64((i * 7919) % (size - 100))
					rng := Range{After: after, Limit: 100}
					if newestFirst {
						rng = Range{Before: after + 101, NewestFirst: true, Limit: 100}
					}
					msgs, _, err := s.Page(ctx, "c", rng)
					if err != nil || len(msgs) != 100 {
						b.Fatalf("%d messages, %v", len(msgs), err)
					}
				}
			})
		}
	}
}

// BenchmarkSnapshotAndReopen fills a projection with
// $RAFTOGRAM_BENCH_MESSAGES messages (default 100,000; 128-byte payloads,
// 100 channels) once, then reports the size, the time of a snapshot copy
// (VACUUM INTO) and of a reopen including the integrity check:
//
//	RAFTOGRAM_BENCH_MESSAGES=1000000 go test -run '^$' -bench SnapshotAndReopen -benchtime 1x ./projection
func BenchmarkSnapshotAndReopen(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("RAFTOGRAM_BENCH_MESSAGES")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	dir := b.TempDir()
	path := filepath.Join(dir, FileName)
	s, err := Open(ctx, path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	var setup []Entry
	for c := range 100 {
		setup = append(setup, create(uint64(c+1), fmt.Sprintf("c%d", c), "x"))
	}
	mustApply(b, s, setup...)
	index := uint64(len(setup))
	payload := make([]byte, 128)
	for done := 0; done < n; {
		events := make([]domain.Event, 0, 1000)
		for j := 0; j < 1000 && done < n; j++ {
			events = append(events, domain.MessageSent{ChannelID: fmt.Sprintf("c%d", (done/1000)%100), AuthorID: "a",
				Payload: payload, ClientMessageID: fmt.Sprintf("m%d", done), CreatedAt: time.Unix(0, int64(done))})
			done++
		}
		index++
		mustApply(b, s, Entry{Index: index, Term: 1, Events: events})
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		copyPath := filepath.Join(dir, fmt.Sprintf("copy-%d.db", i))
		start := time.Now()
		if err := s.Backup(ctx, copyPath); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "snapshot-s")
		info, err := os.Stat(copyPath)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(info.Size())/(1<<20), "MB")
		os.Remove(copyPath)
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		if s, err = Open(ctx, path, Options{}); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "reopen-s")
	}
	s.Close()
}
