package grpcapi

import (
	"context"
	"errors"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/domain"
	"google.golang.org/protobuf/proto"
)

// UpdateChannel validates the request and commits a ChannelUpdated event;
// on a follower with ForwardWrites it has the leader do so. It answers
// InvalidArgument for a malformed id, name or retention, NotFound for an
// unknown channel. A retention replaces the channel's and trims at once.
func (s *Server) UpdateChannel(ctx context.Context, req *raftogramv1.UpdateChannelRequest) (*raftogramv1.UpdateChannelResponse, error) {
	const method = "UpdateChannel"
	err := domain.ValidateChannelID(req.GetChannelId())
	if err == nil && req.GetName() != "" {
		err = domain.ValidateChannelName(req.GetName())
	}
	var ret *domain.Retention
	if err == nil && req.Retention != nil {
		var r domain.Retention
		r, err = retentionFromProto(req.GetRetention())
		ret = &r
	}
	if err != nil {
		return nil, toStatus(s.log, method, err)
	}
	return writeOrForward(s, ctx, method,
		func() domain.Event {
			return domain.ChannelUpdated{ChannelID: req.GetChannelId(), Name: req.GetName(), UpdatedAt: s.opts.Now(), Retention: ret}
		},
		func(ctx context.Context, c raftogramv1.MessengerClient) (*raftogramv1.UpdateChannelResponse, error) {
			return c.UpdateChannel(ctx, req)
		},
		func(r domain.Result) *raftogramv1.UpdateChannelResponse {
			return &raftogramv1.UpdateChannelResponse{Channel: channelToProto(r.Channel), Index: r.Index}
		})
}

// DeleteChannel validates the request and commits a ChannelDeleted event;
// on a follower with ForwardWrites it has the leader do so. It answers
// InvalidArgument for a malformed id; an unknown channel is deleted=false.
func (s *Server) DeleteChannel(ctx context.Context, req *raftogramv1.DeleteChannelRequest) (*raftogramv1.DeleteChannelResponse, error) {
	const method = "DeleteChannel"
	if err := domain.ValidateChannelID(req.GetChannelId()); err != nil {
		return nil, toStatus(s.log, method, err)
	}
	return writeOrForward(s, ctx, method,
		func() domain.Event {
			return domain.ChannelDeleted{ChannelID: req.GetChannelId(), DeletedAt: s.opts.Now()}
		},
		func(ctx context.Context, c raftogramv1.MessengerClient) (*raftogramv1.DeleteChannelResponse, error) {
			return c.DeleteChannel(ctx, req)
		},
		func(r domain.Result) *raftogramv1.DeleteChannelResponse {
			return &raftogramv1.DeleteChannelResponse{Deleted: proto.Bool(r.Deleted), Index: r.Index}
		})
}

// RedactMessage validates the request and commits a MessageRedacted event;
// on a follower with ForwardWrites it has the leader do so. It answers
// InvalidArgument for a malformed id, a zero sequence or a bad reason,
// NotFound for an unknown channel or message.
func (s *Server) RedactMessage(ctx context.Context, req *raftogramv1.RedactMessageRequest) (*raftogramv1.RedactMessageResponse, error) {
	const method = "RedactMessage"
	ev := domain.MessageRedacted{ChannelID: req.GetChannelId(), Sequence: req.GetSequence(), Reason: req.GetReason()}
	if err := domain.Validate(ev); err != nil {
		return nil, toStatus(s.log, method, err)
	}
	return writeOrForward(s, ctx, method,
		func() domain.Event { ev.RedactedAt = s.opts.Now(); return ev },
		func(ctx context.Context, c raftogramv1.MessengerClient) (*raftogramv1.RedactMessageResponse, error) {
			return c.RedactMessage(ctx, req)
		},
		func(r domain.Result) *raftogramv1.RedactMessageResponse {
			return &raftogramv1.RedactMessageResponse{Redacted: proto.Bool(r.Redacted), Index: r.Index}
		})
}

// writeOrForward commits the event made by event and answers with answer
// of its result; on a follower with ForwardWrites it sends the request to
// the leader with call instead (forward.go). Errors are status errors.
func writeOrForward[T any](s *Server, ctx context.Context, method string, event func() domain.Event,
	call func(context.Context, raftogramv1.MessengerClient) (T, error), answer func(domain.Result) T) (T, error) {
	var zero T
	r, err := s.apply(ctx, event())
	if s.forwardable(ctx, err) {
		resp, ferr := forward(s, ctx, call)
		if !errors.Is(ferr, errLeading) {
			return resp, ferr
		}
		r, err = s.apply(ctx, event())
	}
	if err != nil {
		return zero, toStatus(s.log, method, err)
	}
	return answer(r), nil
}
