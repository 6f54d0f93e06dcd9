package domain

import "time"

// Channel is an ordered log of messages.
type Channel struct {
	ID        string
	Name      string
	CreatedAt time.Time
	// LastSequence is the sequence of the newest message (0 when empty).
	LastSequence uint64
	// FirstSequence is the sequence of the oldest message held (0 when
	// empty) and MessageCount how many messages are held. Only the
	// projection's channel queries set them; write results leave them 0.
	FirstSequence uint64
	MessageCount  uint64
	// Retention is what the channel keeps (the zero value: everything).
	Retention Retention
	// TrimmedThrough is the highest sequence retention removed (0: none).
	// Only the projection's channel queries set it.
	TrimmedThrough uint64
}

// Retention bounds the history a channel keeps; each limit 0 means none.
// The oldest messages go first, and the retained sequences stay contiguous.
type Retention struct {
	// MaxMessages: keep at most this many messages.
	MaxMessages uint64
	// MaxAge: keep a message at most this long after its CreatedAt, as
	// measured by the clock in MessagesExpired events.
	MaxAge time.Duration
	// MaxBytes: keep at most this many payload bytes; the newest message is
	// always kept, however large.
	MaxBytes uint64
}

// IsZero reports whether r keeps everything.
func (r Retention) IsZero() bool { return r == Retention{} }

// Message is one committed message of a channel.
type Message struct {
	ChannelID       string
	Sequence        uint64
	AuthorID        string
	Payload         []byte
	ClientMessageID string
	CreatedAt       time.Time
	// Redacted: the payload was removed (Payload is empty); the rest stays.
	Redacted bool
}

// Event is an immutable fact written to the Raft log. It is one of
// ChannelCreated, MessageSent, ChannelUpdated, ChannelDeleted,
// MessageRedacted or MessagesExpired.
type Event interface{ isEvent() }

// ChannelCreated creates a channel. An empty ChannelID asks the state
// machine to assign one derived from the log index.
type ChannelCreated struct {
	ChannelID string
	Name      string
	CreatedAt time.Time
	// Retention is the new channel's, with the leader's defaults resolved.
	Retention Retention
}

// MessageSent appends a message to a channel. The state machine assigns the
// sequence.
type MessageSent struct {
	ChannelID       string
	AuthorID        string
	Payload         []byte
	ClientMessageID string
	CreatedAt       time.Time
}

// ChannelUpdated changes a channel's settings; an empty Name keeps the
// stored name and a nil Retention the stored retention. A new retention
// trims at once.
type ChannelUpdated struct {
	ChannelID string
	Name      string
	UpdatedAt time.Time
	Retention *Retention
}

// ChannelDeleted removes a channel, its messages and its dedup rows. The id
// may be created again, and its sequences then continue after the deleted
// channel's last one.
type ChannelDeleted struct {
	ChannelID string
	DeletedAt time.Time
}

// MessageRedacted removes the payload of one message; its sequence,
// author, time and client message id stay. Reason is kept in the log only.
type MessageRedacted struct {
	ChannelID  string
	Sequence   uint64
	Reason     string
	RedactedAt time.Time
}

// MessagesExpired carries the leader's clock into the log: each channel with
// a MaxAge drops its oldest messages created before Now minus MaxAge (the
// longest such prefix), and the dedup rows of messages no longer held go
// once they were created before Now minus DedupHorizon (0: never).
type MessagesExpired struct {
	Now          time.Time
	DedupHorizon time.Duration
}

func (ChannelCreated) isEvent()  {}
func (MessageSent) isEvent()     {}
func (ChannelUpdated) isEvent()  {}
func (ChannelDeleted) isEvent()  {}
func (MessageRedacted) isEvent() {}
func (MessagesExpired) isEvent() {}

// Result is the state machine's answer to one event. Err holds a
// deterministic rejection (an *Error every node reaches alike); the other
// fields are set according to the event kind.
type Result struct {
	Err error

	// Index is the Raft log index of the entry whose apply produced this
	// result (for a deduplicated repeat or an existing channel, the repeat's
	// own entry): a read at AT_LEAST this index on any node sees the write.
	Index uint64

	// ChannelCreated: the stored channel and whether this event created it.
	Channel Channel
	Created bool

	// MessageSent: the message's sequence and whether it was a repeat of an
	// earlier client_message_id.
	Sequence     uint64
	Deduplicated bool

	// ChannelUpdated: the channel as stored after the update (Channel
	// above). MessagesExpired: Trimmed is how many messages it removed.
	// ChannelDeleted: whether the channel existed (false: nothing
	// to delete). MessageRedacted: whether this event removed the payload
	// (false: it was redacted already).
	Deleted  bool
	Redacted bool
	Trimmed  uint64
}
