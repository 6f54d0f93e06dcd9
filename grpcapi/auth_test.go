package grpcapi

import (
	"testing"

	peerv1 "github.com/raftogram/raftogram/api/proto/raftogram/peer/v1"
	raftogramv1 "github.com/raftogram/raftogram/api/proto/raftogram/v1"
	"google.golang.org/grpc"
)

// TestEveryMethodHasAnAuthRule keeps the Guard's table complete: a method
// without a rule is refused when auth is on, so a new RPC would be closed
// to everyone until given one.
func TestEveryMethodHasAnAuthRule(t *testing.T) {
	for _, sd := range []grpc.ServiceDesc{raftogramv1.Messenger_ServiceDesc, raftogramv1.Admin_ServiceDesc, peerv1.Peer_ServiceDesc} {
		var names []string
		for _, m := range sd.Methods {
			names = append(names, m.MethodName)
		}
		for _, s := range sd.Streams {
			names = append(names, s.StreamName)
		}
		for _, n := range names {
			full := "/" + sd.ServiceName + "/" + n
			if _, ok := ruleFor(full); !ok {
				t.Errorf("%s has no authorization rule in ruleFor", full)
			}
		}
	}
	if _, ok := ruleFor("/raftogram.v1.Messenger/NoSuchMethod"); ok {
		t.Error("an unknown Messenger method has a rule; it must be refused")
	}
}
