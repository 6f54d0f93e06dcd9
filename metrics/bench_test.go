package metrics_test

import (
	"testing"
	"time"

	"github.com/raftogram/raftogram/metrics"
)

// The observers sit on hot paths (every projection batch, proposed entry,
// acknowledged write and delivered chunk): each costs one or two histogram
// observations.
func BenchmarkObservers(b *testing.B) {
	m, err := metrics.New()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("ObserveApply", func(b *testing.B) {
		for b.Loop() {
			m.ObserveApply(8, 150*time.Microsecond)
		}
	})
	b.Run("WriteAcknowledged", func(b *testing.B) {
		for b.Loop() {
			m.WriteAcknowledged(2 * time.Millisecond)
		}
	})
	b.Run("ObserveEntryEvents", func(b *testing.B) {
		for b.Loop() {
			m.ObserveEntryEvents(64)
		}
	})
}

// A scrape of a node's registry without the node's parts: the cost of the
// runtime, process, RPC and raft collectors.
func BenchmarkGather(b *testing.B) {
	m, err := metrics.New()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := m.Registry().Gather(); err != nil {
			b.Fatal(err)
		}
	}
}
