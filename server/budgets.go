package server

import (
	"github.com/raftogram/raftogram/config"
	"github.com/raftogram/raftogram/grpcapi"
)

// httpMaxHeaderBytes caps the request headers of the health listener (its
// requests are small GETs).
const httpMaxHeaderBytes = 16 << 10

// raftMaxConnections caps the Raft port's open connections: peers use a
// handful each (a pool of 3 plus a pipeline), and a connection that never
// speaks is closed after 10 s (cluster/transport.go), so a flood of idle
// connections cannot hold the node's file descriptors.
const raftMaxConnections = 256

// budgets returns the gRPC budgets of the limits section.
func budgets(l config.Limits) grpcapi.Budgets {
	return grpcapi.Budgets{
		MaxMetadataBytes:        l.MaxMetadataBytes,
		MaxStreamsPerConnection: l.MaxStreamsPerConnection,
		MaxStreams:              l.MaxStreams,
		IdleConnectionTimeout:   l.IdleConnectionTimeout,
		ChannelCreatesPerSecond: l.ChannelCreatesPerSecond,
	}
}
