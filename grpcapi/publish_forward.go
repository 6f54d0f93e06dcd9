package grpcapi

import (
	"context"
	"errors"
	"io"
	"sync"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Publish relayed by a follower (Options.ForwardWrites).
//
// A follower with forward_writes on serves a Publish stream by opening one
// to the leader over the pooled peer connection (the caller's metadata plus
// ForwardedByHeader, as forwarded unary writes) and relaying: requests go
// up in stream order, the leader's answers come back as it sends them. The
// leader applies, orders and answers exactly as for a direct stream. Flow
// control carries through: the relay reads a request from the client only
// while fewer than MaxPublishInflight of its requests are unanswered and
// only as fast as the leader's stream takes them, so it buffers at most a
// window.
//
// The Guard has authorized every request on this node and filled its
// author; a request it refused is never sent up (the leader trusts a peer's
// requests) but answered here, in its channel's turn: after the answers to
// that channel's requests sent up before it. However the relay ends, the
// outcome of unanswered requests is unknown, as on any Publish stream: the
// client sends them again with the same ids.

// publishRelay is the state of one relayed Publish call.
type publishRelay struct {
	s      *Server
	stream grpc.BidiStreamingServer[raftogramv1.PublishRequest, raftogramv1.PublishResponse]
	sendMu sync.Mutex // one Send to the client at a time; held from taking an answer off a queue to sending it

	mu       sync.Mutex
	channels map[string][]*raftogramv1.PublishResponse // per channel, the unanswered requests in stream order: nil awaits the leader's answer, else a refusal to send in its turn
	inflight int                                       // requests read and not answered
	room     chan struct{}                             // an answer freed room in the window
}

// relayPublish relays stream to the leader. It returns nil when the client
// has closed its side and every request is answered, the leader's status
// when the leader's stream ends in error (NotLeader with its hint, ...),
// Unavailable when the leader cannot be reached or its stream breaks, and
// NotLeader when no leader is known.
func (s *Server) relayPublish(stream grpc.BidiStreamingServer[raftogramv1.PublishRequest, raftogramv1.PublishResponse]) error {
	const method = "Publish"
	nl := s.cluster.NotLeader()
	if nl.LeaderID == "" {
		return toStatus(s.log, method, nl)
	}
	conn, err := s.peers.Conn(nl.LeaderGRPCAddr)
	if err != nil {
		return status.Errorf(codes.Unavailable, "cannot relay Publish to the leader: %v", err)
	}
	ctx, cancel := context.WithCancel(forwardContext(stream.Context(), s.cluster.NodeID()))
	defer cancel()
	up, err := raftogramv1.NewMessengerClient(conn).Publish(ctx)
	if err != nil {
		return relayStatus(nl.LeaderID, err)
	}
	r := &publishRelay{s: s, stream: stream, channels: map[string][]*raftogramv1.PublishResponse{}, room: make(chan struct{}, 1)}
	// The reader's owner is this call: it ends when the client's side or
	// the leader's stream ends, at the latest once this handler has
	// returned and ctx is cancelled.
	go r.read(ctx, up)
	for {
		resp, err := up.Recv()
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			if stream.Context().Err() != nil {
				return toStatus(s.log, method, stream.Context().Err())
			}
			return relayStatus(nl.LeaderID, err)
		}
		if err := r.answer(resp); err != nil {
			return err
		}
	}
}

// relayStatus is the status a relayed stream ends with when the leader's
// stream failed with err: the leader's own status (NotLeader and its hint,
// ...), or Unavailable when the connection failed.
func relayStatus(leaderID string, err error) error {
	st := status.Convert(err)
	if st.Code() == codes.Unavailable && !isNotLeader(st) {
		return status.Errorf(codes.Unavailable,
			"relayed to leader %s: %s; the outcome of unanswered requests is unknown: publish them again with the same client_message_id", leaderID, st.Message())
	}
	return err
}

// read relays the client's requests to up until the client closes its
// side (then it closes up's), an error, or ctx ends.
func (r *publishRelay) read(ctx context.Context, up grpc.BidiStreamingClient[raftogramv1.PublishRequest, raftogramv1.PublishResponse]) {
	for r.admit(ctx) {
		req := new(raftogramv1.PublishRequest)
		err := r.stream.RecvMsg(req) // the Guard's authStream fills or checks author_id
		var refused *refusedItem
		switch {
		case errors.As(err, &refused):
			r.refuse(req, refused.err)
			continue
		case errors.Is(err, io.EOF):
			up.CloseSend()
			return
		case err != nil:
			return // the handler sees the stream's context end
		}
		r.mu.Lock()
		r.channels[req.GetChannelId()] = append(r.channels[req.GetChannelId()], nil)
		r.mu.Unlock()
		r.s.publishRead.Add(1)
		if err := up.Send(req); err != nil {
			return // the leader's stream ended: up.Recv in the handler says why
		}
	}
}

// admit waits until fewer than MaxPublishInflight requests are unanswered
// and reserves a slot; false once ctx ends.
func (r *publishRelay) admit(ctx context.Context) bool {
	for {
		r.mu.Lock()
		if r.inflight < r.s.opts.MaxPublishInflight {
			r.inflight++
			r.mu.Unlock()
			return true
		}
		r.mu.Unlock()
		select {
		case <-r.room:
		case <-ctx.Done():
			return false
		}
	}
}

// refuse answers a request the Guard refused: now when its channel has no
// request awaiting the leader's answer, else after them. Holding sendMu
// while it looks keeps the channel's answers in order with answer's.
func (r *publishRelay) refuse(req *raftogramv1.PublishRequest, err error) {
	resp := &raftogramv1.PublishResponse{ChannelId: req.GetChannelId(), ClientMessageId: req.GetClientMessageId(),
		Status: status.Convert(err).Proto()}
	key := req.GetChannelId()
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	r.mu.Lock()
	if len(r.channels[key]) > 0 {
		r.channels[key] = append(r.channels[key], resp)
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	r.sendLocked(resp) // a send error ends the stream; the handler sees it
}

// answer sends the leader's answer to the oldest request of its channel
// and then the refusals queued behind it. It returns an error when the
// leader answered a request it was not sent (a protocol error) or the
// client's stream failed.
func (r *publishRelay) answer(resp *raftogramv1.PublishResponse) error {
	key := resp.GetChannelId()
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	r.mu.Lock()
	q := r.channels[key]
	if len(q) == 0 || q[0] != nil {
		r.mu.Unlock()
		return status.Errorf(codes.Internal, "relay: the leader answered channel %q out of turn", key)
	}
	out := []*raftogramv1.PublishResponse{resp}
	q = q[1:]
	for len(q) > 0 && q[0] != nil {
		out = append(out, q[0])
		q = q[1:]
	}
	if len(q) == 0 {
		delete(r.channels, key)
	} else {
		r.channels[key] = q
	}
	r.mu.Unlock()
	for _, o := range out {
		if err := r.sendLocked(o); err != nil {
			return err
		}
	}
	return nil
}

// sendLocked sends one answer to the client and frees its slot of the
// window. r.sendMu must be held.
func (r *publishRelay) sendLocked(resp *raftogramv1.PublishResponse) error {
	err := r.stream.Send(resp)
	r.mu.Lock()
	r.inflight--
	r.mu.Unlock()
	notify(r.room)
	return err
}
