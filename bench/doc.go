// Package bench is the load generator behind `raftogram bench`: clients
// (goroutines sharing a few gRPC connections) drive a raftogram cluster's
// Messenger API with a send, read, subscribe or mixed workload, closed loop
// or at a fixed rate, and the run is reported as a human summary or as one
// JSON line in the shared anchor benchmark's format.
//
// The Client follows the cluster's leader: it starts at any address, moves
// to the leader a NotLeader error names, moves on to the next address when a
// node cannot be reached, and retries a send with the same client_message_id
// when the outcome is unknown, so a run survives a failover and counts the
// retries by error class.
//
// Latencies go into log-linear (HDR-style) histograms with 0.4 % resolution;
// subscribers check that they get every message of their channel in order,
// without a gap, and time each delivery from the send time carried in the
// payload's first 8 bytes.
package bench
