package grpcapi

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
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
