package client

import (
	"context"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"google.golang.org/grpc"
)

// UpdateResult is the outcome of [Client.UpdateChannel].
type UpdateResult struct {
	// Channel is the channel as stored after the update (its message range
	// is not filled in; GetChannel has it).
	Channel Channel
	// Index is the Raft log index at which the write applied; see
	// CreateResult.Index.
	Index uint64
}

// UpdateChannel renames channel id (an empty name changes nothing) and,
// with [WithRetention], replaces its retention, on the leader. It is repeated after an attempt whose outcome is unknown (an
// update is idempotent). It returns ErrNotFound for an unknown channel,
// ErrInvalidArgument for a malformed id or name, ErrUnimplemented from a
// node too old to know the call, and ctx's error as Send does.
func (c *Client) UpdateChannel(ctx context.Context, id, name string, opts ...ChannelOption) (*UpdateResult, error) {
	req := &raftogramv1.UpdateChannelRequest{ChannelId: id, Name: name, Retention: channelOpts(opts).retention}
	var resp *raftogramv1.UpdateChannelResponse
	err := c.do(ctx, call{op: "UpdateChannel", route: toLeader, retryUnknown: true}, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = raftogramv1.NewMessengerClient(cc).UpdateChannel(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &UpdateResult{Channel: *channelFromProto(resp.GetChannel()), Index: resp.GetIndex()}, nil
}

// DeleteResult is the outcome of [Client.DeleteChannel].
type DeleteResult struct {
	// Deleted is false when there was no such channel: never created,
	// deleted before, or deleted by an earlier attempt of this call whose
	// answer was lost.
	Deleted bool
	// Index is the Raft log index at which the write applied.
	Index uint64
}

// DeleteChannel deletes channel id and its messages on the leader; open
// subscriptions to it end with ErrNotFound. The id may be created again,
// and its sequences then continue after the deleted channel's last one.
// It is repeated after an attempt whose outcome is unknown. It returns
// ErrInvalidArgument for a malformed id, ErrUnimplemented from a node too
// old to know the call, and ctx's error as Send does.
func (c *Client) DeleteChannel(ctx context.Context, id string) (*DeleteResult, error) {
	req := &raftogramv1.DeleteChannelRequest{ChannelId: id}
	var resp *raftogramv1.DeleteChannelResponse
	err := c.do(ctx, call{op: "DeleteChannel", route: toLeader, retryUnknown: true}, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = raftogramv1.NewMessengerClient(cc).DeleteChannel(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &DeleteResult{Deleted: resp.GetDeleted(), Index: resp.GetIndex()}, nil
}

// RedactResult is the outcome of [Client.RedactMessage].
type RedactResult struct {
	// Redacted is false when the message was redacted already (perhaps by
	// an earlier attempt of this call whose answer was lost).
	Redacted bool
	// Index is the Raft log index at which the write applied.
	Index uint64
}

// RedactMessage removes the payload of message sequence of channelID on
// every node; the message keeps its sequence, author and time, and reads
// return it with Redacted true. reason (at most 512 bytes) is kept in the
// Raft log until it is compacted. It is repeated after an attempt whose
// outcome is unknown. It returns ErrNotFound for an unknown channel or
// message, ErrInvalidArgument for a malformed id, sequence 0 or a bad
// reason, ErrUnimplemented from a node too old to know the call, and ctx's
// error as Send does.
func (c *Client) RedactMessage(ctx context.Context, channelID string, sequence uint64, reason string) (*RedactResult, error) {
	req := &raftogramv1.RedactMessageRequest{ChannelId: channelID, Sequence: sequence, Reason: reason}
	var resp *raftogramv1.RedactMessageResponse
	err := c.do(ctx, call{op: "RedactMessage", route: toLeader, retryUnknown: true}, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = raftogramv1.NewMessengerClient(cc).RedactMessage(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &RedactResult{Redacted: resp.GetRedacted(), Index: resp.GetIndex()}, nil
}
