package cluster

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// transport is raft's network transport with append pipelines that are
// always drained (drainedPipeline), reporting the round trip of every
// append that carries entries to observe (nil: not measured).
type transport struct {
	*raft.NetworkTransport
	observe func(time.Duration)
}

// AppendEntries sends one append and waits for its answer.
func (t transport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	start := time.Now()
	err := t.NetworkTransport.AppendEntries(id, target, args, resp)
	if err == nil && t.observe != nil && len(args.Entries) > 0 {
		t.observe(time.Since(start))
	}
	return err
}

// AppendEntriesPipeline returns the network transport's pipeline to
// target, wrapped so that its finished appends are always taken.
func (t transport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	p, err := t.NetworkTransport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	return newDrainedPipeline(p, t.observe), nil
}

// drainedPipeline works around a deadlock in hashicorp/raft 1.7's pipeline
// replication. When a follower answers an append with Success=false (a
// higher term after a leadership transfer, a log mismatch after a
// restart), raft's pipeline decoder returns and no one reads the
// pipeline's finished appends any more; the send loop may still send one
// more append, which blocks on the full in-flight queue while the
// network pipeline's reader blocks handing over the previous answer.
// raft closes the pipeline only after the send loop returns, so the
// replication goroutine never ends and Raft.Shutdown waits for it
// forever (a stopping leader that never exits). Here a goroutine always
// takes the network pipeline's finished appends and queues them, in
// order, for raft's decoder; the send loop then never blocks and sees the
// decoder's end.
type drainedPipeline struct {
	raft.AppendPipeline
	observe  func(time.Duration) // round trip of each finished append with entries (nil: none)
	out      chan raft.AppendFuture
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

func newDrainedPipeline(p raft.AppendPipeline, observe func(time.Duration)) *drainedPipeline {
	d := &drainedPipeline{AppendPipeline: p, observe: observe, out: make(chan raft.AppendFuture), stop: make(chan struct{}), done: make(chan struct{})}
	go d.forward()
	return d
}

// forward moves finished appends from the network pipeline to out, never
// blocking the network pipeline, until Close.
func (d *drainedPipeline) forward() {
	defer close(d.done)
	in := d.AppendPipeline.Consumer()
	var queue []raft.AppendFuture
	for {
		var out chan raft.AppendFuture
		var head raft.AppendFuture
		if len(queue) > 0 {
			out, head = d.out, queue[0]
		}
		select {
		case f := <-in:
			if d.observe != nil && f.Error() == nil && len(f.Request().Entries) > 0 {
				d.observe(time.Since(f.Start()))
			}
			queue = append(queue, f)
		case out <- head:
			queue[0] = nil
			queue = queue[1:]
		case <-d.stop:
			return
		}
	}
}

// Consumer returns the finished appends, in the order they were sent.
func (d *drainedPipeline) Consumer() <-chan raft.AppendFuture { return d.out }

// Close stops forwarding and closes the network pipeline; it returns the
// latter's error.
func (d *drainedPipeline) Close() error {
	d.stopOnce.Do(func() { close(d.stop) })
	err := d.AppendPipeline.Close()
	<-d.done
	return err
}
