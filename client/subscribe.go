package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Start says where a [Subscription] starts.
type Start int

const (
	// StartAfter starts after SubscribeOptions.After (0: from the first
	// message). The default.
	StartAfter Start = iota
	// StartNew delivers only messages committed after the stream opens.
	StartNew
	// StartLast delivers the last SubscribeOptions.LastN messages (0 means
	// 1), then every new one.
	StartLast
)

// SubscribeOptions tunes [Client.Subscribe].
type SubscribeOptions struct {
	// After: deliver messages with a larger sequence (0: from the first).
	// StartAfter only.
	After uint64
	// Start: where the stream starts (default StartAfter). Once the first
	// node has answered, LastSequence holds the sequence it started after,
	// and a resumed stream continues from the last delivered message.
	Start Start
	// LastN: with StartLast, how many of the newest messages to deliver
	// first; 0 means 1.
	LastN uint64
	// Consistency: which nodes may serve the stream; ConsistencyDefault
	// takes the Client's. LeaderOnly streams run on the leader and move
	// with it; at the other levels any node serves, and a stream stays on
	// its node across leader changes.
	Consistency Consistency
	// MinIndex: with AtLeast, the Raft index a node must have applied
	// before it starts the stream.
	MinIndex uint64
	// Node pins the stream to the node at this gRPC address: it resumes
	// there only.
	Node string
}

// Batch is what [Subscription.Recv] returns: consecutive messages, or none
// in a heartbeat, with the freshness of the node that sent them.
type Batch struct {
	// Messages continue the channel from the previous batch: ascending,
	// consecutive, never repeated. Empty in a heartbeat, which a node sends
	// on idle streams at every level but LeaderOnly.
	Messages []Message
	// NodeID and AppliedIndex name the node serving the stream and the Raft
	// index it had applied (empty and 0 from nodes that do not report).
	NodeID       string
	AppliedIndex uint64
	// LeaderCommitIndex is the leader's commit index as the node last heard
	// it (0 when unknown); an AppliedIndex well below it means the node is
	// behind.
	LeaderCommitIndex uint64
}

// Subscription is a channel's stream of messages that survives node loss
// and leader changes: when its stream fails for any reason but a definite
// one it resubscribes, on another node when it can, after the last
// delivered sequence, so Recv hands out every message exactly once and in
// order. Recv must not be called concurrently; Close may be called at any
// time from any goroutine.
type Subscription struct {
	c         *Client
	channelID string
	opts      SubscribeOptions // Consistency resolved
	route     route
	ctx       context.Context // ends with the caller's ctx, Close or Client.Close
	cancel    context.CancelFunc
	stop      func() bool // unregisters the Client.Close hook
	closed    atomic.Bool
	last      atomic.Uint64 // last delivered sequence

	// Owned by Recv.
	stream       grpc.ServerStreamingClient[raftogramv1.SubscribeChunk]
	streamCancel context.CancelFunc
	addr         string // node of the current stream
	prev         string // node of the previous, failed stream
	hint         string // leader named by a NotLeader answer
	redirects    int
	failures     int    // consecutive failed streams
	maxApplied   uint64 // highest applied index any node reported
	started      bool   // a node has said where a StartNew/StartLast stream starts
	err          error  // terminal
}

// Subscribe returns a Subscription to channelID that delivers the messages
// after opts.After, then every new one as it commits. It contacts no node:
// the first Recv does, so errors of the channel (ErrNotFound) come from
// Recv. The Subscription ends with ctx, its Close or the Client's Close.
// It returns ErrInvalidArgument for a bad option, or ErrClosed.
//
// At Local (and at AtLeast below the channel's creation) a node that has
// not applied the channel's creation yet answers ErrNotFound: subscribe at
// AtLeast with the CreateResult's Index to avoid that.
//
// Resuming: a stream at LeaderOnly or Linearizable resumes at the same
// level; one at AtLeast or Local resumes at AtLeast with MinIndex the
// highest applied index a node has reported on it, so a resumed stream
// never serves older state than the caller has seen.
func (c *Client) Subscribe(ctx context.Context, channelID string, opts SubscribeOptions) (*Subscription, error) {
	cons, err := c.consistency(opts.Consistency)
	if err != nil {
		return nil, fmt.Errorf("Subscribe: %w", err)
	}
	switch {
	case opts.Start < StartAfter || opts.Start > StartLast:
		return nil, fmt.Errorf("Subscribe: %w: unknown start %d", ErrInvalidArgument, opts.Start)
	case opts.Start != StartAfter && opts.After != 0:
		return nil, fmt.Errorf("Subscribe: %w: After applies only to StartAfter", ErrInvalidArgument)
	case opts.Start != StartLast && opts.LastN != 0:
		return nil, fmt.Errorf("Subscribe: %w: LastN applies only to StartLast", ErrInvalidArgument)
	}
	if c.isClosed() {
		return nil, fmt.Errorf("Subscribe: %w", ErrClosed)
	}
	opts.Consistency = cons
	s := &Subscription{c: c, channelID: channelID, opts: opts, route: routeFor(cons), started: opts.Start == StartAfter}
	s.ctx, s.cancel = context.WithCancel(ctx)
	s.stop = context.AfterFunc(c.ctx, s.cancel)
	s.last.Store(opts.After)
	return s, nil
}

// LastSequence returns the sequence of the last message Recv delivered
// (before the first: opts.After, or with StartNew and StartLast the
// sequence the stream started after once a node has said it, 0 until
// then): resume there with a new Subscribe.
func (s *Subscription) LastSequence() uint64 { return s.last.Load() }

// Close ends the Subscription: a blocked Recv returns ErrClosed. It always
// returns nil and is idempotent.
func (s *Subscription) Close() error {
	s.closed.Store(true)
	s.stop()
	s.cancel()
	return nil
}

// Recv blocks until the next batch and returns it: messages following the
// previous batch, or a heartbeat (no messages) with the serving node's
// freshness. Failed streams are resumed on another node meanwhile. It
// returns ErrNotFound for an unknown channel, ErrInvalidArgument,
// ErrPermissionDenied, ErrUnauthenticated or ErrOutOfRange as the node
// answered them, ErrNotLeader when the stream is pinned to a node that
// cannot serve it, ErrInternal when a node's stream skipped a sequence, the
// caller's ctx error, or ErrClosed. After an error, every later call
// returns it.
func (s *Subscription) Recv() (*Batch, error) {
	if s.err != nil {
		return nil, s.err
	}
	for {
		if s.stream == nil {
			if err := s.connect(); err != nil {
				return nil, s.fail(err)
			}
		}
		chunk, err := s.recvWatched()
		if err != nil {
			if err := s.lost(err); err != nil {
				return nil, s.fail(err)
			}
			continue
		}
		s.failures, s.redirects = 0, 0
		b, err := s.accept(chunk)
		if err != nil {
			return nil, s.fail(err)
		}
		if b != nil {
			return b, nil
		}
	}
}

// errSilent is the cause a silent stream is cancelled with.
var errSilent = errors.New("no message or heartbeat within the stream silence bound")

// recvWatched receives the next chunk of the current stream. At levels
// whose streams carry heartbeats it cancels a stream that stays silent for
// Config.StreamSilence, and reports that as Unavailable so Recv resumes
// elsewhere.
func (s *Subscription) recvWatched() (*raftogramv1.SubscribeChunk, error) {
	silence := s.c.cfg.StreamSilence
	if s.route == toLeader || silence < 0 {
		return s.stream.Recv()
	}
	var silent atomic.Bool
	cancel := s.streamCancel
	t := time.AfterFunc(silence, func() {
		silent.Store(true)
		cancel()
	})
	chunk, err := s.stream.Recv()
	t.Stop()
	if err != nil && silent.Load() && s.ctx.Err() == nil {
		return nil, status.Errorf(codes.Unavailable, "%v (%v)", errSilent, silence)
	}
	return chunk, err
}

// fail makes err terminal and releases the stream.
func (s *Subscription) fail(err error) error {
	s.dropStream()
	s.err = err
	s.stop()
	s.cancel()
	return err
}

func (s *Subscription) dropStream() {
	if s.streamCancel != nil {
		s.streamCancel()
	}
	s.stream, s.streamCancel = nil, nil
}

// endErr is the error once s.ctx has ended.
func (s *Subscription) endErr() error {
	if s.closed.Load() || s.c.isClosed() {
		return fmt.Errorf("Subscribe %s: %w", s.channelID, ErrClosed)
	}
	return fmt.Errorf("Subscribe %s: %w", s.channelID, context.Cause(s.ctx))
}

// request is the SubscribeRequest that resumes after the last delivered
// message.
func (s *Subscription) request() *raftogramv1.SubscribeRequest {
	cons, minIndex := s.opts.Consistency, s.opts.MinIndex
	if (cons == Local || cons == AtLeast) && s.maxApplied > minIndex {
		cons, minIndex = AtLeast, s.maxApplied
	}
	req := &raftogramv1.SubscribeRequest{ChannelId: s.channelID, AfterSequence: s.last.Load(),
		Consistency: toProtoConsistency(cons), MinIndex: minIndex}
	if !s.started {
		// No node has said where the stream starts yet: ask again.
		switch s.opts.Start {
		case StartNew:
			req.Start = raftogramv1.SubscribeStart_SUBSCRIBE_START_NEW
		case StartLast:
			req.Start, req.LastN = raftogramv1.SubscribeStart_SUBSCRIBE_START_LAST, s.opts.LastN
		}
	}
	return req
}

// connect opens a stream on the next node, backing off after failures.
func (s *Subscription) connect() error {
	for {
		if s.failures > 0 && (s.hint == "" || s.redirects >= maxRedirects) {
			s.redirects = 0
			if err := s.c.sleep(s.ctx, s.c.backoff(s.failures-1)); err != nil {
				return s.endErr()
			}
		} else if s.hint != "" {
			s.redirects++
		}
		if s.ctx.Err() != nil {
			return s.endErr()
		}
		n, err := s.c.pick(s.route, s.opts.Node, s.hint, s.prev)
		if err != nil {
			return fmt.Errorf("Subscribe %s: %w", s.channelID, err)
		}
		s.hint = ""
		ctx, cancel := context.WithCancel(s.ctx)
		stream, err := raftogramv1.NewMessengerClient(n.conn()).Subscribe(ctx, s.request())
		if err == nil {
			s.stream, s.streamCancel, s.addr = stream, cancel, n.addr
			s.c.log.Debug("subscribed", "channel_id", s.channelID, "addr", n.addr, "after", s.last.Load())
			return nil
		}
		cancel()
		s.addr = n.addr
		if err := s.lost(err); err != nil {
			return err
		}
	}
}

// lost handles the failure of the current stream (or of opening one): it
// returns the terminal error, or nil to resubscribe.
func (s *Subscription) lost(err error) error {
	s.dropStream()
	if s.ctx.Err() != nil {
		return s.endErr()
	}
	if errors.Is(err, io.EOF) {
		err = fmt.Errorf("%w: stream ended without a status", ErrUnavailable)
	}
	e := fromStatus(err)
	s.prev = s.addr
	s.failures++
	switch {
	case e.notLeader:
		s.c.forgetLeader(s.addr)
		if e.Leader != "" && e.Leader != s.addr {
			s.c.setLeader(e.Leader)
			s.hint = e.Leader
		}
		if s.opts.Node != "" {
			return fmt.Errorf("Subscribe %s on %s: %w", s.channelID, s.addr, e)
		}
	case definiteForStream(e.Code):
		return fmt.Errorf("Subscribe %s on %s: %w", s.channelID, s.addr, e)
	default:
		if s.route == toLeader {
			s.c.forgetLeader(s.addr)
		}
	}
	s.c.retried("Subscribe", s.addr, e, "channel_id", s.channelID, "after", s.last.Load(), "failures", s.failures)
	return nil
}

// definiteForStream reports whether a stream that ended with code would end
// the same way anywhere: the Subscription then ends too.
func definiteForStream(code codes.Code) bool {
	switch code {
	case codes.NotFound, codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated,
		codes.OutOfRange, codes.Unimplemented, codes.FailedPrecondition:
		return true
	}
	return false
}

// accept turns a chunk into the next batch: messages already delivered
// (repeated by a resumed stream) are dropped, a skipped sequence is an
// error. It returns nil when nothing is left to deliver of a chunk that
// held messages.
func (s *Subscription) accept(chunk *raftogramv1.SubscribeChunk) (*Batch, error) {
	s.maxApplied = max(s.maxApplied, chunk.GetAppliedIndex())
	if chunk.StartedAfter != nil && s.opts.Start != StartAfter && !s.started {
		// Where a StartNew/StartLast stream starts: from now on it resumes
		// after the last delivered message like any other.
		s.started = true
		s.last.Store(chunk.GetStartedAfter())
		if len(chunk.GetMessages()) == 0 {
			return nil, nil
		}
	}
	if !s.started {
		// A node that ignored the start (one too old to know it) would
		// stream from the first message.
		return nil, fmt.Errorf("Subscribe %s on %s: %w: the node does not support StartNew or StartLast", s.channelID, s.addr, ErrUnimplemented)
	}
	msgs := chunk.GetMessages()
	b := &Batch{NodeID: chunk.GetNodeId(), AppliedIndex: chunk.GetAppliedIndex(), LeaderCommitIndex: chunk.GetLeaderCommitIndex()}
	last := s.last.Load()
	for _, m := range msgs {
		seq := m.GetSequence()
		if seq <= last {
			continue
		}
		if seq != last+1 {
			return nil, fmt.Errorf("Subscribe %s on %s: %w: sequence %d follows %d", s.channelID, s.addr, ErrInternal, seq, last)
		}
		b.Messages = append(b.Messages, messageFromProto(m))
		last = seq
	}
	if len(msgs) > 0 && len(b.Messages) == 0 {
		return nil, nil
	}
	s.last.Store(last)
	return b, nil
}
