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

// unmarshalChunk decodes what a full proto decode gives for the fields the
// subscribers and the client read, skips the rest (and unknown fields),
// and rejects truncated input.
func TestChunkDecodesLikeProto(t *testing.T) {
	stamp := make([]byte, 8)
	binary.LittleEndian.PutUint64(stamp, uint64(time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC).UnixNano())|measuredBit)
	created := time.Date(2026, 11, 25, 1, 2, 3, 456789, time.UTC)
	full := &raftogramv1.SubscribeChunk{NodeId: "node2", AppliedIndex: 42, LeaderCommitIndex: 43, Messages: []*raftogramv1.Message{
		{Sequence: 7, AuthorId: "a", Payload: append(stamp, "rest of the payload"...), ClientMessageId: "id", CreatedAt: timestamppb.New(created)},
		{Sequence: 8, Payload: []byte("short")}, // no stamp, no created_at
		{Sequence: 1 << 40, Payload: stamp, CreatedAt: timestamppb.New(time.Unix(0, 0).Add(-time.Second))},
	}}
	b, err := proto.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	b = protowire.AppendTag(b, 99, protowire.BytesType) // a field this version does not know
	b = protowire.AppendBytes(b, []byte("future"))

	var c raftogramv1.SubscribeChunk
	if err := unmarshalChunk(b, &c); err != nil {
		t.Fatal(err)
	}
	if c.GetNodeId() != "node2" || c.GetAppliedIndex() != 42 || c.GetLeaderCommitIndex() != 43 {
		t.Errorf("chunk fields: %v", &c)
	}
	if len(c.Messages) != len(full.Messages) {
		t.Fatalf("%d messages, want %d", len(c.Messages), len(full.Messages))
	}
	for i, m := range full.Messages {
		got := c.Messages[i]
		wantPayload := m.Payload[:min(len(m.Payload), stampBytes)]
		if got.GetSequence() != m.Sequence || string(got.GetPayload()) != string(wantPayload) ||
			!got.GetCreatedAt().AsTime().Equal(m.GetCreatedAt().AsTime()) || (m.CreatedAt == nil) != (got.CreatedAt == nil) {
			t.Errorf("message %d: got %v, want sequence %d payload %q created %v", i, got, m.Sequence, wantPayload, m.GetCreatedAt())
		}
	}
	// Reuse: decoding a heartbeat into the same value leaves no messages.
	hb, _ := proto.Marshal(&raftogramv1.SubscribeChunk{NodeId: "node3", AppliedIndex: 50})
	if err := unmarshalChunk(hb, &c); err != nil || len(c.Messages) != 0 || c.GetNodeId() != "node3" || c.GetLeaderCommitIndex() != 0 {
		t.Fatalf("reused chunk: %v, %v", &c, err)
	}
	// Cutting into the last message is reported, not decoded as less.
	msgsOnly, _ := proto.Marshal(&raftogramv1.SubscribeChunk{Messages: full.Messages})
	for cut := 1; cut <= 3; cut++ {
		var c raftogramv1.SubscribeChunk
		if err := unmarshalChunk(msgsOnly[:len(msgsOnly)-cut], &c); err == nil {
			t.Errorf("chunk cut by %d bytes decoded without error: %v", cut, &c)
		}
	}
}

// BenchmarkChunkDecode compares the lightweight decode with proto's, for a
// one-message chunk as a subscriber of a busy channel receives it.
func BenchmarkChunkDecode(b *testing.B) {
	msg := &raftogramv1.SubscribeChunk{NodeId: "node1", AppliedIndex: 1234567, Messages: []*raftogramv1.Message{{
		Sequence: 123456, AuthorId: "bench-12", Payload: make([]byte, 128), ClientMessageId: "0123abcd-12-123456", CreatedAt: timestamppb.Now(),
	}}}
	wire, _ := proto.Marshal(msg)
	b.Run("lite", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var c raftogramv1.SubscribeChunk
			if err := unmarshalChunk(wire, &c); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("proto", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var c raftogramv1.SubscribeChunk
			if err := proto.Unmarshal(wire, &c); err != nil {
				b.Fatal(err)
			}
		}
	})
}
