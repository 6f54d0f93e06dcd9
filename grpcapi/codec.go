package grpcapi

import (
	"context"
	"fmt"
	"sync"

	"github.com/raftogram/raftogram/domain"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	protov2 "google.golang.org/protobuf/proto"
)

// gRPC answers a request that fails to decode (for example a string field
// holding invalid UTF-8) with Internal, which tells a client the server is
// broken. decodeGuard makes such requests InvalidArgument instead: its codec
// records the decode error against the request and lets the call proceed,
// and its interceptors answer the call with the error before any handler
// runs.
type decodeGuard struct {
	encoding.CodecV2
	failed sync.Map // request pointer -> decode error
}

func newDecodeGuard() *decodeGuard {
	return &decodeGuard{CodecV2: encoding.GetCodecV2(proto.Name)}
}

// Unmarshal decodes v; on failure it resets v and records the error.
func (g *decodeGuard) Unmarshal(data mem.BufferSlice, v any) error {
	if err := g.CodecV2.Unmarshal(data, v); err != nil {
		if m, ok := v.(protov2.Message); ok {
			protov2.Reset(m)
		}
		g.failed.Store(v, err)
	}
	return nil
}

// Marshal sends an encodedChunk as is and encodes anything else.
func (g *decodeGuard) Marshal(v any) (mem.BufferSlice, error) {
	if c, ok := v.(*encodedChunk); ok {
		return c.bufs, nil
	}
	return g.CodecV2.Marshal(v)
}

// encodedChunk is a SubscribeChunk already in wire form: the concatenation
// of its messages' field records (EncodeMessage), each encoded once for
// every subscriber. Send it with SendMsg.
type encodedChunk struct{ bufs mem.BufferSlice }

func (c *encodedChunk) add(record []byte) { c.bufs = append(c.bufs, mem.SliceBuffer(record)) }

// stamp appends the chunk's node_id, applied_index and leader_commit_index
// fields (protobuf allows fields in any order; zero values are left out,
// as the proto encoder would).
func (c *encodedChunk) stamp(nodeID string, applied, leaderCommit uint64) {
	var b []byte
	if nodeID != "" {
		b = protowire.AppendTag(b, subscribeChunkNodeID, protowire.BytesType)
		b = protowire.AppendString(b, nodeID)
	}
	if applied != 0 {
		b = protowire.AppendTag(b, subscribeChunkAppliedIndex, protowire.VarintType)
		b = protowire.AppendVarint(b, applied)
	}
	if leaderCommit != 0 {
		b = protowire.AppendTag(b, subscribeChunkLeaderCommitIndex, protowire.VarintType)
		b = protowire.AppendVarint(b, leaderCommit)
	}
	if len(b) > 0 {
		c.add(b)
	}
}

// startedAfter appends the chunk's started_after field (present even when
// 0: the field is optional).
func (c *encodedChunk) startedAfter(seq uint64) {
	b := protowire.AppendTag(nil, subscribeChunkStartedAfter, protowire.VarintType)
	c.add(protowire.AppendVarint(b, seq))
}

// EncodeMessage returns m's wire form as one "messages" field record of a
// SubscribeChunk, ready to be concatenated with others into a chunk: it is
// the fanout.Encoder the server's hub runs once per published message.
func EncodeMessage(m domain.Message) []byte {
	body, err := protov2.Marshal(toProto1(m))
	if err != nil {
		// A Message of scalars, bytes and a valid timestamp always
		// encodes; failing here is a programming error.
		panic(fmt.Sprintf("grpcapi: encode message: %v", err))
	}
	b := protowire.AppendTag(make([]byte, 0, len(body)+8), subscribeChunkMessages, protowire.BytesType)
	return protowire.AppendBytes(b, body)
}

// Field numbers of SubscribeChunk.
const (
	subscribeChunkMessages          = 1
	subscribeChunkNodeID            = 2
	subscribeChunkAppliedIndex      = 3
	subscribeChunkLeaderCommitIndex = 4
	subscribeChunkStartedAfter      = 5
)

func (g *decodeGuard) check(req any) error {
	if err, ok := g.failed.LoadAndDelete(req); ok {
		return status.Errorf(codes.InvalidArgument, "malformed request: %v", err)
	}
	return nil
}

func (g *decodeGuard) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := g.check(req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (g *decodeGuard) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &guardedStream{ServerStream: ss, g: g})
}

type guardedStream struct {
	grpc.ServerStream
	g *decodeGuard
}

func (s *guardedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return s.g.check(m)
}
