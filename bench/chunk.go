package bench

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// Chunk is a SubscribeChunk decoded only as far as the load generator
// needs, without an allocation per message: at a thousand subscribers the
// generator decodes every delivery, and a full decode (strings, timestamp
// and payload copies) made it, not the server, the bottleneck.
type Chunk struct {
	Messages []ChunkMessage
}

// ChunkMessage is what the generator reads of a raftogramv1.Message.
type ChunkMessage struct {
	Sequence uint64
	// Stamp is the payload's first 8 bytes (see putStamp); StampOK is false
	// when the payload is shorter.
	Stamp   [stampBytes]byte
	StampOK bool
	// CreatedAtUnixNano is created_at; 0 when absent.
	CreatedAtUnixNano int64
}

// Field numbers of raftogram.v1.SubscribeChunk, raftogram.v1.Message and
// google.protobuf.Timestamp.
const (
	fieldChunkMessages    = 1
	fieldMessageSequence  = 1
	fieldMessagePayload   = 3
	fieldMessageCreatedAt = 5
	fieldTimestampSeconds = 1
	fieldTimestampNanos   = 2
)

// unmarshal decodes b, a SubscribeChunk in wire form, into c, reusing its
// slice. Unknown fields are skipped, as proto.Unmarshal would.
func (c *Chunk) unmarshal(b []byte) error {
	c.Messages = c.Messages[:0]
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num != fieldChunkMessages || typ != protowire.BytesType {
			return nil
		}
		var m ChunkMessage
		err := eachField(v, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
			switch {
			case num == fieldMessageSequence && typ == protowire.VarintType:
				m.Sequence = x
			case num == fieldMessagePayload && typ == protowire.BytesType:
				m.StampOK = len(v) >= stampBytes
				if m.StampOK {
					copy(m.Stamp[:], v)
				}
			case num == fieldMessageCreatedAt && typ == protowire.BytesType:
				var sec, nanos int64
				if err := eachField(v, func(num protowire.Number, typ protowire.Type, _ []byte, x uint64) error {
					switch {
					case num == fieldTimestampSeconds && typ == protowire.VarintType:
						sec = int64(x)
					case num == fieldTimestampNanos && typ == protowire.VarintType:
						nanos = int64(int32(x))
					}
					return nil
				}); err != nil {
					return err
				}
				m.CreatedAtUnixNano = sec*1e9 + nanos
			}
			return nil
		})
		if err != nil {
			return err
		}
		c.Messages = append(c.Messages, m)
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

// chunkCodec is the proto codec, except that it decodes into a *Chunk with
// Chunk.unmarshal.
type chunkCodec struct{ encoding.CodecV2 }

func newChunkCodec() chunkCodec { return chunkCodec{encoding.GetCodecV2(proto.Name)} }

// Unmarshal decodes data into v: a *Chunk with Chunk.unmarshal, anything
// else as proto. It returns the decode error.
func (c chunkCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if ch, ok := v.(*Chunk); ok {
		buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
		defer buf.Free()
		return ch.unmarshal(buf.ReadOnlyData())
	}
	return c.CodecV2.Unmarshal(data, v)
}
