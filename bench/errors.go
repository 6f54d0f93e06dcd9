package bench

import (
	"context"
	"errors"
	"io"
	"maps"
	"strings"
	"sync"
	"unicode"

	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error classes. Every failed attempt is counted under one of these (or,
// for other gRPC codes, the code's name in snake_case, e.g.
// "invalid_argument"); subscription failures get the prefix "subscribe_".
const (
	// ClassNotLeader: FailedPrecondition with a NotLeader detail naming the
	// leader; the call is retried there at once.
	ClassNotLeader = "not_leader"
	// ClassNoLeader: Unavailable with an empty NotLeader detail (an election
	// is under way); retried after a back-off.
	ClassNoLeader = "no_leader"
	// ClassUnavailable: any other Unavailable (node down, connection lost,
	// shutting down, outcome unknown); retried after a back-off on the next
	// address.
	ClassUnavailable = "unavailable"
	// ClassTimeout: the attempt ran past its deadline; the outcome is unknown
	// and the call is retried.
	ClassTimeout = "timeout"
	// ClassStreamEnded: a Subscribe stream ended without an error, which the
	// server never does; resubscribed.
	ClassStreamEnded = "stream_ended"
	// ClassBadRead: ReadHistory returned fewer messages than were known to
	// be committed, or not the ones asked for. Counted as a failed op.
	ClassBadRead = "bad_read"
	// ClassGaveUp: an op was still failing when its -op-timeout ran out.
	ClassGaveUp = "gave_up"
)

// verdict is what the client does about a failed attempt.
type verdict struct {
	class string
	hint  string // leader_grpc_target to follow, if any
	retry bool
}

// classify sorts an RPC error into a class and says whether the call may be
// retried with the same request (and where).
func classify(err error) verdict {
	if errors.Is(err, io.EOF) {
		return verdict{class: ClassStreamEnded, retry: true}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return verdict{class: ClassTimeout, retry: true}
	}
	if errors.Is(err, context.Canceled) {
		return verdict{class: "canceled"}
	}
	st, ok := status.FromError(err)
	if !ok {
		return verdict{class: "other"}
	}
	nl, hasNL := notLeaderDetail(st)
	switch st.Code() {
	case codes.FailedPrecondition:
		if hasNL && nl.GetLeaderGrpcTarget() != "" {
			return verdict{class: ClassNotLeader, hint: nl.GetLeaderGrpcTarget(), retry: true}
		}
		if hasNL {
			return verdict{class: ClassNoLeader, retry: true}
		}
	case codes.Unavailable:
		if hasNL {
			if t := nl.GetLeaderGrpcTarget(); t != "" {
				return verdict{class: ClassNotLeader, hint: t, retry: true}
			}
			return verdict{class: ClassNoLeader, retry: true}
		}
		return verdict{class: ClassUnavailable, retry: true}
	case codes.DeadlineExceeded:
		return verdict{class: ClassTimeout, retry: true}
	case codes.Canceled:
		return verdict{class: "canceled"}
	}
	return verdict{class: snake(st.Code().String())}
}

func notLeaderDetail(st *status.Status) (*raftogramv1.NotLeader, bool) {
	for _, d := range st.Details() {
		if nl, ok := d.(*raftogramv1.NotLeader); ok {
			return nl, true
		}
	}
	return nil, false
}

// snake turns "FailedPrecondition" into "failed_precondition".
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// ErrorCounts counts failed attempts by class. It is safe for concurrent use.
type ErrorCounts struct {
	mu    sync.Mutex
	n     map[string]int64
	total int64
	first string
}

// Add counts one failure of class; err (may be nil) is remembered when it is
// the first one.
func (e *ErrorCounts) Add(class string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n == nil {
		e.n = make(map[string]int64)
	}
	e.n[class]++
	e.total++
	if e.first == "" && err != nil {
		e.first = class + ": " + err.Error()
	}
}

// ForgetFirst makes the next failure the first one remembered.
func (e *ErrorCounts) ForgetFirst() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.first = ""
}

// Total is the number of failures counted so far.
func (e *ErrorCounts) Total() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.total
}

// Snapshot returns a copy of the counts by class and the first error seen.
func (e *ErrorCounts) Snapshot() (map[string]int64, string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.n), e.first
}
