// Package bench is the load generator behind `raftogram bench`: clients
// (goroutines sharing a client.Client and its few gRPC connections per node)
// drive a raftogram cluster's Messenger API with a send, read, subscribe or
// mixed workload, closed loop or at a fixed rate, at a chosen read
// consistency, and the run is reported as a human summary or as one JSON
// line in the shared anchor benchmark's format.
//
// Leader following, retries (a send keeps its client_message_id) and
// resumed subscriptions are the client's (package client), so a run survives
// a failover; bench counts the client's retried attempts by error class
// through its OnRetry hook.
//
// Latencies go into log-linear (HDR-style) histograms with 0.4 % resolution;
// subscribers check that they get every message of their channel in order,
// without a gap, and time each delivery from the send time carried in the
// payload's first 8 bytes.
package bench
