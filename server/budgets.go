package server

import (
	"github.com/raftogram/raftogram/config"
	"github.com/raftogram/raftogram/grpcapi"
)

// httpMaxHeaderBytes caps the request headers of the health listener (its
// requests are small GETs).
const httpMaxHeaderBytes = 16 << 10

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
