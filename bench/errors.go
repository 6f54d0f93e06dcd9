package bench

import (
	"context"
	"errors"
	"maps"
	"strings"
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
	// ClassNoLeader: the node knew no leader (an election; client.Error
	// with a NotLeader detail naming none); the client backed off and
	// retried.
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

// classOf sorts an error of the client into a class: the classes above,
// or the name of its client.Kind in snake_case ("invalid_argument",
// "internal_error"...), or "other".
func classOf(err error) string {
	var e *client.Error
	nodeErr := errors.As(err, &e)
	switch k := client.Kind(err); {
	case k == nil:
		return "other"
	case nodeErr && e.NotLeaderDetail() && e.Leader == "":
		return ClassNoLeader
	case k == client.ErrNotLeader:
		return ClassNotLeader
	case k == context.DeadlineExceeded:
		return ClassTimeout
	case k == context.Canceled:
		return "canceled"
	default:
		return strings.ReplaceAll(strings.TrimPrefix(k.Error(), "raftogram: "), " ", "_")
	}
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
