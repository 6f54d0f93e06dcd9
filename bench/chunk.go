package bench

import (
	"fmt"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// chunkCodec is the proto codec, except that it decodes a
// raftogramv1.SubscribeChunk itself and keeps only what the subscribers'
// checks and the client's resumption read: every field of the chunk, and
// of each message its sequence, the payload's first 8 bytes (the send
// stamp, see putStamp) and created_at; author_id, client_message_id and
// the rest of the payload are skipped. A chunk's messages share three
// allocations. At a thousand subscribers the generator decodes every
// delivery, and a full decode (strings, a payload copy and a timestamp
// per message) makes the generator, not the server, the bottleneck. Only
// the subscribers' client uses it: its payloads are truncated.
type chunkCodec struct{ encoding.CodecV2 }

// chunkCodecOption makes every call of a connection use chunkCodec.
func chunkCodecOption() grpc.DialOption {
	return grpc.WithDefaultCallOptions(grpc.ForceCodecV2(chunkCodec{encoding.GetCodecV2(proto.Name)}))
}

// Unmarshal decodes data into v: a *raftogramv1.SubscribeChunk with
// unmarshalChunk, anything else as proto. It returns the decode error.
func (c chunkCodec) Unmarshal(data mem.BufferSlice, v any) error {
	ch, ok := v.(*raftogramv1.SubscribeChunk)
	if !ok {
		return c.CodecV2.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return unmarshalChunk(buf.ReadOnlyData(), ch)
}

// Field numbers of raftogram.v1.SubscribeChunk, raftogram.v1.Message and
// google.protobuf.Timestamp.
const (
	fieldChunkMessages          = 1
	fieldChunkNodeID            = 2
	fieldChunkAppliedIndex      = 3
	fieldChunkLeaderCommitIndex = 4
	fieldMessageSequence        = 1
	fieldMessagePayload         = 3
	fieldMessageCreatedAt       = 5
	fieldTimestampSeconds       = 1
	fieldTimestampNanos         = 2
)

// unmarshalChunk decodes b, a SubscribeChunk in wire form, into c (see
// chunkCodec for what it keeps). Unknown fields are skipped, as
// proto.Unmarshal would; truncated input is an error.
func unmarshalChunk(b []byte, c *raftogramv1.SubscribeChunk) error {
	c.Reset()
	n := 0
	if err := eachField(b, func(num protowire.Number, typ protowire.Type, _ []byte, _ uint64) error {
		if num == fieldChunkMessages && typ == protowire.BytesType {
			n++
		}
		return nil
	}); err != nil {
		return err
	}
	msgs := make([]raftogramv1.Message, n)
	times := make([]timestamppb.Timestamp, n)
	stamps := make([]byte, n*stampBytes)
	c.Messages = make([]*raftogramv1.Message, 0, n)
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == fieldChunkNodeID && typ == protowire.BytesType:
			c.NodeId = string(v)
		case num == fieldChunkAppliedIndex && typ == protowire.VarintType:
			c.AppliedIndex = x
		case num == fieldChunkLeaderCommitIndex && typ == protowire.VarintType:
			c.LeaderCommitIndex = x
		case num == fieldChunkMessages && typ == protowire.BytesType:
			i := len(c.Messages)
			m := &msgs[i]
			if err := unmarshalMessage(v, m, &times[i], stamps[i*stampBytes:(i+1)*stampBytes:(i+1)*stampBytes]); err != nil {
				return err
			}
			c.Messages = append(c.Messages, m)
		}
		return nil
	})
}

// unmarshalMessage decodes b, a Message in wire form, into m: its sequence,
// the first bytes of its payload into stamp (m.Payload is stamp, cut to
// the payload's length), and created_at into ts.
func unmarshalMessage(b []byte, m *raftogramv1.Message, ts *timestamppb.Timestamp, stamp []byte) error {
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == fieldMessageSequence && typ == protowire.VarintType:
			m.Sequence = x
		case num == fieldMessagePayload && typ == protowire.BytesType:
			m.Payload = stamp[:copy(stamp, v)]
		case num == fieldMessageCreatedAt && typ == protowire.BytesType:
			ts.Seconds, ts.Nanos = 0, 0
			if err := eachField(v, func(num protowire.Number, typ protowire.Type, _ []byte, x uint64) error {
				switch {
				case num == fieldTimestampSeconds && typ == protowire.VarintType:
					ts.Seconds = int64(x)
				case num == fieldTimestampNanos && typ == protowire.VarintType:
					ts.Nanos = int32(x)
				}
				return nil
			}); err != nil {
				return err
			}
			m.CreatedAt = ts
		}
		return nil
	})
}

// eachField calls fn for every field of the protobuf message b: with the
// value's bytes for length-delimited fields and its integer for varints.
func eachField(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("subscribe chunk: %w", protowire.ParseError(n))
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("subscribe chunk: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}
