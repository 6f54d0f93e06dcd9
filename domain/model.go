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
}

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
// ChannelCreated, MessageSent, ChannelUpdated, ChannelDeleted or
// MessageRedacted.
type Event interface{ isEvent() }

// ChannelCreated creates a channel. An empty ChannelID asks the state
// machine to assign one derived from the log index.
type ChannelCreated struct {
	ChannelID string
	Name      string
	CreatedAt time.Time
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
// stored name.
type ChannelUpdated struct {
	ChannelID string
	Name      string
	UpdatedAt time.Time
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

func (ChannelCreated) isEvent()  {}
func (MessageSent) isEvent()     {}
func (ChannelUpdated) isEvent()  {}
func (ChannelDeleted) isEvent()  {}
func (MessageRedacted) isEvent() {}

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
	// above). ChannelDeleted: whether the channel existed (false: nothing
	// to delete). MessageRedacted: whether this event removed the payload
	// (false: it was redacted already).
	Deleted  bool
	Redacted bool
}
