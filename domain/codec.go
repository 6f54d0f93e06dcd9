package domain

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	eventsv1 "github.com/raftogram/raftogram/api/proto/raftogram/events/v1"
	"google.golang.org/protobuf/proto"
)

// EncodingV1 is the first byte of every log entry written by this version.
// The layout is: the version byte, a big-endian CRC-32C of the rest, then a
// protobuf eventsv1.Batch.
const EncodingV1 byte = 1

const headerLen = 5 // version byte + CRC-32C

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrUnknownEncoding is returned by DecodeEvents for an entry written by a
// newer (or corrupt) version. A node must stop rather than skip it.
var ErrUnknownEncoding = errors.New("unknown log entry encoding")

// ErrCorrupt is returned by DecodeEvents when an entry's checksum does not
// match its content: the Raft log on this node is damaged. A node must stop
// rather than apply it.
var ErrCorrupt = errors.New("log entry checksum mismatch")

// EncodeEvents returns the log entry bytes for events, applied in order as
// one batch. It returns an error only for an unknown event type.
func EncodeEvents(events []Event) ([]byte, error) {
	batch := &eventsv1.Batch{Events: make([]*eventsv1.Event, 0, len(events))}
	for _, ev := range events {
		var pe *eventsv1.Event
		switch ev := ev.(type) {
		case ChannelCreated:
			pe = &eventsv1.Event{Kind: &eventsv1.Event_ChannelCreated{ChannelCreated: &eventsv1.ChannelCreated{
				ChannelId:         ev.ChannelID,
				Name:              ev.Name,
				CreatedAtUnixNano: ev.CreatedAt.UnixNano(),
				Retention:         retentionToProto(ev.Retention),
			}}}
		case MessageSent:
			pe = &eventsv1.Event{Kind: &eventsv1.Event_MessageSent{MessageSent: &eventsv1.MessageSent{
				ChannelId:         ev.ChannelID,
				AuthorId:          ev.AuthorID,
				Payload:           ev.Payload,
				ClientMessageId:   ev.ClientMessageID,
				CreatedAtUnixNano: ev.CreatedAt.UnixNano(),
			}}}
		case ChannelUpdated:
			pe = &eventsv1.Event{Kind: &eventsv1.Event_ChannelUpdated{ChannelUpdated: &eventsv1.ChannelUpdated{
				ChannelId:         ev.ChannelID,
				Name:              ev.Name,
				UpdatedAtUnixNano: ev.UpdatedAt.UnixNano(),
			}}}
			if ev.Retention != nil {
				pe.GetChannelUpdated().Retention = &eventsv1.Retention{MaxMessages: ev.Retention.MaxMessages,
					MaxAgeNanos: int64(ev.Retention.MaxAge), MaxBytes: ev.Retention.MaxBytes}
			}
		case ChannelDeleted:
			pe = &eventsv1.Event{Kind: &eventsv1.Event_ChannelDeleted{ChannelDeleted: &eventsv1.ChannelDeleted{
				ChannelId:         ev.ChannelID,
				DeletedAtUnixNano: ev.DeletedAt.UnixNano(),
			}}}
		case MessageRedacted:
			pe = &eventsv1.Event{Kind: &eventsv1.Event_MessageRedacted{MessageRedacted: &eventsv1.MessageRedacted{
				ChannelId:          ev.ChannelID,
				Sequence:           ev.Sequence,
				Reason:             ev.Reason,
				RedactedAtUnixNano: ev.RedactedAt.UnixNano(),
			}}}
		case MessagesExpired:
			pe = &eventsv1.Event{Kind: &eventsv1.Event_MessagesExpired{MessagesExpired: &eventsv1.MessagesExpired{
				NowUnixNano:       ev.Now.UnixNano(),
				DedupHorizonNanos: int64(ev.DedupHorizon),
			}}}
		default:
			return nil, fmt.Errorf("encode event: unknown type %T", ev)
		}
		batch.Events = append(batch.Events, pe)
	}
	out := make([]byte, headerLen, headerLen+proto.Size(batch))
	out[0] = EncodingV1
	out, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend(out, batch)
	if err != nil {
		return nil, fmt.Errorf("encode events: %w", err)
	}
	binary.BigEndian.PutUint32(out[1:headerLen], crc32.Checksum(out[headerLen:], castagnoli))
	return out, nil
}

// DecodeEvents parses a log entry written by EncodeEvents. It returns an
// error wrapping ErrUnknownEncoding for an unknown version byte or event
// kind, one wrapping ErrCorrupt when the checksum does not match, and a
// protobuf error for malformed bytes.
func DecodeEvents(data []byte) ([]Event, error) {
	if len(data) < headerLen || data[0] != EncodingV1 {
		return nil, fmt.Errorf("decode events: %w (entry of %d bytes)", ErrUnknownEncoding, len(data))
	}
	if want, got := binary.BigEndian.Uint32(data[1:headerLen]), crc32.Checksum(data[headerLen:], castagnoli); want != got {
		return nil, fmt.Errorf("decode events: %w (stored %08x, computed %08x)", ErrCorrupt, want, got)
	}
	var batch eventsv1.Batch
	if err := proto.Unmarshal(data[headerLen:], &batch); err != nil {
		return nil, fmt.Errorf("decode events: %w", err)
	}
	events := make([]Event, 0, len(batch.Events))
	for i, pe := range batch.Events {
		switch k := pe.GetKind().(type) {
		case *eventsv1.Event_ChannelCreated:
			events = append(events, ChannelCreated{
				ChannelID: k.ChannelCreated.GetChannelId(),
				Name:      k.ChannelCreated.GetName(),
				CreatedAt: time.Unix(0, k.ChannelCreated.GetCreatedAtUnixNano()).UTC(),
				Retention: retentionFromProto(k.ChannelCreated.GetRetention()),
			})
		case *eventsv1.Event_MessageSent:
			m := k.MessageSent
			events = append(events, MessageSent{
				ChannelID:       m.GetChannelId(),
				AuthorID:        m.GetAuthorId(),
				Payload:         m.GetPayload(),
				ClientMessageID: m.GetClientMessageId(),
				CreatedAt:       time.Unix(0, m.GetCreatedAtUnixNano()).UTC(),
			})
		case *eventsv1.Event_ChannelUpdated:
			u := k.ChannelUpdated
			ev := ChannelUpdated{ChannelID: u.GetChannelId(), Name: u.GetName(),
				UpdatedAt: time.Unix(0, u.GetUpdatedAtUnixNano()).UTC()}
			if u.Retention != nil {
				r := retentionFromProto(u.Retention)
				ev.Retention = &r
			}
			events = append(events, ev)
		case *eventsv1.Event_ChannelDeleted:
			d := k.ChannelDeleted
			events = append(events, ChannelDeleted{ChannelID: d.GetChannelId(), DeletedAt: time.Unix(0, d.GetDeletedAtUnixNano()).UTC()})
		case *eventsv1.Event_MessageRedacted:
			r := k.MessageRedacted
			events = append(events, MessageRedacted{ChannelID: r.GetChannelId(), Sequence: r.GetSequence(), Reason: r.GetReason(),
				RedactedAt: time.Unix(0, r.GetRedactedAtUnixNano()).UTC()})
		case *eventsv1.Event_MessagesExpired:
			x := k.MessagesExpired
			events = append(events, MessagesExpired{Now: time.Unix(0, x.GetNowUnixNano()).UTC(),
				DedupHorizon: time.Duration(x.GetDedupHorizonNanos())})
		default:
			return nil, fmt.Errorf("decode events: event %d: %w", i, ErrUnknownEncoding)
		}
	}
	return events, nil
}

// retentionToProto returns nil for keep-everything, so ChannelCreated
// entries without retention encode exactly as before it existed.
func retentionToProto(r Retention) *eventsv1.Retention {
	if r.IsZero() {
		return nil
	}
	return &eventsv1.Retention{MaxMessages: r.MaxMessages, MaxAgeNanos: int64(r.MaxAge), MaxBytes: r.MaxBytes}
}

func retentionFromProto(r *eventsv1.Retention) Retention {
	return Retention{MaxMessages: r.GetMaxMessages(), MaxAge: time.Duration(r.GetMaxAgeNanos()), MaxBytes: r.GetMaxBytes()}
}
