package projection

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/raftogram/raftogram/domain"
)

// BenchmarkApplyBatch applies batches of 64 sends with dedup ids spread over
// 64 channels, as a busy leader's FSM does. ns/op is per message.
func BenchmarkApplyBatch(b *testing.B) {
	s := mustOpen(b)
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
				ClientMessageID: fmt.Sprintf("m%d", index), CreatedAt: time.Unix(0, int64(index)),
			}}})
		}
		mustApply(b, s, batch...)
	}
}

// BenchmarkHistory reads 100 messages at varying offsets from a channel of
// 1,000 or 100,000 messages: the cost must not grow with the channel.
func BenchmarkHistory(b *testing.B) {
	for _, size := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("channel=%d", size), func(b *testing.B) {
			s := mustOpen(b)
			mustApply(b, s, create(1, "c", "c"))
			payload := make([]byte, 128)
			index := uint64(1)
			for done := 0; done < size; {
				batch := make([]Entry, 0, 1000)
				for j := 0; j < 1000 && done < size; j++ {
					index++
					done++
					batch = append(batch, Entry{Index: index, Term: 1, Events: []domain.Event{domain.MessageSent{ChannelID: "c", AuthorID: "a", Payload: payload}}})
				}
				mustApply(b, s, batch...)
			}
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				after := uint64((i * 7919) % (size - 100))
				msgs, _, err := s.History(ctx, "c", after, 100, 0)
				if err != nil || len(msgs) != 100 {
					b.Fatalf("%d messages, %v", len(msgs), err)
				}
			}
		})
	}
}
