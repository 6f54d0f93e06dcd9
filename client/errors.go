package client

import (
	"context"
	"errors"
	"fmt"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"github.com/raftogram/raftogram/domain"
	"github.com/raftogram/raftogram/internal/rpcstatus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Sentinel errors. Every error a Client returns for a node's answer is an
// [*Error] that matches exactly one of them with [errors.Is] (or
// [context.Canceled] / [context.DeadlineExceeded]); match with errors.Is, not
// ==.
var (
	// ErrInvalidArgument: the request is malformed (bad channel id, empty
	// author, payload too large...). Nothing changed; never retried.
	ErrInvalidArgument = errors.New("raftogram: invalid argument")
	// ErrNotFound: the channel does not exist.
	ErrNotFound = errors.New("raftogram: not found")
	// ErrNotLeader: the node asked does not lead and the call needed the
	// leader (FailedPrecondition with a NotLeader detail). The Client follows
	// the hint itself; callers see it only from calls pinned to one node.
	ErrNotLeader = errors.New("raftogram: not leader")
	// ErrUnavailable: no node could serve the call (no leader, node down,
	// connection lost). For a write the outcome may be unknown: repeat it
	// with the same client message id.
	ErrUnavailable = errors.New("raftogram: unavailable")
	// ErrPermissionDenied: the caller may not do this.
	ErrPermissionDenied = errors.New("raftogram: permission denied")
	// ErrUnauthenticated: the call carried no valid credentials.
	ErrUnauthenticated = errors.New("raftogram: unauthenticated")
	// ErrAlreadyExists: the thing to create exists already, or a send reused
	// a client message id of a message with another author or payload.
	ErrAlreadyExists = errors.New("raftogram: already exists")
	// ErrOutOfRange: a position beyond what exists, or one retention has
	// removed: then Error.TrimmedFirstSequence says where the channel now
	// starts.
	ErrOutOfRange = errors.New("raftogram: out of range")
	// ErrResourceExhausted: a limit was hit (rate, size, quota).
	ErrResourceExhausted = errors.New("raftogram: resource exhausted")
	// ErrFailedPrecondition: the node cannot do this in its present state
	// (FailedPrecondition without a NotLeader detail).
	ErrFailedPrecondition = errors.New("raftogram: failed precondition")
	// ErrUnimplemented: the node does not know this call (an older server).
	ErrUnimplemented = errors.New("raftogram: unimplemented")
	// ErrInternal: a bug or an I/O failure on the node, or an answer that
	// breaks the protocol (a subscription gap); details are in the node's log.
	ErrInternal = errors.New("raftogram: internal error")
	// ErrClosed: the Client or Subscription was closed.
	ErrClosed = errors.New("raftogram: closed")
)

// kinds is every kind an error of this package can have, for Kind.
var kinds = []error{
	ErrInvalidArgument, ErrNotFound, ErrNotLeader, ErrUnavailable, ErrPermissionDenied,
	ErrUnauthenticated, ErrAlreadyExists, ErrOutOfRange, ErrResourceExhausted,
	ErrFailedPrecondition, ErrUnimplemented, ErrInternal, ErrClosed,
	context.DeadlineExceeded, context.Canceled,
}

// Kind returns the one sentinel err is of: an Err* value of this package,
// context.DeadlineExceeded or context.Canceled; nil for nil or an error
// that is none of them. When a call's context ended after a node answered,
// the node's kind wins (the error matches both). Use it to name or count
// errors; use errors.Is to test for one.
func Kind(err error) error {
	var e *Error
	if errors.As(err, &e) {
		return e.kind
	}
	for _, k := range kinds {
		if errors.Is(err, k) {
			return k
		}
	}
	return nil
}

// Error is a node's answer that is not a success: the gRPC code, the node's
// message, and for not-leader answers the leader it named. errors.Is
// matches it against the sentinel of its kind (ErrNotFound...), and against
// context.Canceled / context.DeadlineExceeded for those codes.
type Error struct {
	// Code is the gRPC status code the node (or the transport) returned.
	Code codes.Code
	// Message is the status message.
	Message string
	// Leader and LeaderID name the leader from a NotLeader detail; both
	// empty when the node knew none or sent no detail.
	Leader, LeaderID string
	// TrimmedFirstSequence is the channel's first retained sequence from a
	// Trimmed detail (ErrOutOfRange: the messages asked for were removed by
	// retention); 0 without one. Resume after TrimmedFirstSequence-1.
	TrimmedFirstSequence uint64
	// notLeader is true when the status carried a NotLeader detail.
	notLeader bool
	kind      error
}

// Error returns the kind and the node's message.
func (e *Error) Error() string {
	msg := fmt.Sprintf("%v: %s", e.kind, e.Message)
	if e.Leader != "" {
		msg += " (leader " + e.LeaderID + " at " + e.Leader + ")"
	}
	return msg
}

// Is reports whether target is the sentinel of e's kind.
func (e *Error) Is(target error) bool { return target == e.kind }

// Unwrap returns the sentinel of e's kind.
func (e *Error) Unwrap() error { return e.kind }

// NotLeaderDetail reports whether the node's answer carried a NotLeader
// detail: the call did not run on that node, because another node leads
// (ErrNotLeader, Leader set) or because no leader was known
// (ErrUnavailable, Leader empty).
func (e *Error) NotLeaderDetail() bool { return e.notLeader }

// GRPCStatus returns e as a gRPC status, so status.FromError and
// status.Code work on errors of this package.
func (e *Error) GRPCStatus() *status.Status { return status.New(e.Code, e.Message) }

// domainKinds maps the domain error codes of rpcstatus's table to sentinels.
var domainKinds = map[string]error{
	domain.EINVALID:     ErrInvalidArgument,
	domain.ENOTFOUND:    ErrNotFound,
	domain.EUNAVAILABLE: ErrUnavailable,
	domain.EINTERNAL:    ErrInternal,

	domain.EUNAUTHENTICATED: ErrUnauthenticated,
	domain.EPERMISSION:      ErrPermissionDenied,

	domain.EEXISTS:    ErrAlreadyExists,
	domain.EEXHAUSTED: ErrResourceExhausted,
	domain.ETRIMMED:   ErrOutOfRange,
}

// codeKinds maps the gRPC codes the server sets directly (outside the
// domain table) to sentinels.
var codeKinds = map[codes.Code]error{
	codes.Canceled:           context.Canceled,
	codes.DeadlineExceeded:   context.DeadlineExceeded,
	codes.InvalidArgument:    ErrInvalidArgument,
	codes.NotFound:           ErrNotFound,
	codes.AlreadyExists:      ErrAlreadyExists,
	codes.PermissionDenied:   ErrPermissionDenied,
	codes.Unauthenticated:    ErrUnauthenticated,
	codes.ResourceExhausted:  ErrResourceExhausted,
	codes.FailedPrecondition: ErrFailedPrecondition, // with a NotLeader detail: ErrNotLeader
	codes.Aborted:            ErrUnavailable,        // a conflict; try again
	codes.OutOfRange:         ErrOutOfRange,
	codes.Unimplemented:      ErrUnimplemented,
	codes.Unavailable:        ErrUnavailable,
	codes.Internal:           ErrInternal,
	codes.Unknown:            ErrInternal,
	codes.DataLoss:           ErrInternal,
}

// fromStatus turns a gRPC error into an *Error: the one mapping from node
// answers to this package's errors. It returns nil for nil and an
// ErrInternal *Error for an OK status.
func fromStatus(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	st := status.Convert(err) // Unknown for a non-status error
	e = &Error{Code: st.Code(), Message: st.Message()}
	for _, d := range st.Details() {
		if nl, ok := d.(*raftogramv1.NotLeader); ok {
			e.notLeader = true
			e.Leader, e.LeaderID = nl.GetLeaderGrpcTarget(), nl.GetRaftLeaderId()
		}
		if tr, ok := d.(*raftogramv1.Trimmed); ok {
			e.TrimmedFirstSequence = tr.GetFirstSequence()
		}
	}
	switch {
	case e.Code == codes.OK:
		e.kind = ErrInternal
	case e.Code == codes.FailedPrecondition && e.notLeader:
		e.kind = ErrNotLeader
	default:
		if d, ok := rpcstatus.DomainCode(e.Code); ok && domainKinds[d] != nil {
			e.kind = domainKinds[d]
		} else if k, ok := codeKinds[e.Code]; ok {
			e.kind = k
		} else {
			e.kind = ErrInternal
		}
	}
	return e
}
