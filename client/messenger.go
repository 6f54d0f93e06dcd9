package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"iter"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Channel describes one channel and the range of messages it holds.
type Channel struct {
	ID        string
	Name      string
	CreatedAt time.Time
	// FirstSequence and LastSequence are the first and last sequence held;
	// both 0 while the channel has never held a message. Once retention
	// removed every message, FirstSequence is the sequence the next one
	// takes.
	FirstSequence, LastSequence uint64
	MessageCount                uint64
	// Retention is what the channel keeps (the zero value: everything).
	Retention Retention
	// TrimmedThrough is the highest sequence retention removed (0: none);
	// reading after a lower one fails with ErrOutOfRange.
	TrimmedThrough uint64
}

// Retention bounds the history a channel keeps, oldest messages first; each
// limit 0 means none. Count and bytes apply as messages commit; age within
// the cluster's retention.expire_interval (default 5 s) of the limit.
type Retention struct {
	// MaxMessages: keep at most this many messages.
	MaxMessages uint64
	// MaxAge: keep a message at most this long (at least 1 s when set).
	MaxAge time.Duration
	// MaxBytes: keep at most this many payload bytes; the newest message
	// always stays.
	MaxBytes uint64
}

// ChannelOption is an optional setting of [Client.CreateChannel] and
// [Client.UpdateChannel].
type ChannelOption func(*channelOptions)

type channelOptions struct {
	retention *raftogramv1.Retention
}

// WithRetention gives the channel these limits: on create instead of the
// cluster's defaults, on update instead of its present ones (tighter limits
// trim at once). The zero Retention keeps everything.
func WithRetention(r Retention) ChannelOption {
	return func(o *channelOptions) { o.retention = retentionToProto(r) }
}

func channelOpts(opts []ChannelOption) channelOptions {
	var o channelOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

func retentionToProto(r Retention) *raftogramv1.Retention {
	out := &raftogramv1.Retention{MaxMessages: r.MaxMessages, MaxBytes: r.MaxBytes}
	if r.MaxAge != 0 {
		out.MaxAge = durationpb.New(r.MaxAge)
	}
	return out
}

// CreateResult is the outcome of [Client.CreateChannel].
type CreateResult struct {
	ChannelID string
	// Name is the stored name: the one given, or the existing channel's.
	Name string
	// Created is false when the channel existed already.
	Created bool
	// Index is the Raft log index at which the write applied: pass it as
	// MinIndex with [AtLeast] to read your write on any node.
	Index uint64
}

// CreateChannel creates the channel id with a display name, or returns the
// stored one with Created false when id exists (idempotent). An empty id
// lets the server pick "channel-<log index>"; such a call is not repeated
// after an attempt whose outcome is unknown (it could create two channels),
// and then fails with ErrUnavailable. It returns ErrInvalidArgument for a
// malformed id or name, ErrUnavailable when no leader answered before ctx
// ended (with ctx's error), or ErrClosed.
func (c *Client) CreateChannel(ctx context.Context, id, name string, opts ...ChannelOption) (*CreateResult, error) {
	req := &raftogramv1.CreateChannelRequest{ChannelId: id, Name: name, Retention: channelOpts(opts).retention}
	var resp *raftogramv1.CreateChannelResponse
	err := c.do(ctx, call{op: "CreateChannel", route: toLeader, retryUnknown: id != ""}, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = raftogramv1.NewMessengerClient(cc).CreateChannel(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &CreateResult{ChannelID: resp.GetChannelId(), Name: resp.GetName(), Created: resp.GetCreated(), Index: resp.GetIndex()}, nil
}

// SendRequest is a message to append with [Client.Send].
type SendRequest struct {
	ChannelID string
	// AuthorID is required, 1-128 bytes of UTF-8.
	AuthorID string
	// Payload is opaque, at most the cluster's max_payload_bytes.
	Payload []byte
	// ClientMessageID is the idempotency key, at most 128 bytes of UTF-8,
	// unique per channel. Empty: Send generates a random one (32 hex
	// digits) and returns it. Set your own to repeat a Send later, after a
	// crash or a failed call, without a duplicate.
	ClientMessageID string
}

// SendResult is the outcome of [Client.Send].
type SendResult struct {
	// Sequence is the message's per-channel sequence.
	Sequence uint64
	// Deduplicated is true when the channel held ClientMessageID already:
	// Sequence is then the original one. It is also true when Send retried
	// an attempt that had in fact succeeded.
	Deduplicated bool
	// Index is the Raft log index at which the write applied; see
	// CreateResult.Index.
	Index uint64
	// ClientMessageID is the idempotency key used, given or generated.
	ClientMessageID string
}

// NewClientMessageID returns a new client message id: 32 hex digits laid
// out as a UUIDv7 (the Unix time in milliseconds, then 74 bits from
// crypto/rand). Ids made later sort later, so a channel's dedup index grows
// at its end instead of at a random page: once a channel holds many
// messages, applying one costs each node up to half less than with fully
// random ids (BenchmarkApplyClientIDs in package projection).
func NewClientMessageID() string {
	var b [16]byte
	rand.Read(b[6:])
	ms := uint64(time.Now().UnixMilli())
	b[0], b[1], b[2], b[3], b[4], b[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	b[6] = b[6]&0x0f | 0x70 // version 7
	b[8] = b[8]&0x3f | 0x80 // RFC 9562 variant
	return hex.EncodeToString(b[:])
}

// Send appends a message to a channel on the leader and returns its
// sequence. Every Send is exactly-once: it carries a client message id
// (generated when m has none), and an attempt whose outcome is unknown
// (node lost, leader change, attempt timeout) is repeated with the same id
// until it succeeds or ctx ends, so the message is stored once whatever
// happened to the attempts. It returns ErrNotFound for an unknown channel,
// ErrInvalidArgument for a malformed message, ErrResourceExhausted or
// ErrPermissionDenied when the cluster refuses it, and, when ctx ends
// first, an error matching ctx's error and the last attempt's
// (ErrUnavailable: the message may or may not be stored; Send again with
// the same ClientMessageID to find out).
func (c *Client) Send(ctx context.Context, m SendRequest) (*SendResult, error) {
	if m.ClientMessageID == "" {
		m.ClientMessageID = NewClientMessageID()
	}
	req := &raftogramv1.SendMessageRequest{ChannelId: m.ChannelID, AuthorId: m.AuthorID, Payload: m.Payload, ClientMessageId: m.ClientMessageID}
	var resp *raftogramv1.SendMessageResponse
	err := c.do(ctx, call{op: "Send", route: toLeader, retryUnknown: true}, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = raftogramv1.NewMessengerClient(cc).SendMessage(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &SendResult{Sequence: resp.GetSequence(), Deduplicated: resp.GetDeduplicated(), Index: resp.GetIndex(), ClientMessageID: m.ClientMessageID}, nil
}

// Message is one stored message.
type Message struct {
	Sequence        uint64
	AuthorID        string
	Payload         []byte
	ClientMessageID string
	// CreatedAt is when the leader accepted the message.
	CreatedAt time.Time
	// Redacted: the payload was removed by RedactMessage (Payload is
	// empty).
	Redacted bool
}

func fromProto(ms []*raftogramv1.Message) []Message {
	out := make([]Message, len(ms))
	for i, m := range ms {
		out[i] = messageFromProto(m)
	}
	return out
}

func messageFromProto(m *raftogramv1.Message) Message {
	return Message{Sequence: m.GetSequence(), AuthorID: m.GetAuthorId(), Payload: m.GetPayload(),
		ClientMessageID: m.GetClientMessageId(), CreatedAt: m.GetCreatedAt().AsTime(), Redacted: m.GetRedacted()}
}

// ReadOptions tunes [Client.ReadHistory] and [Client.GetChannel].
type ReadOptions struct {
	// After: return messages with a larger sequence (0: from the start).
	// ReadHistory only.
	After uint64
	// NewestFirst: return the newest messages first (below Before), in
	// descending order; History.HasMore then says older ones exist. Open a
	// channel with {NewestFirst: true, Limit: 50} and scroll back with
	// Before = the oldest sequence held. ReadHistory only.
	NewestFirst bool
	// Before: only messages with a smaller sequence (0: no bound).
	// ReadHistory only.
	Before uint64
	// Since: start at the first message created at or after this time
	// (zero: no bound); with After, the later start wins. ReadHistory only.
	Since time.Time
	// Limit: at most this many messages; 0 means the server's 100, above
	// 1000 is capped at 1000. ReadHistory only.
	Limit int
	// Consistency: which node may answer; ConsistencyDefault takes the
	// Client's.
	Consistency Consistency
	// MinIndex: with AtLeast, the Raft index the answering node must have
	// applied (a write's Index).
	MinIndex uint64
	// Node pins the read to the node at this gRPC address: no other node is
	// tried, and a NotLeader answer is returned as ErrNotLeader.
	Node string
}

// History is one page of a channel's messages.
type History struct {
	// Messages are in ascending sequence order, consecutive (descending
	// with ReadOptions.NewestFirst).
	Messages []Message
	// HasMore is true when more messages follow the last one (with
	// NewestFirst: when older ones exist).
	HasMore bool
	// NodeID and AppliedIndex say which node answered and the Raft index it
	// had applied when it read.
	NodeID       string
	AppliedIndex uint64
}

// ReadHistory returns the committed messages of a channel after
// opts.After (and opts.Since), in order, or with opts.NewestFirst the
// newest ones below opts.Before, newest first, from a node allowed by opts.Consistency (reads are
// spread over the nodes unless the level is LeaderOnly), retrying on
// another node while none answers. It returns ErrNotFound for an unknown
// channel, ErrInvalidArgument for a malformed id or option, and, when ctx
// ends first (an AtLeast or Linearizable read on a node that cannot catch
// up), an error matching ctx's error and the last attempt's.
func (c *Client) ReadHistory(ctx context.Context, channelID string, opts ReadOptions) (*History, error) {
	cons, err := c.consistency(opts.Consistency)
	if err != nil {
		return nil, fmt.Errorf("ReadHistory: %w", err)
	}
	if opts.Limit < 0 {
		return nil, fmt.Errorf("ReadHistory: %w: negative limit", ErrInvalidArgument)
	}
	req := &raftogramv1.ReadHistoryRequest{ChannelId: channelID, AfterSequence: opts.After, Limit: uint32(min(opts.Limit, 1<<20)),
		Consistency: toProtoConsistency(cons), MinIndex: opts.MinIndex, NewestFirst: opts.NewestFirst, BeforeSequence: opts.Before}
	if !opts.Since.IsZero() {
		req.AfterTime = timestamppb.New(opts.Since)
	}
	var resp *raftogramv1.ReadHistoryResponse
	err = c.do(ctx, call{op: "ReadHistory", route: routeFor(cons), pin: opts.Node, retryUnknown: true}, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = raftogramv1.NewMessengerClient(cc).ReadHistory(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &History{Messages: fromProto(resp.GetMessages()), HasMore: resp.GetHasMore(), NodeID: resp.GetNodeId(), AppliedIndex: resp.GetAppliedIndex()}, nil
}

// GetChannel returns one channel and its message range from a node allowed
// by opts.Consistency (opts.After and opts.Limit do not apply). It returns
// ErrNotFound when the channel does not exist, ErrInvalidArgument for a
// malformed id, ErrUnimplemented from a node too old to know the call, and
// ctx's error as ReadHistory does.
func (c *Client) GetChannel(ctx context.Context, channelID string, opts ReadOptions) (*Channel, error) {
	cons, err := c.consistency(opts.Consistency)
	if err != nil {
		return nil, fmt.Errorf("GetChannel: %w", err)
	}
	req := &raftogramv1.GetChannelRequest{ChannelId: channelID, Consistency: toProtoConsistency(cons), MinIndex: opts.MinIndex}
	var resp *raftogramv1.Channel
	err = c.do(ctx, call{op: "GetChannel", route: routeFor(cons), pin: opts.Node, retryUnknown: true}, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = raftogramv1.NewMessengerClient(cc).GetChannel(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return channelFromProto(resp), nil
}

func channelFromProto(ch *raftogramv1.Channel) *Channel {
	c := &Channel{ID: ch.GetChannelId(), Name: ch.GetName(), FirstSequence: ch.GetFirstSequence(),
		LastSequence: ch.GetLastSequence(), MessageCount: ch.GetMessageCount(), TrimmedThrough: ch.GetTrimmedThrough(),
		Retention: Retention{MaxMessages: ch.GetRetention().GetMaxMessages(), MaxAge: ch.GetRetention().GetMaxAge().AsDuration(),
			MaxBytes: ch.GetRetention().GetMaxBytes()}}
	if ch.GetCreatedAt() != nil {
		c.CreatedAt = ch.GetCreatedAt().AsTime()
	}
	return c
}

// ListOptions tunes [Client.ListChannels] and [Client.Channels].
type ListOptions struct {
	// PageSize: channels per page; 0 means the server's 100, above 1000 is
	// capped at 1000.
	PageSize int
	// PageToken: empty for the first page, else a previous NextPageToken.
	PageToken string
	// Consistency, MinIndex and Node as in [ReadOptions].
	Consistency Consistency
	MinIndex    uint64
	Node        string
}

// ChannelPage is one page of [Client.ListChannels].
type ChannelPage struct {
	// Channels are in ascending id order.
	Channels []Channel
	// NextPageToken fetches the next page; empty on the last one.
	NextPageToken string
}

// ListChannels returns one page of channels in ascending id order from a
// node allowed by opts.Consistency. It returns ErrInvalidArgument for a bad
// page token or option, ErrUnimplemented from a node too old to know the
// call, and ctx's error as ReadHistory does.
func (c *Client) ListChannels(ctx context.Context, opts ListOptions) (*ChannelPage, error) {
	cons, err := c.consistency(opts.Consistency)
	if err != nil {
		return nil, fmt.Errorf("ListChannels: %w", err)
	}
	if opts.PageSize < 0 {
		return nil, fmt.Errorf("ListChannels: %w: negative page size", ErrInvalidArgument)
	}
	req := &raftogramv1.ListChannelsRequest{PageSize: uint32(min(opts.PageSize, 1<<20)), PageToken: opts.PageToken,
		Consistency: toProtoConsistency(cons), MinIndex: opts.MinIndex}
	var resp *raftogramv1.ListChannelsResponse
	err = c.do(ctx, call{op: "ListChannels", route: routeFor(cons), pin: opts.Node, retryUnknown: true}, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = raftogramv1.NewMessengerClient(cc).ListChannels(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	page := &ChannelPage{Channels: make([]Channel, len(resp.GetChannels())), NextPageToken: resp.GetNextPageToken()}
	for i, ch := range resp.GetChannels() {
		page.Channels[i] = *channelFromProto(ch)
	}
	return page, nil
}

// Channels iterates over every channel from opts.PageToken on, fetching
// pages with [Client.ListChannels] as it goes. A failed page yields its
// error (with a zero Channel) and ends the iteration.
func (c *Client) Channels(ctx context.Context, opts ListOptions) iter.Seq2[Channel, error] {
	return func(yield func(Channel, error) bool) {
		for {
			page, err := c.ListChannels(ctx, opts)
			if err != nil {
				yield(Channel{}, err)
				return
			}
			for _, ch := range page.Channels {
				if !yield(ch, nil) {
					return
				}
			}
			if page.NextPageToken == "" {
				return
			}
			opts.PageToken = page.NextPageToken
		}
	}
}

func toProtoConsistency(c Consistency) raftogramv1.ReadConsistency {
	switch c {
	case Linearizable:
		return raftogramv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE
	case AtLeast:
		return raftogramv1.ReadConsistency_READ_CONSISTENCY_AT_LEAST
	case Local:
		return raftogramv1.ReadConsistency_READ_CONSISTENCY_LOCAL
	}
	return raftogramv1.ReadConsistency_READ_CONSISTENCY_UNSPECIFIED
}
