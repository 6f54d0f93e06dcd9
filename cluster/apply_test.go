package cluster

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/raftogram/raftogram/domain"
	"github.com/raftogram/raftogram/internal/rpcstatus"
	"google.golang.org/grpc/codes"
)

// Every raft error a write or read future can end with maps to what the
// caller may do next: not leader (go to the leader; nothing written),
// unavailable (retry; for a write, with the same client_message_id), or
// internal. The gRPC code is the one the server answers with (rpcstatus's
// table; a not-leader error becomes FailedPrecondition with a NotLeader
// detail in grpcapi).
func TestMapRaftError(t *testing.T) {
	leader := &domain.NotLeaderError{LeaderID: "node3", LeaderGRPCAddr: "127.0.0.1:9003"}
	notLeader := func() *domain.NotLeaderError { return leader }
	for _, tc := range []struct {
		err     error
		op      string
		code    string     // "" for a not-leader error
		grpc    codes.Code // for a domain error
		message string
	}{
		{raft.ErrNotLeader, "write", "", 0, ""},
		{fmt.Errorf("apply: %w", raft.ErrNotLeader), "read", "", 0, ""},
		{raft.ErrEnqueueTimeout, "write", domain.EUNAVAILABLE, codes.Unavailable, "write not accepted: the leader is overloaded; retry"},
		{raft.ErrLeadershipLost, "write", domain.EUNAVAILABLE, codes.Unavailable, "write outcome unknown: leadership lost while committing log; retry with the same client_message_id"},
		{raft.ErrLeadershipTransferInProgress, "write", "", 0, ""}, // refused before the log: not executed
		{raft.ErrRaftShutdown, "read", domain.EUNAVAILABLE, codes.Unavailable, "read outcome unknown: raft is already shutdown"},
		{raft.ErrAbortedByRestore, "write", domain.EUNAVAILABLE, codes.Unavailable, "write outcome unknown: snapshot restored while committing log"},
		{errShutdown, "write", domain.EUNAVAILABLE, codes.Unavailable, "write outcome unknown"},
		{raft.ErrUnsupportedProtocol, "write", domain.EINTERNAL, codes.Internal, "internal error"},
		{errors.New("bolt: disk full"), "write", domain.EINTERNAL, codes.Internal, "internal error"},
	} {
		t.Run(tc.err.Error(), func(t *testing.T) {
			got := mapRaftError(tc.op, tc.err, notLeader)
			var nl *domain.NotLeaderError
			if tc.code == "" {
				if !errors.As(got, &nl) || nl != leader {
					t.Fatalf("mapRaftError(%v) = %v; want the node's not-leader error", tc.err, got)
				}
				return
			}
			if errors.As(got, &nl) {
				t.Fatalf("mapRaftError(%v) = not leader; want %s", tc.err, tc.code)
			}
			if c := domain.ErrorCode(got); c != tc.code {
				t.Fatalf("mapRaftError(%v) = %v (%s); want %s", tc.err, got, c, tc.code)
			}
			if c := rpcstatus.GRPCCode(domain.ErrorCode(got)); c != tc.grpc {
				t.Fatalf("mapRaftError(%v) answers gRPC %v, want %v", tc.err, c, tc.grpc)
			}
			if m := domain.ErrorMessage(got); !strings.HasPrefix(m, tc.message) {
				t.Fatalf("mapRaftError(%v): clients see %q, want %q...", tc.err, m, tc.message)
			}
			if tc.code == domain.EINTERNAL && !errors.Is(got, tc.err) {
				t.Fatalf("mapRaftError(%v) = %v does not wrap the raft error (the log would lose it)", tc.err, got)
			}
		})
	}
}

// A node that no longer leads names the leader it knows, and none when it
// knows none (so grpcapi answers Unavailable instead of a hint).
func TestRaftErrorNamesTheKnownLeader(t *testing.T) {
	n, _ := openSingleNode(t)
	var nl *domain.NotLeaderError
	if err := n.raftError("write", raft.ErrNotLeader); !errors.As(err, &nl) || *nl != (domain.NotLeaderError{}) {
		t.Fatalf("raftError on the only node = %v; want a not-leader error naming no leader (it is itself)", err)
	}
}
