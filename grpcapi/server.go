// Package grpcapi serves raftogram.v1.Messenger: it validates requests,
// turns writes into domain events stamped with the leader's clock, commits
// them through the cluster, and serves reads and subscriptions from the
// projection behind a linearizable read barrier.
package grpcapi

import (
	"context"
	"log/slog"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/domain"
	"github.com/raftogram/raftogram/fanout"
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
}

// Store is the projection the API reads (a *projection.Store).
type Store interface {
	History(ctx context.Context, channelID string, after uint64, limit, maxBytes int) ([]domain.Message, bool, error)
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
}

// Server implements raftogramv1.MessengerServer.
type Server struct {
	raftogramv1.UnimplementedMessengerServer

	cluster Cluster
	store   Store
	hub     Hub
	opts    Options
	log     *slog.Logger
	done    chan struct{}
}

// New returns a Server over the given cluster, store and hub.
func New(c Cluster, s Store, h Hub, opts Options) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{cluster: c, store: s, hub: h, opts: opts, log: opts.Logger, done: make(chan struct{})}
}

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
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
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

// CreateChannel validates the request and commits a ChannelCreated event.
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
	r, err := s.apply(ctx, domain.ChannelCreated{ChannelID: req.GetChannelId(), Name: req.GetName(), CreatedAt: s.opts.Now()})
	if err != nil {
		return nil, toStatus(s.log, method, err)
	}
	return &raftogramv1.CreateChannelResponse{ChannelId: r.Channel.ID, Name: r.Channel.Name, Created: proto.Bool(r.Created), Index: r.Index}, nil
}

// SendMessage validates the request and commits a MessageSent event.
func (s *Server) SendMessage(ctx context.Context, req *raftogramv1.SendMessageRequest) (*raftogramv1.SendMessageResponse, error) {
	const method = "SendMessage"
	if err := s.validateSend(req); err != nil {
		return nil, toStatus(s.log, method, err)
	}
	r, err := s.apply(ctx, domain.MessageSent{
		ChannelID:       req.GetChannelId(),
		AuthorID:        req.GetAuthorId(),
		Payload:         req.GetPayload(),
		ClientMessageID: req.GetClientMessageId(),
		CreatedAt:       s.opts.Now(),
	})
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
// error.
func (s *Server) apply(ctx context.Context, ev domain.Event) (domain.Result, error) {
	rs, err := s.cluster.Apply(ctx, []domain.Event{ev})
	if err != nil {
		return domain.Result{}, err
	}
	if rs[0].Err != nil {
		return domain.Result{}, rs[0].Err
	}
	return rs[0], nil
}

// ReadHistory serves committed messages after a linearizable read barrier.
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
	if err := s.cluster.ReadBarrier(ctx); err != nil {
		return nil, toStatus(s.log, method, err)
	}
	msgs, more, err := s.store.History(ctx, req.GetChannelId(), req.GetAfterSequence(), limit, MaxResponseBytes)
	if err != nil {
		return nil, toStatus(s.log, method, err)
	}
	return &raftogramv1.ReadHistoryResponse{Messages: toProto(msgs), HasMore: proto.Bool(more)}, nil
}

// Subscribe streams history after after_sequence, then live commits. It
// ends with NotLeader when this node stops leading, Unavailable when the
// server shuts down, and the context's status when the client goes away.
func (s *Server) Subscribe(req *raftogramv1.SubscribeRequest, stream grpc.ServerStreamingServer[raftogramv1.SubscribeChunk]) error {
	const method = "Subscribe"
	ctx := stream.Context()
	channelID := req.GetChannelId()
	if err := domain.ValidateChannelID(channelID); err != nil {
		return toStatus(s.log, method, err)
	}
	// Subscribe before reading, so no commit after the read goes unnoticed.
	sub := s.hub.Subscribe(channelID)
	defer sub.Close()
	term := s.cluster.Term()
	watch := s.cluster.Watch()
	if err := s.cluster.ReadBarrier(ctx); err != nil {
		return toStatus(s.log, method, err)
	}
	if !s.cluster.IsLeader(term) {
		return toStatus(s.log, method, s.cluster.NotLeader())
	}
	cursor := req.GetAfterSequence()
	for {
		chunk, last, more, err := s.nextChunk(ctx, sub, channelID, cursor)
		if err != nil {
			return toStatus(s.log, method, err)
		}
		if len(chunk.bufs) > 0 {
			if err := stream.SendMsg(chunk); err != nil {
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
			case <-watch:
				if !s.cluster.IsLeader(term) {
					return toStatus(s.log, method, s.cluster.NotLeader())
				}
				watch = s.cluster.Watch()
			case <-s.done:
				return status.Error(codes.Unavailable, "server shutting down; resubscribe on the leader")
			case <-ctx.Done():
				return toStatus(s.log, method, ctx.Err())
			}
		}
	}
}

// nextChunk returns the messages after cursor, encoded as one chunk, the
// sequence of its last message and whether more are ready at once. Live
// messages come from the hub's window, encoded once for every subscriber;
// history, and anything the window no longer (or not yet) holds, from the
// projection.
func (s *Server) nextChunk(ctx context.Context, sub *fanout.Subscription, channelID string, cursor uint64) (*encodedChunk, uint64, bool, error) {
	chunk := &encodedChunk{}
	if items, ok := sub.Since(cursor, MaxLimit, MaxResponseBytes); ok {
		for _, it := range items {
			if it.Wire == nil { // a hub without an Encoder
				it.Wire = EncodeMessage(it.Message)
			}
			chunk.add(it.Wire)
			cursor = it.Sequence
		}
		return chunk, cursor, false, nil
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
	}
}
