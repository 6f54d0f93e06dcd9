package grpcapi

import (
	"context"
	"encoding/base64"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/domain"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Channel list page sizes.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// GetChannel returns one channel and its message range once this node is as
// fresh as the request's consistency asks (see fresh). It answers
// InvalidArgument for a malformed id, NotFound for an unknown channel.
func (s *Server) GetChannel(ctx context.Context, req *raftogramv1.GetChannelRequest) (*raftogramv1.Channel, error) {
	const method = "GetChannel"
	if err := domain.ValidateChannelID(req.GetChannelId()); err != nil {
		return nil, toStatus(s.log, method, err)
	}
	if err := s.fresh(ctx, req.GetConsistency(), req.GetMinIndex()); err != nil {
		return nil, toStatus(s.log, method, err)
	}
	ch, err := s.store.Channel(ctx, req.GetChannelId())
	if err != nil {
		return nil, toStatus(s.log, method, err)
	}
	return channelToProto(ch), nil
}

// ListChannels returns a page of channels in ascending channel_id order
// once this node is as fresh as the request's consistency asks. page_size
// 0 means DefaultPageSize and is capped at MaxPageSize; next_page_token is
// empty on the last page. A page_token not returned by ListChannels is
// InvalidArgument.
func (s *Server) ListChannels(ctx context.Context, req *raftogramv1.ListChannelsRequest) (*raftogramv1.ListChannelsResponse, error) {
	const method = "ListChannels"
	size := int(req.GetPageSize())
	switch {
	case size == 0:
		size = DefaultPageSize
	case size > MaxPageSize:
		size = MaxPageSize
	}
	after, err := decodePageToken(req.GetPageToken())
	if err != nil {
		return nil, toStatus(s.log, method, err)
	}
	if err := s.fresh(ctx, req.GetConsistency(), req.GetMinIndex()); err != nil {
		return nil, toStatus(s.log, method, err)
	}
	chs, more, err := s.store.Channels(ctx, after, size)
	if err != nil {
		return nil, toStatus(s.log, method, err)
	}
	resp := &raftogramv1.ListChannelsResponse{Channels: make([]*raftogramv1.Channel, len(chs))}
	for i, ch := range chs {
		resp.Channels[i] = channelToProto(ch)
	}
	if more {
		resp.NextPageToken = encodePageToken(chs[len(chs)-1].ID)
	}
	return resp, nil
}

// A page token is the last channel id of the previous page, base64url
// without padding: opaque to clients, and any valid id is a valid cursor.
func encodePageToken(lastID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(lastID))
}

// decodePageToken returns the id a page token resumes after ("" for the
// first page), or an EINVALID *domain.Error for a malformed token.
func decodePageToken(token string) (string, error) {
	if token == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || domain.ValidateChannelID(string(b)) != nil {
		return "", domain.Errorf(domain.EINVALID, "malformed page_token; pass a next_page_token from a previous response")
	}
	return string(b), nil
}

func channelToProto(ch domain.Channel) *raftogramv1.Channel {
	return &raftogramv1.Channel{
		ChannelId:      ch.ID,
		Name:           ch.Name,
		CreatedAt:      timestamppb.New(ch.CreatedAt),
		FirstSequence:  ch.FirstSequence,
		LastSequence:   ch.LastSequence,
		MessageCount:   ch.MessageCount,
		Retention:      retentionToProto(ch.Retention),
		TrimmedThrough: ch.TrimmedThrough,
	}
}

// retentionToProto always returns a message (all zero: keeps everything),
// so JSON clients see the limits' fields.
func retentionToProto(r domain.Retention) *raftogramv1.Retention {
	out := &raftogramv1.Retention{MaxMessages: r.MaxMessages, MaxBytes: r.MaxBytes}
	if r.MaxAge > 0 {
		out.MaxAge = durationpb.New(r.MaxAge)
	}
	return out
}

// retentionFromProto returns r as a domain.Retention, or an EINVALID
// *domain.Error for a malformed or out-of-range limit.
func retentionFromProto(r *raftogramv1.Retention) (domain.Retention, error) {
	out := domain.Retention{MaxMessages: r.GetMaxMessages(), MaxBytes: r.GetMaxBytes()}
	if d := r.GetMaxAge(); d != nil {
		if err := d.CheckValid(); err != nil {
			return domain.Retention{}, domain.Errorf(domain.EINVALID, "retention max_age: %v", err)
		}
		out.MaxAge = d.AsDuration()
	}
	return out, domain.ValidateRetention(out)
}
