package bench

import (
	"context"
	"errors"
	"maps"
	"sync"

	"github.com/raftogram/raftogram/client"
)

// Error classes. Every failed attempt is counted under one of these (or,
// for the client's other sentinel errors, the error's kind in snake_case,
// e.g. "invalid_argument"); subscription failures get the prefix
// "subscribe_".
const (
	// ClassNotLeader: the node named another leader (client.ErrNotLeader
	// with a hint); the client retried there at once.
	ClassNotLeader = "not_leader"
	// ClassNoLeader: the node knew no leader (client.ErrNotLeader without a
	// hint); the client backed off and retried.
	ClassNoLeader = "no_leader"
	// ClassUnavailable: client.ErrUnavailable (node down, connection lost,
	// an election, shutting down, outcome unknown); the client retried
	// on another node after a back-off.
	ClassUnavailable = "unavailable"
	// ClassTimeout: the attempt ran past its deadline; the outcome is unknown
	// and the client retried.
	ClassTimeout = "timeout"
	// ClassBadRead: ReadHistory returned fewer messages than were known to
	// be committed, or not the ones asked for. Counted as a failed op.
	ClassBadRead = "bad_read"
	// ClassGaveUp: an op was still failing when its -op-timeout ran out.
	ClassGaveUp = "gave_up"
)

// sentinelClasses names the client's other sentinel errors, matched in
// order with errors.Is.
var sentinelClasses = []struct {
	err   error
	class string
}{
	{client.ErrUnavailable, ClassUnavailable},
	{context.DeadlineExceeded, ClassTimeout},
	{context.Canceled, "canceled"},
	{client.ErrInvalidArgument, "invalid_argument"},
	{client.ErrNotFound, "not_found"},
	{client.ErrPermissionDenied, "permission_denied"},
	{client.ErrUnauthenticated, "unauthenticated"},
	{client.ErrAlreadyExists, "already_exists"},
	{client.ErrOutOfRange, "out_of_range"},
	{client.ErrResourceExhausted, "resource_exhausted"},
	{client.ErrFailedPrecondition, "failed_precondition"},
	{client.ErrUnimplemented, "unimplemented"},
	{client.ErrInternal, "internal"},
	{client.ErrClosed, "closed"},
}

// classOf sorts an error of the client into a class.
func classOf(err error) string {
	if errors.Is(err, client.ErrNotLeader) {
		var e *client.Error
		if errors.As(err, &e) && e.Leader == "" {
			return ClassNoLeader
		}
		return ClassNotLeader
	}
	for _, s := range sentinelClasses {
		if errors.Is(err, s.err) {
			return s.class
		}
	}
	return "other"
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
