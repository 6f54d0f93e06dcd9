// Package grpcapi serves raftogram.v1.Messenger: it validates requests,
// turns writes into domain events stamped with the leader's clock, commits
// them through the cluster, and serves reads and subscriptions from the
// projection behind a linearizable read barrier.
package grpcapi

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/domain"
	"github.com/raftogram/raftogram/fanout"
	"github.com/raftogram/raftogram/internal/diskspace"
	"github.com/raftogram/raftogram/projection"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// History limits.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
	// MaxResponseBytes bounds the payload bytes of one ReadHistory response
	// or Subscribe chunk, below gRPC's default 4 MiB client receive limit. A
	// response cut short by it says has_more; one message is always sent.
	MaxResponseBytes = 3 << 20
)

// Cluster is the Raft side the API needs (a *cluster.Node).
type Cluster interface {
	Apply(ctx context.Context, events []domain.Event) ([]domain.Result, error)
	ReadBarrier(ctx context.Context) error
	NotLeader() *domain.NotLeaderError
	Term() uint64
	IsLeader(term uint64) bool
	Watch() <-chan struct{}

	NodeID() string
	AppliedIndex() uint64
	WaitApplied(ctx context.Context, index uint64) error
	LeaderCommitIndex() uint64
	LastLeaderContact() time.Time
}

// Store is the projection the API reads (a *projection.Store).
type Store interface {
	History(ctx context.Context, channelID string, after uint64, limit, maxBytes int) ([]domain.Message, bool, error)
	Page(ctx context.Context, channelID string, rng projection.Range) ([]domain.Message, bool, error)
	SequenceAt(ctx context.Context, channelID string, t time.Time) (uint64, bool, error)
	Channel(ctx context.Context, id string) (domain.Channel, error)
	Channels(ctx context.Context, after string, limit int) ([]domain.Channel, bool, error)
	Flush(ctx context.Context) error
}

// Hub is where subscriptions learn of commits (a *fanout.Hub).
type Hub interface {
	Subscribe(channelID string) *fanout.Subscription
}

// Options tunes a Server.
type Options struct {
	MaxPayloadBytes int              // larger payloads are InvalidArgument
	Now             func() time.Time // the leader's clock; time.Now when nil
	Logger          *slog.Logger

	// ForwardWrites makes a follower forward CreateChannel and SendMessage
	// to the leader and relay Publish streams to it (config forward_writes).
	ForwardWrites bool
	// StreamHeartbeat is the idle interval after which a consistency-level
	// Subscribe stream gets a heartbeat chunk; 1s when 0.
	StreamHeartbeat time.Duration
	// StreamCutoff is how long without leader contact ends a
	// consistency-level Subscribe stream with Unavailable; 10s when 0.
	StreamCutoff time.Duration
	// Version is the node's build, reported by Admin.GetNodeStatus.
	Version string
	// Peers is the node's one pool of connections to the other nodes
	// (dialed with mutual TLS when tls is on, see NewPeers), shared by
	// write forwarding, read indexes and Admin's cluster view; its owner
	// closes it after the Server and Admin. nil: each makes and closes a
	// plaintext pool of its own.
	Peers *Peers
	// Space is the node's free-space alarm: writes are refused with
	// ResourceExhausted while it is raised, and Peer.DiskSpace reports it.
	// nil: no alarm.
	Space *diskspace.Alarm
	// MaxSubscriberBacklogBytes is the hub's backlog limit
	// (fanout.WithMaxBacklog, config limits.max_subscriber_backlog_bytes),
	// named in the ResourceExhausted that ends a stream that fell behind.
	MaxSubscriberBacklogBytes int64
	// DefaultRetention is what a channel created without a retention keeps
	// (config retention:); the leader puts it into the event, so every node
	// applies the leader's defaults.
	DefaultRetention domain.Retention
	// MaxPublishInflight and MaxPublishInflightBytes bound the requests a
	// Publish stream has read and not answered (config
	// limits.max_publish_inflight, limits.max_publish_inflight_bytes);
	// DefaultPublishInflight and DefaultPublishInflightBytes when 0.
	MaxPublishInflight      int
	MaxPublishInflightBytes int
}

// Server implements raftogramv1.MessengerServer.
type Server struct {
	raftogramv1.UnimplementedMessengerServer

	cluster  Cluster
	store    Store
	hub      Hub
	opts     Options
	log      *slog.Logger
	done     chan struct{}
	peers    *Peers // connections to the other nodes: forwarding, ReadIndex
	ownPeers bool   // peers is this Server's own (not Options.Peers): Close closes it

	// Publish streams' window, counted for tests: requests admitted,
	// times a reader found the window full, most unanswered at once.
	publishRead   atomic.Int64
	publishStalls atomic.Int64
	publishPeak   maxGauge
}

// New returns a Server over the given cluster, store and hub. Close it
// after the gRPC server has stopped, to close its connections to peers.
func New(c Cluster, s Store, h Hub, opts Options) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.StreamHeartbeat <= 0 {
		opts.StreamHeartbeat = time.Second
	}
	if opts.StreamCutoff <= 0 {
		opts.StreamCutoff = 10 * time.Second
	}
	if opts.MaxPublishInflight <= 0 {
		opts.MaxPublishInflight = DefaultPublishInflight
	}
	if opts.MaxPublishInflightBytes <= 0 {
		opts.MaxPublishInflightBytes = DefaultPublishInflightBytes
	}
	peers, owned := opts.peerPool()
	return &Server{cluster: c, store: s, hub: h, opts: opts, log: opts.Logger, done: make(chan struct{}), peers: peers, ownPeers: owned}
}

// peerPool returns opts.Peers, or a new pool (owned: the caller closes
// it) when there is none.
func (opts Options) peerPool() (p *Peers, owned bool) {
	if opts.Peers != nil {
		return opts.Peers, false
	}
	return NewPeers(nil, nil), true
}

// Close closes the server's connections to other nodes unless they are the
// shared Options.Peers; call it once no handler runs any more (after the
// gRPC server stopped). It returns the errors met closing them.
func (s *Server) Close() error {
	s.Shutdown()
	if !s.ownPeers {
		return nil
	}
	return s.peers.Close()
}

// The server's keepalive: ping an idle connection every keepaliveTime,
// drop it when the ping is not answered within keepaliveTimeout.
const (
	keepaliveTime    = 30 * time.Second
	keepaliveTimeout = 10 * time.Second
)

// ServerOptions returns the grpc.Server options raftogram runs with:
// receive limits sized for the payload limit, keepalive settings that keep
// long Subscribe streams alive through idle periods and detect dead peers,
// and InvalidArgument (not Internal) for requests that fail to decode.
func ServerOptions(maxPayloadBytes int) []grpc.ServerOption {
	g := newDecodeGuard()
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(g),
		grpc.ChainUnaryInterceptor(g.unary),
		grpc.ChainStreamInterceptor(g.stream),
		grpc.MaxRecvMsgSize(maxPayloadBytes + 64<<10),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: keepaliveTime, Timeout: keepaliveTimeout}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
}

// Shutdown ends every open Subscribe stream with Unavailable "server
// shutting down", so a graceful stop does not wait on them.
func (s *Server) Shutdown() {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
}

// CreateChannel validates the request and commits a ChannelCreated event;
// on a follower with ForwardWrites it has the leader do so (forward.go).
func (s *Server) CreateChannel(ctx context.Context, req *raftogramv1.CreateChannelRequest) (*raftogramv1.CreateChannelResponse, error) {
	const method = "CreateChannel"
	if req.GetChannelId() != "" {
		if err := domain.ValidateChannelID(req.GetChannelId()); err != nil {
			return nil, toStatus(s.log, method, err)
		}
	}
	if err := domain.ValidateChannelName(req.GetName()); err != nil {
		return nil, toStatus(s.log, method, err)
	}
	ret := s.opts.DefaultRetention
	if req.Retention != nil {
		var err error
		if ret, err = retentionFromProto(req.GetRetention()); err != nil {
			return nil, toStatus(s.log, method, err)
		}
	}
	r, err := s.apply(ctx, domain.ChannelCreated{ChannelID: req.GetChannelId(), Name: req.GetName(), CreatedAt: s.opts.Now(), Retention: ret})
	if s.forwardable(ctx, err) {
		resp, ferr := forward(s, ctx, func(ctx context.Context, c raftogramv1.MessengerClient) (*raftogramv1.CreateChannelResponse, error) {
			return c.CreateChannel(ctx, req)
		})
		if !errors.Is(ferr, errLeading) {
			return resp, ferr
		}
		r, err = s.apply(ctx, domain.ChannelCreated{ChannelID: req.GetChannelId(), Name: req.GetName(), CreatedAt: s.opts.Now(), Retention: ret})
	}
	if err != nil {
		return nil, toStatus(s.log, method, err)
	}
	return &raftogramv1.CreateChannelResponse{ChannelId: r.Channel.ID, Name: r.Channel.Name, Created: proto.Bool(r.Created), Index: r.Index}, nil
}

// SendMessage validates the request and commits a MessageSent event; on a
// follower with ForwardWrites it has the leader do so (forward.go).
func (s *Server) SendMessage(ctx context.Context, req *raftogramv1.SendMessageRequest) (*raftogramv1.SendMessageResponse, error) {
	const method = "SendMessage"
	if err := s.validateSend(req); err != nil {
		return nil, toStatus(s.log, method, err)
	}
	event := func() domain.Event {
		return domain.MessageSent{
			ChannelID:       req.GetChannelId(),
			AuthorID:        req.GetAuthorId(),
			Payload:         req.GetPayload(),
			ClientMessageID: req.GetClientMessageId(),
			CreatedAt:       s.opts.Now(),
		}
	}
	r, err := s.apply(ctx, event())
	if s.forwardable(ctx, err) {
		resp, ferr := forward(s, ctx, func(ctx context.Context, c raftogramv1.MessengerClient) (*raftogramv1.SendMessageResponse, error) {
			return c.SendMessage(ctx, req)
		})
		if !errors.Is(ferr, errLeading) {
			return resp, ferr
		}
		r, err = s.apply(ctx, event())
	}
	if err != nil {
		return nil, toStatus(s.log, method, err)
	}
	return &raftogramv1.SendMessageResponse{Sequence: r.Sequence, Deduplicated: proto.Bool(r.Deduplicated), Index: r.Index}, nil
}

func (s *Server) validateSend(req *raftogramv1.SendMessageRequest) error {
	if err := domain.ValidateChannelID(req.GetChannelId()); err != nil {
		return err
	}
	if err := domain.ValidateAuthorID(req.GetAuthorId()); err != nil {
		return err
	}
	if err := domain.ValidateClientMessageID(req.GetClientMessageId()); err != nil {
		return err
	}
	if n := len(req.GetPayload()); n > s.opts.MaxPayloadBytes {
		return domain.Errorf(domain.EINVALID, "payload is %d bytes; the maximum is %d", n, s.opts.MaxPayloadBytes)
	}
	return nil
}

// apply commits one event and returns its result, or the rejection as an
// error. While the free-space alarm is raised it refuses the write
// (EEXHAUSTED) and writes nothing.
func (s *Server) apply(ctx context.Context, ev domain.Event) (domain.Result, error) {
	if s.opts.Space != nil {
		if err := s.opts.Space.CheckWrite(); err != nil {
			return domain.Result{}, err
		}
	}
	rs, err := s.cluster.Apply(ctx, []domain.Event{ev})
	if err != nil {
		return domain.Result{}, err
	}
	if rs[0].Err != nil {
		return domain.Result{}, rs[0].Err
	}
	return rs[0], nil
}

// ReadHistory serves committed messages once this node is as fresh as the
// request's consistency asks (see fresh): ascending after after_sequence,
// or with newest_first descending below before_sequence, from the first
// message at or after after_time when that is set. With a consistency
// level the response names the node and the index it had applied.
func (s *Server) ReadHistory(ctx context.Context, req *raftogramv1.ReadHistoryRequest) (*raftogramv1.ReadHistoryResponse, error) {
	const method = "ReadHistory"
	if err := domain.ValidateChannelID(req.GetChannelId()); err != nil {
		return nil, toStatus(s.log, method, err)
	}
	limit := int(req.GetLimit())
	switch {
	case limit == 0:
		limit = DefaultLimit
	case limit > MaxLimit:
		limit = MaxLimit
	}
	if t := req.GetAfterTime(); t != nil {
		if err := t.CheckValid(); err != nil {
			return nil, toStatus(s.log, method, domain.Errorf(domain.EINVALID, "after_time: %v", err))
		}
	}
	if err := s.fresh(ctx, req.GetConsistency(), req.GetMinIndex()); err != nil {
		return nil, toStatus(s.log, method, err)
	}
	rng := projection.Range{After: req.GetAfterSequence(), Before: req.GetBeforeSequence(), NewestFirst: req.GetNewestFirst(),
		Limit: limit, MaxBytes: MaxResponseBytes}
	var msgs []domain.Message
	var more bool
	var err error
	if t := req.GetAfterTime(); t != nil {
		var seq uint64
		var ok bool
		seq, ok, err = s.store.SequenceAt(ctx, req.GetChannelId(), t.AsTime())
		switch {
		case err != nil:
		case !ok: // nothing was created at or after after_time
			rng = projection.Range{}
		default:
			rng.After = max(rng.After, seq-1)
		}
	}
	if err == nil && rng.Limit > 0 {
		msgs, more, err = s.store.Page(ctx, req.GetChannelId(), rng)
	}
	if err != nil {
		return nil, toStatus(s.log, method, err)
	}
	resp := &raftogramv1.ReadHistoryResponse{Messages: toProto(msgs), HasMore: proto.Bool(more)}
	if req.GetConsistency() != raftogramv1.ReadConsistency_READ_CONSISTENCY_UNSPECIFIED {
		// Read after the query: the answer holds nothing past it, so a
		// later read at AT_LEAST this index is never older than this one.
		resp.NodeId, resp.AppliedIndex = s.cluster.NodeID(), s.cluster.AppliedIndex()
	}
	return resp, nil
}

// Subscribe streams history after after_sequence, then live commits. By
// default (UNSPECIFIED) only the leader serves it, and it ends with
// NotLeader when this node stops leading; with a consistency level any node
// serves it (see subscribeAt). It ends with Unavailable when the server
// shuts down, and the context's status when the client goes away.
func (s *Server) Subscribe(req *raftogramv1.SubscribeRequest, stream grpc.ServerStreamingServer[raftogramv1.SubscribeChunk]) error {
	const method = "Subscribe"
	ctx := stream.Context()
	channelID := req.GetChannelId()
	if err := domain.ValidateChannelID(channelID); err != nil {
		return toStatus(s.log, method, err)
	}
	if err := validateStart(req); err != nil {
		return toStatus(s.log, method, err)
	}
	// Subscribe before reading, so no commit after the read goes unnoticed.
	sub := s.hub.Subscribe(channelID)
	defer sub.Close()
	if req.GetConsistency() != raftogramv1.ReadConsistency_READ_CONSISTENCY_UNSPECIFIED {
		return s.subscribeAt(ctx, req, sub, stream)
	}
	term := s.cluster.Term()
	watch := s.cluster.Watch()
	if err := s.cluster.ReadBarrier(ctx); err != nil {
		return toStatus(s.log, method, err)
	}
	if !s.cluster.IsLeader(term) {
		return toStatus(s.log, method, s.cluster.NotLeader())
	}
	return s.stream(ctx, req, sub, stream, streamRules{term: term, watch: watch})
}

// subscribeAt serves a stream that asked for a consistency level: it starts
// once this node is as fresh as the level asks, then streams what this node
// applies, whoever leads (see streamRules).
func (s *Server) subscribeAt(ctx context.Context, req *raftogramv1.SubscribeRequest, sub *fanout.Subscription, stream grpc.ServerStreamingServer[raftogramv1.SubscribeChunk]) error {
	if err := s.fresh(ctx, req.GetConsistency(), req.GetMinIndex()); err != nil {
		return toStatus(s.log, "Subscribe", err)
	}
	return s.stream(ctx, req, sub, stream, streamRules{level: true})
}

// streamRules is how a Subscribe stream differs by kind.
//
// A default stream (level false) is the leader's: it ends with NotLeader
// once this node no longer leads in term (checked whenever watch closes).
//
// A level stream (level true) carries node_id, applied_index and
// leader_commit_index on every chunk, gets a heartbeat chunk (no messages)
// after StreamHeartbeat without one, and ends with Unavailable once this
// node has had no contact with a leader for longer than StreamCutoff
// (counted from the stream's start at the earliest; checked at each
// heartbeat).
type streamRules struct {
	level bool
	term  uint64
	watch <-chan struct{}
}

// stream sends the messages after req's after_sequence, then every new one
// as it commits, by the given rules, until an end: the rules', shutdown
// (Unavailable), the client going away (its context's status), or a failed
// send.
func (s *Server) stream(ctx context.Context, req *raftogramv1.SubscribeRequest, sub *fanout.Subscription, stream grpc.ServerStreamingServer[raftogramv1.SubscribeChunk], rules streamRules) error {
	const method = "Subscribe"
	var heartbeat <-chan time.Time // nil (never ready) on default streams
	start := time.Now()
	cursor := req.GetAfterSequence()
	slow := func() error {
		return status.Errorf(codes.ResourceExhausted, "subscriber too slow: more than %d bytes were committed to channel %s after the last message this stream sent (limits.max_subscriber_backlog_bytes); resubscribe with after_sequence %d",
			s.opts.MaxSubscriberBacklogBytes, req.GetChannelId(), cursor)
	}
	// SendMsg blocks while the client does not read (gRPC flow control), so
	// it runs aside and the stream ends as soon as the hub finds it too far
	// behind; ending the call cancels the blocked send.
	sendMsg := func(chunk *encodedChunk) error {
		sent := make(chan error, 1)
		go func() { sent <- stream.SendMsg(chunk) }()
		select {
		case err := <-sent:
			return err
		case <-sub.Slow():
			return slow()
		}
	}
	send := sendMsg
	if rules.level {
		t := time.NewTimer(s.opts.StreamHeartbeat)
		defer t.Stop()
		heartbeat = t.C
		send = func(chunk *encodedChunk) error {
			chunk.stamp(s.cluster.NodeID(), s.cluster.AppliedIndex(), s.cluster.LeaderCommitIndex())
			t.Reset(s.opts.StreamHeartbeat)
			return sendMsg(chunk)
		}
	}
	watch := rules.watch // nil (never ready) on level streams
	if req.GetStart() == raftogramv1.SubscribeStart_SUBSCRIBE_START_UNSPECIFIED {
		// Retention may have removed what the stream asks for: say so
		// rather than start after the gap (the hub's window could still
		// hold some of it). Later trims show when a read falls back to the
		// projection.
		ch, err := s.store.Channel(ctx, req.GetChannelId())
		switch {
		case err != nil:
			return toStatus(s.log, method, err)
		case cursor < ch.TrimmedThrough:
			return toStatus(s.log, method, &domain.TrimmedError{ChannelID: ch.ID, FirstSequence: ch.TrimmedThrough + 1})
		}
	} else {
		// The hub subscription predates this read, so every message after
		// the cursor reaches the stream: no gap at the seam.
		var err error
		if cursor, err = s.startCursor(ctx, req); err != nil {
			return toStatus(s.log, method, err)
		}
		chunk := &encodedChunk{}
		chunk.startedAfter(cursor)
		if err := send(chunk); err != nil {
			return err
		}
	}
	for {
		chunk, last, more, err := s.nextChunk(ctx, sub, req.GetChannelId(), cursor)
		if err != nil {
			return toStatus(s.log, method, err)
		}
		if len(chunk.bufs) > 0 {
			if err := send(chunk); err != nil {
				return err
			}
			cursor = last
		}
		if more {
			continue
		}
		for waiting := true; waiting; {
			select {
			case <-sub.C:
				waiting = false
			case <-sub.Slow():
				return slow()
			case <-watch:
				if !s.cluster.IsLeader(rules.term) {
					return toStatus(s.log, method, s.cluster.NotLeader())
				}
				watch = s.cluster.Watch()
			case <-heartbeat:
				if s.cutOff(start) {
					return status.Errorf(codes.Unavailable, "node %s has had no contact with a leader for more than %s; resubscribe on another node after sequence %d",
						s.cluster.NodeID(), s.opts.StreamCutoff, cursor)
				}
				if err := send(&encodedChunk{}); err != nil {
					return err
				}
			case <-s.done:
				return status.Error(codes.Unavailable, "server shutting down; resubscribe on another node")
			case <-ctx.Done():
				return toStatus(s.log, method, ctx.Err())
			}
		}
	}
}

// validateStart returns an EINVALID *domain.Error unless req's start is
// known and after_sequence and last_n are used only with the start they
// belong to.
func validateStart(req *raftogramv1.SubscribeRequest) error {
	switch req.GetStart() {
	case raftogramv1.SubscribeStart_SUBSCRIBE_START_UNSPECIFIED:
	case raftogramv1.SubscribeStart_SUBSCRIBE_START_NEW, raftogramv1.SubscribeStart_SUBSCRIBE_START_LAST:
		if req.GetAfterSequence() != 0 {
			return domain.Errorf(domain.EINVALID, "after_sequence applies only to SUBSCRIBE_START_UNSPECIFIED; got start %s with after_sequence %d",
				req.GetStart(), req.GetAfterSequence())
		}
	default:
		return domain.Errorf(domain.EINVALID, "unknown start %d", req.GetStart())
	}
	if req.GetLastN() != 0 && req.GetStart() != raftogramv1.SubscribeStart_SUBSCRIBE_START_LAST {
		return domain.Errorf(domain.EINVALID, "last_n applies only to SUBSCRIBE_START_LAST")
	}
	return nil
}

// startCursor returns the sequence a SUBSCRIBE_START_NEW or _LAST stream
// starts after: the channel's last sequence, less last_n (0 means 1) for
// LAST, never below the oldest message held. It returns the channel's
// ENOTFOUND, or an I/O error.
func (s *Server) startCursor(ctx context.Context, req *raftogramv1.SubscribeRequest) (uint64, error) {
	if err := s.store.Flush(ctx); err != nil {
		return 0, err
	}
	ch, err := s.store.Channel(ctx, req.GetChannelId())
	if err != nil {
		return 0, err
	}
	cursor := ch.LastSequence
	if req.GetStart() == raftogramv1.SubscribeStart_SUBSCRIBE_START_LAST {
		n := max(req.GetLastN(), 1)
		cursor = 0
		if ch.LastSequence > n {
			cursor = ch.LastSequence - n
		}
		if ch.FirstSequence > 0 {
			cursor = max(cursor, ch.FirstSequence-1)
		}
	}
	return cursor, nil
}

// cutOff reports whether this node has had no contact with a leader for
// longer than StreamCutoff, counting from since at the earliest.
func (s *Server) cutOff(since time.Time) bool {
	if contact := s.cluster.LastLeaderContact(); contact.After(since) {
		since = contact
	}
	return time.Since(since) > s.opts.StreamCutoff
}

// nextChunk returns the messages after cursor, encoded as one chunk, the
// sequence of its last message and whether more are ready at once. Live
// messages come from the hub's window, encoded once for every subscriber;
// history, and anything the window no longer (or not yet) holds, from the
// projection.
func (s *Server) nextChunk(ctx context.Context, sub *fanout.Subscription, channelID string, cursor uint64) (*encodedChunk, uint64, bool, error) {
	chunk := &encodedChunk{}
	if items, ok := sub.Since(cursor, MaxLimit, MaxResponseBytes); ok {
		size := 0
		for _, it := range items {
			if it.Wire == nil { // a hub without an Encoder
				it.Wire = EncodeMessage(it.Message)
			}
			chunk.add(it.Wire)
			cursor = it.Sequence
			size += len(it.Payload)
		}
		// A full chunk may have left messages behind it in the window
		// (one large commit, or many while the stream was sending): read
		// on rather than wait for a doorbell that may not ring again.
		more := len(items) == MaxLimit || size >= MaxResponseBytes
		return chunk, cursor, more, nil
	}
	// The window may hold messages the projection has not committed yet;
	// commit them so the read reaches them.
	if err := s.store.Flush(ctx); err != nil {
		return nil, 0, false, err
	}
	msgs, more, err := s.store.History(ctx, channelID, cursor, MaxLimit, MaxResponseBytes)
	if err != nil {
		return nil, 0, false, err
	}
	for _, m := range msgs {
		chunk.add(EncodeMessage(m))
		cursor = m.Sequence
	}
	return chunk, cursor, more, nil
}

func toProto(msgs []domain.Message) []*raftogramv1.Message {
	out := make([]*raftogramv1.Message, len(msgs))
	for i, m := range msgs {
		out[i] = toProto1(m)
	}
	return out
}

func toProto1(m domain.Message) *raftogramv1.Message {
	return &raftogramv1.Message{
		Sequence:        m.Sequence,
		AuthorId:        m.AuthorID,
		Payload:         m.Payload,
		ClientMessageId: m.ClientMessageID,
		CreatedAt:       timestamppb.New(m.CreatedAt),
		Redacted:        m.Redacted,
	}
}
