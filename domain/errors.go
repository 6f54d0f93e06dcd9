package domain

import (
	"errors"
	"fmt"
)

// Error codes. Transports map them to their own statuses in one place.
const (
	EINVALID     = "invalid"     // the request is malformed; nothing changed
	ENOTFOUND    = "not_found"   // the channel does not exist
	EUNAVAILABLE = "unavailable" // try again; for writes the outcome may be unknown
	EINTERNAL    = "internal"    // a bug or an I/O failure; details are logged, not shown

	EUNAUTHENTICATED = "unauthenticated"   // no or bad credentials (auth on)
	EPERMISSION      = "permission_denied" // authenticated, but not allowed; nothing changed

	EEXISTS    = "already_exists" // the key is taken by something else (an idempotency conflict); nothing changed
	EEXHAUSTED = "exhausted"      // a resource is short (free disk space): refused, nothing changed
	ETRIMMED   = "trimmed"        // the sequences asked for were removed by retention (see TrimmedError)
)

// Error is an application error whose Message is safe to show to clients.
type Error struct {
	Code    string
	Message string
}

// Error returns the message prefixed with nothing: the code travels separately.
func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	var t *TrimmedError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	case errors.As(err, &t):
		return ETRIMMED
	default:
		return EINTERNAL
	}
}

// ErrorMessage returns the client-safe message of the first *Error in err's
// chain, or "internal error" for any other error.
func ErrorMessage(err error) string {
	var e *Error
	var t *TrimmedError
	switch {
	case errors.As(err, &e):
		return e.Message
	case errors.As(err, &t):
		return t.Error()
	}
	return "internal error"
}

// TrimmedError says a read asked for messages that retention removed: the
// channel now starts at FirstSequence. Its code is ETRIMMED.
type TrimmedError struct {
	ChannelID     string
	FirstSequence uint64
}

// Error names the channel and where it now starts.
func (e *TrimmedError) Error() string {
	return fmt.Sprintf("channel %q holds messages from sequence %d on; older ones were removed by retention (skip ahead with after_sequence = %d)",
		e.ChannelID, e.FirstSequence, e.FirstSequence-1)
}

// NotLeaderError says this node cannot serve the request because it is not
// the Raft leader. LeaderID and LeaderGRPCAddr are empty when no leader is
// known.
type NotLeaderError struct {
	LeaderID       string
	LeaderGRPCAddr string
}

// Error describes where to retry.
func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" {
		return "not leader: no leader is known; retry later"
	}
	return "not leader: retry on suggested leader client endpoint"
}
