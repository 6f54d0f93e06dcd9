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
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	default:
		return EINTERNAL
	}
}

// ErrorMessage returns the client-safe message of the first *Error in err's
// chain, or "internal error" for any other error.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
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
