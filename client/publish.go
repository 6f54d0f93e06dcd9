package client

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DefaultMaxPending is PublisherOptions.MaxPending's default: the server's
// default window (limits.max_publish_inflight).
const DefaultMaxPending = 256

// PublisherOptions configures a [Publisher].
type PublisherOptions struct {
	// MaxPending bounds the messages published and not yet resolved;
	// PublishAsync waits while that many are pending. 0 means
	// DefaultMaxPending.
	MaxPending int
}

// Publisher sends messages on a Publish stream to the leader without
// waiting for each answer (see [Client.NewPublisher]). It is safe for
// concurrent use.
//
// Per channel, messages published from one goroutine are stored in the
// order of their PublishAsync calls. When the stream breaks (lost node,
// leader change) the Publisher opens a new one to the leader, following
// the Client's NotLeader hints and back-off like [Client.Send], and sends
// every unresolved message again, in order, with the same client message
// id: the cluster deduplicates, so each message is stored exactly once.
type Publisher struct {
	c      *Client
	max    int
	ctx    context.Context // ends the stream; cancelled by Close and by Client.Close
	cancel context.CancelFunc
	done   chan struct{} // closed when run has returned

	mu         sync.Mutex
	queue      []*PublishFuture // in publish order from base; resolved ones leave from the front
	base       uint64           // the number of queue[0]
	next       uint64           // the number of the next future to send on the current stream
	unresolved int
	closed     bool
	changed    chan struct{}               // closed and replaced at every change below
	sent       map[string][]*PublishFuture // sent on the current stream, unanswered, by channel and id
}

// PublishFuture is the pending outcome of one [Publisher.PublishAsync].
type PublishFuture struct {
	req      *raftogramv1.PublishRequest
	done     chan struct{}
	resolved bool // guarded by Publisher.mu
	res      *SendResult
	err      error
}

// Done returns a channel closed once the outcome is known.
func (f *PublishFuture) Done() <-chan struct{} { return f.done }

// ClientMessageID returns the message's idempotency key, given or
// generated.
func (f *PublishFuture) ClientMessageID() string { return f.req.GetClientMessageId() }

// Wait waits for the outcome and returns it as [Client.Send] would: the
// result (Deduplicated when the message was stored before, by an earlier
// stream or call), or the message's own rejection (ErrNotFound,
// ErrInvalidArgument, ErrAlreadyExists, ErrPermissionDenied,
// ErrResourceExhausted), or ErrClosed when the Publisher closed first (the
// outcome is then unknown: send again with the same ClientMessageID to
// learn it), or the stream's definite error. When ctx ends first it
// returns ctx's error and the message stays pending.
func (f *PublishFuture) Wait(ctx context.Context) (*SendResult, error) {
	select {
	case <-f.done:
		return f.res, f.err
	case <-ctx.Done():
		return nil, fmt.Errorf("publish: %w", ctx.Err())
	}
}

// NewPublisher returns a Publisher writing through c. It opens its stream
// when the first message is published and keeps it while messages are
// pending. Close it when done (Client.Close ends it too).
func (c *Client) NewPublisher(opts PublisherOptions) *Publisher {
	if opts.MaxPending <= 0 {
		opts.MaxPending = DefaultMaxPending
	}
	p := &Publisher{c: c, max: opts.MaxPending, done: make(chan struct{}), changed: make(chan struct{})}
	p.ctx, p.cancel = context.WithCancel(c.ctx)
	go p.run()
	return p
}

// PublishAsync queues m for the stream and returns its future at once, or
// waits while MaxPending messages are pending. An empty ClientMessageID is
// replaced by a random one (see PublishFuture.ClientMessageID). It
// returns ErrClosed once the Publisher or the Client is closed, or ctx's
// error when ctx ends while it waits; the message is then not queued.
func (p *Publisher) PublishAsync(ctx context.Context, m SendRequest) (*PublishFuture, error) {
	if m.ClientMessageID == "" {
		m.ClientMessageID = NewClientMessageID()
	}
	f := &PublishFuture{done: make(chan struct{}),
		req: &raftogramv1.PublishRequest{ChannelId: m.ChannelID, AuthorId: m.AuthorID, Payload: m.Payload, ClientMessageId: m.ClientMessageID}}
	p.mu.Lock()
	for !p.closed && p.unresolved >= p.max {
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("publish: %w", ctx.Err())
		}
		p.mu.Lock()
	}
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("publish: %w", ErrClosed)
	}
	p.queue = append(p.queue, f)
	p.unresolved++
	p.changedLocked()
	return f, nil
}

// Flush waits until every message published before it is resolved
// (acknowledged or failed; their futures say which). It returns ctx's
// error when ctx ends first, or ErrClosed when the Publisher closes first.
func (p *Publisher) Flush(ctx context.Context) error {
	p.mu.Lock()
	target := p.base + uint64(len(p.queue))
	for p.base < target {
		if p.closed {
			p.mu.Unlock()
			return fmt.Errorf("publish: %w", ErrClosed)
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("publish: flush: %w", ctx.Err())
		}
		p.mu.Lock()
	}
	p.mu.Unlock()
	return nil
}

// Close ends the stream at once: messages not yet resolved fail with
// ErrClosed (Flush first to wait for them). It returns nil; it is
// idempotent.
func (p *Publisher) Close() error {
	p.cancel()
	<-p.done
	return nil
}

func (p *Publisher) changedLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// run streams pending messages until the Publisher or the Client closes:
// one [Client.do] per stretch of pending work, which retries broken
// streams on the leader. A definite stream error fails the messages
// pending then.
func (p *Publisher) run() {
	defer close(p.done)
	defer p.failPending(fmt.Errorf("publish: %w", ErrClosed), true)
	for {
		p.mu.Lock()
		for p.unresolved == 0 {
			ch := p.changed
			p.mu.Unlock()
			select {
			case <-ch:
			case <-p.ctx.Done():
				return
			}
			p.mu.Lock()
		}
		p.mu.Unlock()
		err := p.c.do(p.ctx, call{op: "Publish", route: toLeader, retryUnknown: true, stream: true}, p.attempt)
		if p.ctx.Err() != nil {
			return
		}
		if err != nil {
			p.failPending(err, false)
		}
	}
}

// failPending resolves every pending message with err; with closing, the
// Publisher takes no more.
func (p *Publisher) failPending(err error, closing bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.queue {
		if !f.resolved {
			p.resolveLocked(f, nil, err)
		}
	}
	p.popLocked()
	if closing {
		p.closed = true
	}
	p.changedLocked()
}

func pubKey(channelID, id string) string { return channelID + "\x00" + id }

// attempt runs one Publish stream on cc: it sends every unresolved message
// in order, then new ones as they come, and resolves them from the
// answers. It returns nil once nothing is pending and the server has
// closed the stream after answering everything, or the stream's error.
func (p *Publisher) attempt(ctx context.Context, cc *grpc.ClientConn) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := raftogramv1.NewMessengerClient(cc).Publish(ctx)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.next, p.sent = p.base, map[string][]*PublishFuture{}
	p.mu.Unlock()
	sendDone := make(chan struct{})
	var closedSend atomic.Bool
	go func() { // owned by this attempt: it returns once ctx is cancelled
		defer close(sendDone)
		closedSend.Store(p.send(ctx, stream))
	}()
	defer func() { cancel(); <-sendDone }()
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			cancel() // a sender still waiting for messages stops: it did not close
			<-sendDone
			if !closedSend.Load() {
				// The server ended the stream before we closed our side:
				// whatever it left unanswered is unknown.
				return status.Error(codes.Unavailable, "publish stream ended by the server with messages unanswered")
			}
			return nil
		}
		if err != nil {
			return err
		}
		p.answer(r)
	}
}

// send sends the stream's messages until ctx ends or Send fails (the
// receive side then meets the stream's error), and closes its side once
// nothing is pending; it reports whether it did.
func (p *Publisher) send(ctx context.Context, stream grpc.BidiStreamingClient[raftogramv1.PublishRequest, raftogramv1.PublishResponse]) bool {
	for {
		p.mu.Lock()
		for p.next < p.base {
			p.next = p.base
		}
		for p.next < p.base+uint64(len(p.queue)) && p.queue[p.next-p.base].resolved {
			p.next++
		}
		if p.next == p.base+uint64(len(p.queue)) {
			if p.unresolved == 0 {
				p.mu.Unlock()
				return stream.CloseSend() == nil
			}
			ch := p.changed
			p.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return false
			}
		}
		f := p.queue[p.next-p.base]
		p.next++
		k := pubKey(f.req.GetChannelId(), f.req.GetClientMessageId())
		p.sent[k] = append(p.sent[k], f)
		p.mu.Unlock()
		if err := stream.Send(f.req); err != nil {
			return false
		}
	}
}

// answer resolves the message a response is for: the oldest unanswered
// one sent on this stream with its channel and id.
func (p *Publisher) answer(r *raftogramv1.PublishResponse) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := pubKey(r.GetChannelId(), r.GetClientMessageId())
	fs := p.sent[k]
	if len(fs) == 0 {
		p.c.log.Warn("publish: an answer for no message sent", "channel_id", r.GetChannelId(), "client_message_id", r.GetClientMessageId())
		return
	}
	f := fs[0]
	if len(fs) == 1 {
		delete(p.sent, k)
	} else {
		p.sent[k] = fs[1:]
	}
	if f.resolved {
		return
	}
	if st := r.GetStatus(); st != nil {
		p.resolveLocked(f, nil, fmt.Errorf("publish: %w", fromStatus(status.FromProto(st).Err())))
	} else {
		p.resolveLocked(f, &SendResult{Sequence: r.GetSequence(), Deduplicated: r.GetDeduplicated(), Index: r.GetIndex(),
			ClientMessageID: f.req.GetClientMessageId()}, nil)
	}
	p.popLocked()
	p.changedLocked()
}

func (p *Publisher) resolveLocked(f *PublishFuture, res *SendResult, err error) {
	f.res, f.err, f.resolved = res, err, true
	p.unresolved--
	close(f.done)
}

// popLocked drops the resolved futures at the front of the queue.
func (p *Publisher) popLocked() {
	n := 0
	for n < len(p.queue) && p.queue[n].resolved {
		p.queue[n] = nil
		n++
	}
	p.queue = p.queue[n:]
	p.base += uint64(n)
}
