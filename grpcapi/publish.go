package grpcapi

import (
	"errors"
	"io"
	"sync"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/domain"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Pipelined publishing (design.md, "Pipelined publishing (issue 13)").
//
// A Publish stream is read by one goroutine while a window of requests is
// free (Options.MaxPublishInflight requests, MaxPublishInflightBytes of
// payload). Each request joins its channel's queue. A channel has at most
// one Apply call running for the stream; when it ends, its results are sent
// and whatever queued meanwhile becomes the next call (up to
// publishBatchEvents requests). So per channel the requests are applied,
// sequenced and answered in the order of the stream, while different
// channels' calls run side by side and every call shares the group-commit
// batcher's raft entries with all other writes. A request rejected before
// it is applied (validation, authorization) waits its turn in its channel's
// queue too, so its answer keeps the order.

// Defaults of Options.MaxPublishInflight and MaxPublishInflightBytes.
const (
	DefaultPublishInflight      = 256
	DefaultPublishInflightBytes = 8 << 20
)

// Bounds of one Apply call made for a Publish stream (one channel's queued
// requests); a single larger request goes alone.
const (
	publishBatchEvents = 256
	publishBatchBytes  = 1 << 20
)

// pubItem is one request read from a Publish stream.
type pubItem struct {
	req   *raftogramv1.PublishRequest
	err   error // rejected before applying: answered in its turn with this
	bytes int   // payload bytes, counted against the byte window
}

// pubChannel is one channel's queue within a stream.
type pubChannel struct {
	busy   bool // an Apply call of this channel runs
	queued []*pubItem
}

// publishStream is the state of one Publish call.
type publishStream struct {
	s      *Server
	stream grpc.BidiStreamingServer[raftogramv1.PublishRequest, raftogramv1.PublishResponse]

	sendMu sync.Mutex // one Send at a time

	mu       sync.Mutex
	channels map[string]*pubChannel
	inflight int   // requests read (or being read) and not answered
	bytes    int   // their payload bytes
	applies  int   // Apply calls running
	reading  bool  // the reader has not met the end of the stream or an error
	failed   error // the stream's end: nothing more is dispatched

	room     chan struct{} // the window may have room, or the stream failed
	progress chan struct{} // an Apply ended, or reading ended
}

func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Publish serves a Publish stream on the leader (see the proto and the
// comment above), or relays it to the leader from a follower with
// ForwardWrites (relayPublish): it returns nil once the client has closed
// its side and every request is answered; NotLeader when this node does
// not lead (and does not relay), or
// stops leading, or another error that ends the stream's writes (the
// outcome of unanswered requests is then unknown); Unavailable when the
// server shuts down; the context's status when the client goes away.
func (s *Server) Publish(stream grpc.BidiStreamingServer[raftogramv1.PublishRequest, raftogramv1.PublishResponse]) error {
	const method = "Publish"
	ctx := stream.Context()
	if !s.cluster.IsLeader(s.cluster.Term()) {
		if s.opts.ForwardWrites && !forwarded(ctx) {
			return s.relayPublish(stream)
		}
		return toStatus(s.log, method, s.cluster.NotLeader())
	}
	p := &publishStream{s: s, stream: stream, channels: map[string]*pubChannel{}, reading: true,
		room: make(chan struct{}, 1), progress: make(chan struct{}, 1)}
	// The reader's owner is this call: it stops at its next window check
	// once p.failed is set, or when RecvMsg fails, at the latest when this
	// handler has returned.
	go p.read()
	for {
		p.mu.Lock()
		switch {
		case p.failed != nil && p.applies == 0:
			err := p.failed
			p.mu.Unlock()
			return toStatus(s.log, method, err)
		case p.failed == nil && !p.reading && p.inflight == 0:
			p.mu.Unlock()
			return nil
		}
		p.mu.Unlock()
		select {
		case <-p.progress:
		case <-s.done:
			p.fail(status.Error(codes.Unavailable, "server shutting down; publish the unanswered requests again, with the same client_message_id, on the leader"))
		case <-ctx.Done():
			p.fail(ctx.Err())
		}
	}
}

// fail ends the stream's writes with err (the first error wins): no more
// requests are read or applied; running Apply calls still answer theirs.
func (p *publishStream) fail(err error) {
	p.mu.Lock()
	if p.failed == nil {
		p.failed = err
	}
	p.mu.Unlock()
	notify(p.room)
	notify(p.progress)
}

// read reads requests while the window has room and queues them.
func (p *publishStream) read() {
	for p.admit() {
		req := new(raftogramv1.PublishRequest)
		err := p.stream.RecvMsg(req) // the Guard's authStream fills or checks author_id
		var refused *refusedItem
		it := &pubItem{req: req, bytes: len(req.GetPayload())}
		switch {
		case errors.As(err, &refused):
			it.err = refused.err
		case err != nil:
			p.mu.Lock()
			p.inflight-- // the slot admit reserved
			p.reading = false
			if !errors.Is(err, io.EOF) && p.failed == nil {
				p.failed = err
			}
			p.mu.Unlock()
			notify(p.progress)
			return
		}
		p.s.publishRead.Add(1)
		if it.err == nil {
			it.err = p.s.validatePublish(req)
		}
		p.enqueue(it)
	}
}

// admit waits until the window has room for one more request and reserves
// it; false once the stream failed. The window is full while
// MaxPublishInflight requests are unanswered, or while those unanswered
// hold MaxPublishInflightBytes of payload or more (one request is always
// admitted when none is unanswered).
func (p *publishStream) admit() bool {
	o := &p.s.opts
	for stalled := false; ; {
		p.mu.Lock()
		if p.failed != nil {
			p.mu.Unlock()
			return false
		}
		if p.inflight < o.MaxPublishInflight && (p.bytes < o.MaxPublishInflightBytes || p.inflight == 0) {
			p.inflight++
			p.s.publishPeak.observe(int64(p.inflight))
			p.mu.Unlock()
			return true
		}
		p.mu.Unlock()
		if !stalled {
			stalled = true
			p.s.publishStalls.Add(1)
		}
		<-p.room
	}
}

// enqueue adds a request to its channel's queue and starts an Apply call
// for the channel unless one runs.
func (p *publishStream) enqueue(it *pubItem) {
	key := it.req.GetChannelId()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bytes += it.bytes
	ch := p.channels[key]
	if ch == nil {
		ch = &pubChannel{}
		p.channels[key] = ch
	}
	ch.queued = append(ch.queued, it)
	if !ch.busy && p.failed == nil {
		p.startLocked(key, ch)
	}
}

// startLocked takes the head of ch's queue (up to publishBatchEvents
// requests and publishBatchBytes of payload, at least one) and applies it
// on a new goroutine, counted in p.applies, which the handler waits for.
func (p *publishStream) startLocked(key string, ch *pubChannel) {
	n, size := 0, 0
	for n < len(ch.queued) && n < publishBatchEvents && (n == 0 || size+ch.queued[n].bytes <= publishBatchBytes) {
		size += ch.queued[n].bytes
		n++
	}
	batch := ch.queued[:n:n]
	ch.queued = ch.queued[n:]
	ch.busy = true
	p.applies++
	go p.apply(key, ch, batch)
}

// apply commits one channel's batch, answers its requests in order, and
// starts the channel's next batch.
func (p *publishStream) apply(key string, ch *pubChannel, batch []*pubItem) {
	resps, err := p.commit(batch)
	answered, size := 0, 0
	for _, r := range resps {
		if err != nil {
			break
		}
		p.sendMu.Lock()
		err = p.stream.Send(r)
		p.sendMu.Unlock()
		if err == nil {
			size += batch[answered].bytes
			answered++
		}
	}
	p.mu.Lock()
	p.applies--
	p.inflight -= answered
	p.bytes -= size
	if err != nil && p.failed == nil {
		p.failed = err
	}
	ch.busy = false
	switch {
	case len(ch.queued) > 0 && p.failed == nil:
		p.startLocked(key, ch)
	case len(ch.queued) == 0:
		delete(p.channels, key)
	}
	p.mu.Unlock()
	notify(p.room)
	notify(p.progress)
}

// commit applies the batch's accepted requests in one Apply call and
// returns one response per request, in order; or the error that ends the
// stream (NotLeader, Unavailable, ...), after which the outcome of the
// batch is unknown.
func (p *publishStream) commit(batch []*pubItem) ([]*raftogramv1.PublishResponse, error) {
	s := p.s
	events := make([]domain.Event, 0, len(batch))
	var spaceErr error
	if s.opts.Space != nil {
		spaceErr = s.opts.Space.CheckWrite()
	}
	for _, it := range batch {
		if it.err == nil && spaceErr == nil {
			r := it.req
			events = append(events, domain.MessageSent{ChannelID: r.GetChannelId(), AuthorID: r.GetAuthorId(), Payload: r.GetPayload(),
				ClientMessageID: r.GetClientMessageId(), CreatedAt: s.opts.Now()})
		}
	}
	var results []domain.Result
	if len(events) > 0 {
		var err error
		if results, err = s.cluster.Apply(p.stream.Context(), events); err != nil {
			return nil, err
		}
	}
	out := make([]*raftogramv1.PublishResponse, len(batch))
	for i, it := range batch {
		r := &raftogramv1.PublishResponse{ChannelId: it.req.GetChannelId(), ClientMessageId: it.req.GetClientMessageId()}
		err := it.err
		if err == nil {
			err = spaceErr
		}
		if err == nil {
			res := results[0]
			results = results[1:]
			if err = res.Err; err == nil {
				r.Sequence, r.Deduplicated, r.Index = res.Sequence, proto.Bool(res.Deduplicated), res.Index
			}
		}
		if err != nil {
			r.Status = status.Convert(toStatus(s.log, "Publish", err)).Proto()
		}
		out[i] = r
	}
	return out, nil
}

// validatePublish checks a Publish request as SendMessage checks its own,
// and requires client_message_id.
func (s *Server) validatePublish(req *raftogramv1.PublishRequest) error {
	if req.GetClientMessageId() == "" {
		return domain.Errorf(domain.EINVALID, "client_message_id is required on Publish")
	}
	return s.validateSend(&raftogramv1.SendMessageRequest{ChannelId: req.GetChannelId(), AuthorId: req.GetAuthorId(),
		Payload: req.GetPayload(), ClientMessageId: req.GetClientMessageId()})
}

// maxGauge keeps the largest value observed.
type maxGauge struct {
	mu sync.Mutex
	v  int64
}

func (g *maxGauge) observe(v int64) {
	g.mu.Lock()
	g.v = max(g.v, v)
	g.mu.Unlock()
}

func (g *maxGauge) load() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.v
}
