package grpcapi

import (
	"context"
	"errors"
	"strings"
	"time"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/domain"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Write forwarding (Options.ForwardWrites). A follower sends CreateChannel
// and SendMessage unchanged to the leader over a pooled connection, with the
// caller's deadline and metadata plus ForwardedByHeader, and returns the
// leader's answer: the leader stamps the time and validates as for any
// write. A call that carries the header is never forwarded again: a node
// that does not lead answers it NotLeader, and the forwarder looks for the
// leader again.

// ForwardedByHeader marks a write a follower forwarded; its value is the
// forwarding node's id.
const ForwardedByHeader = "raftogram-forwarded-by"

// maxLeaderWait bounds how long a forwarded write without a deadline looks
// for a leader before it fails Unavailable.
const maxLeaderWait = 10 * time.Second

// forwardable reports whether a write that got err here should go to the
// leader instead.
func (s *Server) forwardable(ctx context.Context, err error) bool {
	var nl *domain.NotLeaderError
	return s.opts.ForwardWrites && errors.As(err, &nl) && !forwarded(ctx)
}

// forwarded reports whether the incoming call was forwarded by a follower.
func forwarded(ctx context.Context) bool {
	md, _ := metadata.FromIncomingContext(ctx)
	return len(md.Get(ForwardedByHeader)) > 0
}

// errLeading says this node became leader while it looked for one: the
// write is applied here after all.
var errLeading = errors.New("this node leads now")

// forward sends a write to the leader with call and returns its answer as
// a status error. It waits for a leader, and retries while nodes answer
// NotLeader (nothing was written), until the deadline (at most
// maxLeaderWait), then answers Unavailable. A transport failure whose
// outcome is unknown is Unavailable asking to retry with the same id.
// It returns errLeading, having sent nothing, when this node itself leads.
func forward[T any](s *Server, ctx context.Context, call func(context.Context, raftogramv1.MessengerClient) (T, error)) (T, error) {
	var zero T
	wait := minRetryWait
	limit := time.Now().Add(maxLeaderWait)
	if d, ok := ctx.Deadline(); ok {
		// Stop a little before the caller's deadline, so it gets our
		// answer rather than its own timeout.
		limit = time.Now().Add(time.Until(d) * 9 / 10)
	}
	lctx, cancel := context.WithDeadline(ctx, limit)
	defer cancel()
	out := forwardContext(ctx, s.cluster.NodeID())
	for {
		if s.cluster.IsLeader(s.cluster.Term()) {
			return zero, errLeading
		}
		nl := s.cluster.NotLeader()
		if nl.LeaderID != "" {
			conn, err := s.peers.Conn(nl.LeaderGRPCAddr)
			if err != nil {
				return zero, status.Errorf(codes.Unavailable, "cannot forward to the leader: %v", err)
			}
			resp, err := call(out, raftogramv1.NewMessengerClient(conn))
			st, _ := status.FromError(err)
			switch {
			case err == nil:
				return resp, nil
			case isNotLeader(st):
				s.log.Debug("forwarded write refused: not leader; looking again", "leader_id", nl.LeaderID)
			case st.Code() == codes.Unavailable:
				return zero, status.Errorf(codes.Unavailable,
					"forwarded to leader %s: %s; the outcome is unknown: retry with the same client_message_id (or channel_id)", nl.LeaderID, st.Message())
			default:
				return zero, err
			}
		}
		if err := s.pause(lctx, wait); err != nil {
			if ctx.Err() != nil {
				return zero, toStatus(s.log, "forward", ctx.Err())
			}
			if lctx.Err() != nil {
				return zero, status.Error(codes.Unavailable, "not leader, and no leader accepted the forwarded write in time; retry")
			}
			return zero, err
		}
		wait = min(2*wait, maxRetryWait)
	}
}

// isNotLeader reports whether st is a NotLeader answer (FailedPrecondition,
// or Unavailable while no leader is known, with a NotLeader detail).
func isNotLeader(st *status.Status) bool {
	for _, d := range st.Details() {
		if _, ok := d.(*raftogramv1.NotLeader); ok {
			return true
		}
	}
	return false
}

// forwardContext returns the outgoing context of a forwarded call: ctx's
// deadline and cancellation, the caller's metadata without the headers
// gRPC sets per hop, and ForwardedByHeader naming this node.
func forwardContext(ctx context.Context, nodeID string) context.Context {
	in, _ := metadata.FromIncomingContext(ctx)
	out := metadata.MD{}
	for k, v := range in {
		switch {
		case strings.HasPrefix(k, ":"), strings.HasPrefix(k, "grpc-"),
			k == "content-type", k == "user-agent", k == "te", k == ForwardedByHeader:
			continue
		}
		out[k] = append([]string(nil), v...)
	}
	out.Set(ForwardedByHeader, nodeID)
	return metadata.NewOutgoingContext(ctx, out)
}
