package cluster

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// fakePipeline is a raft.AppendPipeline whose finished appends are handed
// over on an unbuffered channel, like the network transport's.
type fakePipeline struct {
	done   chan raft.AppendFuture
	closed chan struct{}
}

func (p *fakePipeline) AppendEntries(*raft.AppendEntriesRequest, *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	return nil, nil
}
func (p *fakePipeline) Consumer() <-chan raft.AppendFuture { return p.done }
func (p *fakePipeline) Close() error                       { close(p.closed); return nil }

// fakeAppendFuture is a finished append told apart by n.
type fakeAppendFuture struct {
	raft.AppendFuture
	n int
}

// TestDrainedPipelineNeverBlocksTheNetworkPipeline hands finished appends
// to the pipeline while nobody reads its Consumer (raft's decoder has
// returned), checks that each hand-over completes, that a reader then gets
// them in order, and that Close closes the network pipeline.
func TestDrainedPipelineNeverBlocksTheNetworkPipeline(t *testing.T) {
	inner := &fakePipeline{done: make(chan raft.AppendFuture), closed: make(chan struct{})}
	d := newDrainedPipeline(inner, nil)
	for i := range 5 {
		select {
		case inner.done <- fakeAppendFuture{n: i}:
		case <-time.After(10 * time.Second):
			t.Fatalf("finished append %d was not taken while nobody reads the consumer", i)
		}
	}
	for i := range 5 {
		select {
		case f := <-d.Consumer():
			if got := f.(fakeAppendFuture).n; got != i {
				t.Fatalf("consumer gave append %d, want %d", got, i)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("append %d never reached the consumer", i)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-inner.closed:
	default:
		t.Fatal("Close did not close the network pipeline")
	}
}
