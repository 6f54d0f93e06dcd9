package grpcapi

import (
	"context"
	"errors"
	"log/slog"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/domain"
	"github.com/raftogram/raftogram/internal/rpcstatus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// NotLeaderMessage is the status message of every not-leader error.
const NotLeaderMessage = "not leader: retry on suggested leader client endpoint"

// toStatus converts err into a gRPC status error. Internal errors are logged
// with their details and shown to the client only as "internal error".
func toStatus(log *slog.Logger, method string, err error) error {
	if err == nil {
		return nil
	}
	var nl *domain.NotLeaderError
	var tr *domain.TrimmedError
	switch {
	case errors.As(err, &nl):
		return notLeaderStatus(nl)
	case errors.As(err, &tr):
		return trimmedStatus(tr)
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request cancelled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := domain.ErrorCode(err)
	if code == domain.EINTERNAL {
		log.Error("request failed", "method", method, "error", err)
	}
	return status.Error(rpcstatus.GRPCCode(code), domain.ErrorMessage(err))
}

// notLeaderStatus is FailedPrecondition with a NotLeader detail naming the
// leader, or Unavailable with an empty detail when no leader is known.
func notLeaderStatus(nl *domain.NotLeaderError) error {
	code, msg := codes.FailedPrecondition, NotLeaderMessage
	if nl.LeaderID == "" {
		code, msg = codes.Unavailable, "not leader: no leader is known; retry shortly"
	}
	st, err := status.New(code, msg).WithDetails(&raftogramv1.NotLeader{
		LeaderGrpcTarget: nl.LeaderGRPCAddr,
		RaftLeaderId:     nl.LeaderID,
	})
	if err != nil {
		return status.Error(code, msg)
	}
	return st.Err()
}

// trimmedStatus is OutOfRange with a Trimmed detail saying where the
// channel now starts.
func trimmedStatus(tr *domain.TrimmedError) error {
	st, err := status.New(codes.OutOfRange, tr.Error()).WithDetails(&raftogramv1.Trimmed{FirstSequence: tr.FirstSequence})
	if err != nil {
		return status.Error(codes.OutOfRange, tr.Error())
	}
	return st.Err()
}
