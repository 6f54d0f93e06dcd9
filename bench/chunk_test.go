package bench

import (
	"encoding/binary"
	"testing"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Chunk decodes what a full proto decode gives for the fields the
// generator reads, skips the rest (and unknown fields), and rejects
// truncated input.
func TestChunkDecodesLikeProto(t *testing.T) {
	stamp := make([]byte, 8)
	binary.LittleEndian.PutUint64(stamp, uint64(time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC).UnixNano())|measuredBit)
	created := time.Date(2026, 11, 25, 1, 2, 3, 456789, time.UTC)
	full := &raftogramv1.SubscribeChunk{Messages: []*raftogramv1.Message{
		{Sequence: 7, AuthorId: "a", Payload: append(stamp, "rest of the payload"...), ClientMessageId: "id", CreatedAt: timestamppb.New(created)},
		{Sequence: 8, Payload: []byte("short")}, // no stamp, no created_at
		{Sequence: 1 << 40, Payload: stamp, CreatedAt: timestamppb.New(time.Unix(0, 0).Add(-time.Second))},
	}}
	b, err := proto.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	known := len(b)
	b = protowire.AppendTag(b, 99, protowire.BytesType) // a field this version does not know
	b = protowire.AppendBytes(b, []byte("future"))

	var c Chunk
	if err := c.unmarshal(b); err != nil {
		t.Fatal(err)
	}
	if len(c.Messages) != len(full.Messages) {
		t.Fatalf("%d messages, want %d", len(c.Messages), len(full.Messages))
	}
	for i, m := range full.Messages {
		got := c.Messages[i]
		wantStamp := len(m.Payload) >= stampBytes
		var wantCreated int64
		if m.CreatedAt != nil {
			wantCreated = m.CreatedAt.AsTime().UnixNano()
		}
		if got.Sequence != m.Sequence || got.StampOK != wantStamp || got.CreatedAtUnixNano != wantCreated ||
			(wantStamp && string(got.Stamp[:]) != string(m.Payload[:stampBytes])) {
			t.Errorf("message %d: got %+v, want sequence %d stamp %v created %d", i, got, m.Sequence, wantStamp, wantCreated)
		}
	}
	// Reuse: decoding a shorter chunk into the same value leaves only its messages.
	one, _ := proto.Marshal(&raftogramv1.SubscribeChunk{Messages: full.Messages[1:2]})
	if err := c.unmarshal(one); err != nil || len(c.Messages) != 1 || c.Messages[0].Sequence != 8 {
		t.Fatalf("reused chunk: %+v, %v", c.Messages, err)
	}
	// Cutting into the last message is reported, not decoded as less.
	for cut := 1; cut <= 3; cut++ {
		var c Chunk
		if err := c.unmarshal(b[:known-cut]); err == nil {
			t.Errorf("chunk cut by %d bytes decoded without error: %+v", cut, c.Messages)
		}
	}
}
