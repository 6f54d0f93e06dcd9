package projection_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/raftogram/raftogram/domain"
	"github.com/raftogram/raftogram/metrics"
	"github.com/raftogram/raftogram/projection"
)

// BenchmarkApplyBatchObserved is BenchmarkApplyBatch with the node's
// metrics observing the store, as a running node has it: compare the two
// for the cost of the projection's instrumentation. ns/op is per message.
func BenchmarkApplyBatchObserved(b *testing.B) {
	m, err := metrics.New()
	if err != nil {
		b.Fatal(err)
	}
	s, err := projection.Open(context.Background(), filepath.Join(b.TempDir(), projection.FileName), projection.Options{Observer: m})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var index uint64
	apply := func(entries []projection.Entry) {
		if _, err := s.Apply(context.Background(), entries); err != nil {
			b.Fatal(err)
		}
	}
	var setup []projection.Entry
	for c := range 64 {
		index++
		setup = append(setup, projection.Entry{Index: index, Term: 1, Events: []domain.Event{domain.ChannelCreated{ChannelID: fmt.Sprintf("c%d", c), Name: "x"}}})
	}
	apply(setup)
	payload := make([]byte, 128)
	b.ResetTimer()
	for i := 0; i < b.N; i += 64 {
		batch := make([]projection.Entry, 0, 64)
		for j := 0; j < 64; j++ {
			index++
			batch = append(batch, projection.Entry{Index: index, Term: 1, Events: []domain.Event{domain.MessageSent{
				ChannelID: fmt.Sprintf("c%d", j), AuthorID: "bench", Payload: payload,
				ClientMessageID: fmt.Sprintf("m%d", index), CreatedAt: time.Unix(0, int64(index)),
			}}})
		}
		apply(batch)
	}
}
