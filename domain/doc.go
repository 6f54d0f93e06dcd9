// Package domain holds raftogram's vocabulary: channels, messages, the
// immutable events written to the Raft log, their results, the validation
// rules for client input and the error codes every layer shares.
//
// It imports nothing else of the project except the generated event
// encoding, so every adapter (projection, fsm, cluster, grpcapi) can depend
// on it without depending on each other.
package domain
