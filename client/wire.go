package client

// ErrorFromStatus returns the *Error a Client would return for err, an
// error from a raw raftogramv1 stub call to one node: its gRPC code and
// message, the leader of a NotLeader detail, and the sentinel of its kind
// (ErrNotLeader for FailedPrecondition with a NotLeader detail...). It is
// for code that calls the stubs directly, such as tests of the wire
// contract, so they read answers through the one mapping instead of
// parsing details themselves. It returns nil for nil, an *Error of kind
// ErrInternal for an error that carries no gRPC status, and err itself
// when it is an *Error already.
func ErrorFromStatus(err error) *Error { return fromStatus(err) }
